"""Sweep spec: YAML -> one validated, immutable ``SweepSpec`` -> ``TrialSpec`` x N.

The classes below are the schema (the ``schedules`` section's is in grid.py, one schedule's
in shapes.py, the value types in fields.py). Each field declares its type and bounds and
pydantic checks them when a spec is parsed: unknown keys at any level, wrong types, bools
or strings for numbers, NaN and infinities, lists where a value belongs and values where a
list belongs are refused (a single value stands for a one-element list only in shapes,
controls, ramp_rates, modes and the shape parameters, whose lists are grid axes).
``_check`` then relates fields to each other, and ``expand`` builds the grid of trials.
``parse`` checks the spec alone: every error is a ``SpecError`` that names the field (a
dotted path) and the offending value in one line. What the spec names outside itself (its
files, a transformers architecture) is checked where a run starts (sweep/run/preflight.py),
so a stored spec parses wherever its results are read.

The classes are plain frozen dataclasses: code may build them directly (unchecked) and
use ``dataclasses.replace``; ``parse`` is the only door for user input.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from sweep.config import schedules
from sweep.config.fields import (
    MODES,
    Bool,
    Float,
    Fraction,
    Int,
    Mode,
    Name,
    NonNegFloat,
    NonNegInt,
    PosFloat,
    PosInt,
    Range,
    Rate,
    Seed,
    SpecError,
    Str,
    Unit,
    as_list,
    plain,
    unique,
)
from sweep.config.grid import (
    SchedulesSpec,
    ShapeEntry,
    ShapeParams,
    check_unused_parameters,
    validate_schedule,
)
from sweep.config.grid import schedules as grid_schedules
from sweep.config.shapes import SHAPES, ScheduleSpec, SearchShapeName
from sweep.config.validation import field_names, read_yaml, validated

Position = Literal["alibi", "rope", "none"]
POSITIONS = get_args(Position)
ARCHS = ("btlm-proxy",)
# ModelSpec fields only the btlm-proxy reads; a transformers architecture is configured by
# d_model, n_layers, n_heads and hf_config alone.
PROXY_ONLY = (
    "position",
    "ffn_mult",
    "mup_base_width",
    "init_std",
    "embeddings_scale",
    "attention",
    "mup_output_alpha",
    "rope_base",
)
WandbMode = Literal["auto", "offline", "online", "disabled"]
WANDB_MODES = get_args(WandbMode)
MAX_STEPS = 10_000_000  # optimizer steps of one trial: more is a typo in budget.tokens
_FORBID = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Budget:
    __pydantic_config__ = _FORBID
    tokens: PosInt
    tokens_per_step: PosInt
    micro_batches: PosInt = 1  # gradient accumulation: each step's rows in this many pieces


@dataclass(frozen=True)
class ModelSpec:
    __pydantic_config__ = _FORBID
    arch: Str = "btlm-proxy"
    d_model: PosInt = 128
    n_layers: PosInt = 4
    n_heads: PosInt = 4
    position: Position = "alibi"
    ffn_mult: PosFloat = 8 / 3
    mup_base_width: PosInt = 128
    init_std: PosFloat = 0.02
    embeddings_scale: PosFloat = 10.0
    hf_config: dict[Str, Any] = field(default_factory=dict)  # config of a transformers arch
    attention: Literal["auto", "sdpa", "flex"] = "auto"  # auto: FlexAttention on CUDA
    mup_output_alpha: PosFloat = 1.0  # output logits times mup_output_alpha / width_mult
    rope_base: Annotated[Float, Field(gt=1)] = 10000.0  # position: rope only


@dataclass(frozen=True)
class OptimSpec:
    __pydantic_config__ = _FORBID
    lr: PosFloat = 3e-3
    warmup_fraction: Fraction = 0.02
    min_lr_ratio: Unit = 0.1
    weight_decay: NonNegFloat = 0.1
    beta1: Fraction = 0.9
    beta2: Fraction = 0.95
    grad_clip: NonNegFloat = 1.0  # 0: no clipping


@dataclass(frozen=True)
class DataSpec:
    __pydantic_config__ = _FORBID
    corpus: Str = "stdlib"  # stdlib | files:PATH (text, jsonl, parquet) | hf:NAME (streamed)
    tokenizer: Str = "byte"  # byte | bpe | hf:NAME | path/to/tokenizer.json
    held_out_fraction: Annotated[Float, Field(gt=0, lt=1)] = 0.1
    text_field: Str = "text"  # the text of a jsonl / parquet / hub record
    sets: tuple[Str, ...] = ()  # keep only these SlimPajama meta.redpajama_set_name values
    max_documents: PosInt = 20000  # hf: how many records to stream
    vocab_size: PosInt = 4096  # bpe: vocabulary size to train
    doc_mask: Bool = False  # no attention across document boundaries in packed rows
    # Long-range structure a small model learns in minutes: this fraction of documents
    # (chosen by a hash of their name, in both splits) get spans of `repeat_span` tokens
    # copied from earlier in the same document, at distances log-uniform in
    # [repeat_span, repeat_max_distance] (0: the eval length E). Metrics are reported on
    # the natural documents alone as well.
    repeat_share: Fraction = 0.0
    repeat_span: Annotated[Int, Field(ge=2)] = 32
    repeat_max_distance: NonNegInt = 0


MIN_HELD_OUT = 20  # held-out documents below which no interval over documents means much
FEW_HELD_OUT = 100  # below this, a run goes ahead with a warning: intervals will be wide


@dataclass(frozen=True)
class EvalSpec:
    __pydantic_config__ = _FORBID
    multiple: PosInt = 4
    sequences: PosInt = 256  # eval windows, each at a seeded random offset in a held-out doc
    batch_size: PosInt = 8
    every_fraction: Fraction = 0.0  # intermediate evaluations every this fraction (0: none)
    intermediate_sequences: PosInt = 64  # the first this many of the final eval's sequences
    probe_sequences: PosInt = 64  # sequences for the sliding-window and copy probes
    window_stride: NonNegInt = 0  # sliding-window eval stride (0: l_max // 4)
    copy_span: Int = 32  # tokens of the repeated span in the copy probe
    seed: Seed = 0  # eval offsets: the same windows for every trial of the sweep

    def length(self, l_max: int) -> int:
        return self.multiple * l_max


@dataclass(frozen=True)
class DeepSpeedSpec:
    __pydantic_config__ = _FORBID
    zero_stage: Annotated[Int, Field(ge=0, le=3)] = 1
    # auto: bf16 weights on GPU, fp32 on CPU. bf16 on CPU: DeepSpeed's torch_autocast
    # (bf16 matmuls, fp32 weights, optimizer and loss); fp32: no reduced precision anywhere.
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def bf16_weights(self, use_gpu: bool) -> bool:
        return use_gpu and self.precision != "fp32"

    def cpu_autocast(self, use_gpu: bool) -> bool:
        return not use_gpu and self.precision == "bf16"


@dataclass(frozen=True)
class Resources:
    __pydantic_config__ = _FORBID
    workers_per_trial: PosInt = 1
    cpus_per_worker: PosInt = 1
    gpus_per_worker: NonNegFloat = 0
    max_concurrent_trials: PosInt = 2
    max_failures: NonNegInt = 2  # restarts of a failed trial, each from its last checkpoint


@dataclass(frozen=True)
class DecisionSpec:
    __pydantic_config__ = _FORBID
    # nats of far_loss: the smallest difference from the reference worth acting on, and the
    # equivalence margin. None: half the negative control's measured far_loss gap (what
    # training short throughout costs), or 0.01 where no control was told apart.
    margin: NonNegFloat | None = None
    # > 0: after the sweep, retrain its picks (or candidates), the reference and the negative
    # control on this many fresh seeds (`sweep confirm`), as a selection-free stage
    confirm_seeds: NonNegInt = 0


@dataclass(frozen=True)
class CheckpointSpec:
    __pydantic_config__ = _FORBID
    every_tokens: NonNegInt = 0  # 0: no checkpoints (a failed trial restarts from scratch)


@dataclass(frozen=True)
class WandbSpec:
    __pydantic_config__ = _FORBID
    mode: WandbMode = "auto"  # online when WANDB_API_KEY is set where the sweep runs
    project: Annotated[Str, Field(min_length=1)] = "ctx-schedules"
    entity: Str | None = None


# Shapes the search samples: the ramps and BTLM's two stages (the reference and controls


@dataclass(frozen=True)
class SearchSpace:
    """What the searcher chooses for each sample: a shape (categorical) and the continuous
    parameters the chosen shape reads; a range of one value fixes the parameter."""

    __pydantic_config__ = _FORBID
    shapes: Annotated[
        tuple[SearchShapeName, ...],
        BeforeValidator(as_list),
        Field(min_length=1),
        AfterValidator(unique),
    ] = ("linear", "root", "geometric", "two_stage")
    ramp_rate: Range(Rate) = (0.1, 1.0)  # ramps
    l_min: Range(PosInt) | None = None  # ramps; default: schedules.l_min, fixed
    switch: Range(Unit) = (0.5, 0.9)  # two_stage: fraction of tokens at l_short
    l_short: Range(PosInt) | None = None  # two_stage; default: l_max // 4, fixed
    degree: Range(PosFloat) = (1.5, 4.0)  # root
    modes: Annotated[
        tuple[Mode, ...], BeforeValidator(as_list), Field(min_length=1), AfterValidator(unique)
    ] = ("reshape",)


@dataclass(frozen=True)
class EarlyStopSpec:
    """Stop a sampled trial whose intermediate evaluation is dominated at a rung; never
    before its schedule has trained ``min_at_l_max`` of the budget at l_max."""

    __pydantic_config__ = _FORBID
    enabled: Bool = False
    rungs: Annotated[
        tuple[Annotated[Float, Field(gt=0, lt=1)], ...],
        BeforeValidator(as_list),
        Field(min_length=1),
        AfterValidator(unique),
    ] = (0.5, 0.75)  # budget fractions at which trials are compared
    min_at_l_max: Annotated[Float, Field(gt=0, lt=1)] = 0.1
    noise_z: PosFloat = 2.0  # dominance beyond z x the SE of the intermediate difference


@dataclass(frozen=True)
class SearchSpec:
    """``search:`` in the spec: a multi-objective searcher over schedule parameters in place
    of the grid (the reference and controls still run, once per seed)."""

    __pydantic_config__ = _FORBID
    num_samples: PosInt = 16
    max_concurrent: PosInt = 2
    seed: Seed = 0
    sampler: Literal["tpe", "nsga2"] = "tpe"  # Optuna's multi-objective TPE or NSGA-II
    objectives: tuple[Literal["far_loss"], Literal["id_loss", "flops"]] = (
        "far_loss",
        "id_loss",
    )
    space: SearchSpace = SearchSpace()
    early_stop: EarlyStopSpec = EarlyStopSpec()


@dataclass(frozen=True)
class CalibrateSpec:
    """``calibrate:`` in the spec: the ladder ``sweep calibrate`` climbs to find the cheapest
    proxy that sees extrapolation. Rung k trains the reference and the negative control on
    ``seeds`` with budget.tokens x token_factor^k and, for each axis listed here, its k-th
    value (its last past the list's end); an axis not listed keeps the spec's value."""

    __pydantic_config__ = _FORBID
    rungs: PosInt = 6  # at most this many rungs
    token_factor: Annotated[Float, Field(ge=1)] = 2.0
    minutes: PosFloat = 60.0  # the whole ladder's budget: no rung starts that would pass it
    seeds: Annotated[tuple[Seed, ...], Field(min_length=2), AfterValidator(unique)] = (
        0,
        1,
    )  # seed noise is part of what a rung must beat
    d_model: tuple[PosInt, ...] = ()
    n_layers: tuple[PosInt, ...] = ()
    l_max: tuple[PosInt, ...] = ()
    tokenizer: tuple[Str, ...] = ()
    repeat_share: tuple[Fraction, ...] = ()  # the corpus's long-range component

    def axes(self) -> dict[str, tuple]:
        """The listed axes, by spec section and field."""
        out = {
            ("model", "d_model"): self.d_model,
            ("model", "n_layers"): self.n_layers,
            ("schedules", "l_max"): self.l_max,
            ("data", "tokenizer"): self.tokenizer,
            ("data", "repeat_share"): self.repeat_share,
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class SweepSpec:
    __pydantic_config__ = _FORBID
    name: Name
    budget: Budget
    model: ModelSpec
    data: DataSpec
    schedules: SchedulesSpec
    eval: EvalSpec
    optim: OptimSpec = OptimSpec()
    seeds: Annotated[tuple[Seed, ...], Field(min_length=1), AfterValidator(unique)] = (0,)
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    resources: Resources = Resources()
    wandb: WandbSpec = WandbSpec()
    checkpoint: CheckpointSpec = CheckpointSpec()
    decision: DecisionSpec = DecisionSpec()
    log_every_steps: PosInt = 5
    search: SearchSpec | None = None
    calibrate: CalibrateSpec | None = None

    def to_dict(self) -> dict:
        """The spec in its YAML form: ``parse(spec.to_dict()) == spec``."""
        d = plain(dataclasses.asdict(self))
        d["schedules"].update(d["schedules"].pop("params"))
        return d

    @property
    def eval_length(self) -> int:
        """E: how far every trial is evaluated, ``eval.multiple`` x l_max."""
        return self.eval.length(self.schedules.l_max)

    def trials(self) -> list[TrialSpec]:
        return expand(self)


@dataclass(frozen=True)
class TrialSpec:
    trial_id: str
    seed: int
    schedule: ScheduleSpec
    sweep: SweepSpec

    @property
    def eval_length(self) -> int:
        """E for this trial: ``eval.multiple`` x its schedule's l_max."""
        return self.sweep.eval.length(self.schedule.l_max)

    @property
    def role(self) -> str:
        """reference, control or candidate: what the pick rule may do with it."""
        if self.schedule.label == self.sweep.schedules.reference:
            return "reference"
        return "control" if self.schedule.control else "candidate"

    def plan(self) -> schedules.Plan:
        """The step table this trial trains on (``schedules.Plan``)."""
        b = self.sweep.budget
        return schedules.plan(self.schedule, b.tokens, b.tokens_per_step, self.seed)

    def to_dict(self) -> dict:
        return {
            "trial_id": self.trial_id,
            "seed": self.seed,
            "schedule": plain(dataclasses.asdict(self.schedule)),
            "sweep": self.sweep.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrialSpec:
        sched = validated(ScheduleSpec, d["schedule"], "schedule", _known_fields)
        return cls(d["trial_id"], d["seed"], sched, parse(d["sweep"]))


# ----------------------------------------------------------------------------- parsing


def load(path: str | Path) -> SweepSpec:
    return parse(read_yaml(path))


def parse(raw: dict) -> SweepSpec:
    """The one validated ``SweepSpec`` of a spec in its YAML form, or a ``SpecError``: the
    spec alone, so a stored spec (a results directory's, a record's) parses wherever its
    results are read; what it names on this machine is sweep/run/preflight.py's."""
    if not isinstance(raw, dict):
        raise SpecError("spec", raw, "must be a mapping")
    budget = raw.get("budget")
    if isinstance(budget, dict) and "batching" in budget:
        raise SpecError(
            "budget.batching",
            budget["batching"],
            f"moved to schedules.modes (a sweep axis: {', '.join(MODES)})",
        )
    data = dict(raw)
    for key in ("budget", "schedules", *_SECTIONS):  # an empty section: its defaults
        if key in data and data[key] is None:
            del data[key]
    for key in ("model", "data", "eval"):
        data.setdefault(key, {})
    sched = data.get("schedules")
    if isinstance(sched, dict):  # shape parameters sit beside the fields in YAML
        own = {f.name for f in dataclasses.fields(SchedulesSpec)} - {"params"}
        data["schedules"] = {k: v for k, v in sched.items() if k in own}
        data["schedules"]["params"] = {k: v for k, v in sched.items() if k not in own}
    spec = validated(SweepSpec, data, "", _known_fields)
    _check(spec)
    return spec


def _known_fields(loc: tuple, prefix: str) -> list[str]:
    """The keys allowed where ``loc`` names an unknown one."""
    path = [k for k in loc[:-1] if isinstance(k, str)]
    if prefix == "schedule":
        return field_names(ScheduleSpec)
    if path[-1:] in (["shapes"], ["controls"]):
        return list(ShapeEntry.__annotations__)
    if path[:1] == ["schedules"]:
        own = [n for n in field_names(SchedulesSpec) if n != "params"]
        return own + list(ShapeParams.__annotations__)
    if path:
        return field_names(_SECTIONS[path[0]])
    return field_names(SweepSpec)


_SECTIONS = {
    "budget": Budget,
    "model": ModelSpec,
    "data": DataSpec,
    "eval": EvalSpec,
    "optim": OptimSpec,
    "deepspeed": DeepSpeedSpec,
    "resources": Resources,
    "wandb": WandbSpec,
    "checkpoint": CheckpointSpec,
    "search": SearchSpec,
}


# ----------------------------------------------------------------------------- checks
# What the field types cannot say: how fields relate to each other.


def _check(spec: SweepSpec) -> None:
    _check_budget(spec)
    _check_model(spec.model)
    _check_data(spec)
    _check_schedules(spec)
    _check_eval(spec)
    _check_search(spec)
    _check_resources(spec)


def _check_budget(spec: SweepSpec) -> None:
    b, s = spec.budget, spec.schedules
    if b.tokens < b.tokens_per_step:
        raise SpecError("budget.tokens", b.tokens, "is smaller than one step (tokens_per_step)")
    if b.tokens > MAX_STEPS * b.tokens_per_step:
        raise SpecError(
            "budget.tokens", b.tokens, f"is more than {MAX_STEPS:,} steps of tokens_per_step"
        )
    if b.tokens_per_step % s.l_max:  # every mode: a step holds whole rows of l_max
        raise SpecError(
            "budget.tokens_per_step", b.tokens_per_step, f"is not a multiple of l_max={s.l_max}"
        )


def _check_model(m: ModelSpec) -> None:
    if m.d_model % m.n_heads:
        raise SpecError("model.d_model", m.d_model, f"is not divisible by n_heads={m.n_heads}")
    if m.arch not in ARCHS:  # a transformers architecture: sweep/run/preflight.py's
        return
    if m.hf_config:
        raise SpecError("model.hf_config", m.hf_config, "configures a transformers arch only")
    if m.position == "rope" and (m.d_model // m.n_heads) % 2:
        raise SpecError(
            "model.position",
            "rope",
            f"needs an even head width (d_model / n_heads = {m.d_model // m.n_heads})",
        )
    if m.position != "rope" and m.rope_base != ModelSpec.rope_base:
        raise SpecError("model.rope_base", m.rope_base, f"is unused with position {m.position}")


# hf_config keys the spec sets itself, from d_model, n_layers, n_heads and the tokenizer.


def _check_data(spec: SweepSpec) -> None:
    d, default = spec.data, DataSpec()
    corpus, tk = d.corpus, d.tokenizer
    if corpus != "stdlib" and not re.fullmatch(r"(files|hf):.+", corpus):
        raise SpecError("data.corpus", corpus, "must be stdlib, files:PATH or hf:NAME")
    if tk not in ("byte", "bpe") and not re.fullmatch(r"hf:.+|.+\.json", tk):
        raise SpecError("data.tokenizer", tk, "must be byte, bpe, hf:NAME or a tokenizer.json")
    if tk == "bpe" and d.vocab_size < 260:
        raise SpecError("data.vocab_size", d.vocab_size, "must be at least 260 for BPE")
    unused = [
        ("vocab_size", tk != "bpe", "is used by tokenizer bpe only"),
        ("max_documents", not corpus.startswith("hf:"), "is used by hf: corpora only"),
        ("text_field", corpus == "stdlib", "is used by files: and hf: corpora only"),
        ("sets", corpus == "stdlib", "is used by files: and hf: corpora only"),
    ]
    for key, idle, why in unused:
        if idle and getattr(d, key) != getattr(default, key):
            raise SpecError(f"data.{key}", plain(getattr(d, key)), why)
    if d.repeat_max_distance and d.repeat_max_distance < d.repeat_span:
        raise SpecError(
            "data.repeat_max_distance", d.repeat_max_distance, "must be 0 (E) or >= repeat_span"
        )
    if d.doc_mask and spec.model.arch != "btlm-proxy":
        raise SpecError(
            "data.doc_mask", True, f"is supported by btlm-proxy only, not {spec.model.arch}"
        )
    if d.doc_mask and "doc_buckets" in spec.schedules.modes:
        raise SpecError(
            "data.doc_mask", True, "is redundant with doc_buckets (its rows hold one document)"
        )


def _check_schedules(spec: SweepSpec) -> None:
    s = spec.schedules
    if s.l_min > s.l_max:
        raise SpecError("schedules.l_min", s.l_min, f"is larger than l_max={s.l_max}")
    if s.multiple_of > s.l_min:
        raise SpecError("schedules.multiple_of", s.multiple_of, f"is larger than l_min={s.l_min}")
    for key in ("l_min", "l_max"):
        if getattr(s, key) % s.multiple_of:
            raise SpecError(
                f"schedules.{key}", getattr(s, key), f"is not a multiple of {s.multiple_of}"
            )
    if "window" in s.modes and spec.model.arch != "btlm-proxy":
        raise SpecError(
            "schedules.modes", "window", f"is supported by btlm-proxy only, not {spec.model.arch}"
        )
    trials = expand(spec)
    for t in trials:
        validate_schedule(t.schedule)
    if s.reference not in {t.schedule.label for t in trials} and s.reference not in SHAPES:
        raise SpecError("schedules.reference", s.reference, "names no schedule of this sweep")
    if any(t.schedule.control and t.role == "reference" for t in trials):
        raise SpecError("schedules.reference", s.reference, "is one of the controls")
    check_unused_parameters(s)


def _check_eval(spec: SweepSpec) -> None:
    e, l_max = spec.eval, spec.schedules.l_max
    stride = e.window_stride or l_max // 4
    if stride < 1 or l_max % stride:
        raise SpecError("eval.window_stride", e.window_stride, f"must divide l_max={l_max}")
    if not 2 <= e.copy_span <= l_max // 2:
        raise SpecError("eval.copy_span", e.copy_span, f"must be in [2, l_max/2={l_max // 2}]")


def _check_search(spec: SweepSpec) -> None:
    q = spec.search
    if q is None:
        return
    s, sp = spec.schedules, q.space
    for name, rng in (("l_min", sp.l_min), ("l_short", sp.l_short)):
        if rng is not None and not s.multiple_of <= rng[0] <= rng[1] <= s.l_max:
            raise SpecError(
                f"search.space.{name}",
                list(rng),
                f"must lie in [multiple_of={s.multiple_of}, l_max={s.l_max}]",
            )
    es = q.early_stop
    if es.enabled and spec.eval.every_fraction <= 0:
        raise SpecError(
            "search.early_stop.enabled",
            True,
            "needs intermediate evaluations (eval.every_fraction > 0) to judge a rung",
        )
    if es.enabled and min(es.rungs) <= es.min_at_l_max:
        raise SpecError(
            "search.early_stop.rungs",
            list(es.rungs),
            f"a rung at or before min_at_l_max={es.min_at_l_max:g} can judge no trial",
        )


def _check_resources(spec: SweepSpec) -> None:
    g = spec.resources.gpus_per_worker
    if g > 1 and not float(g).is_integer():
        raise SpecError("resources.gpus_per_worker", g, "a share of a GPU must be below 1")


# ----------------------------------------------------------------------------- grid


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """The grid: for every mode and shape entry, its scalar-parameter axes x ramp rates, x
    seeds; then the controls the same way. Rate-free shapes run once per seed, not once per
    rate; ``constant`` under truncate or window trains exactly as under reshape, so it runs
    once (as ``constant``). A schedule listed twice, or both as a candidate and a control,
    is refused (``grid.schedules``)."""
    return [
        TrialSpec(f"{sched.label}-s{seed}", seed, sched, spec)
        for sched in grid_schedules(spec.schedules)
        for seed in spec.seeds
    ]
