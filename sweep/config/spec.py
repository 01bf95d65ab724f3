"""Sweep spec: YAML -> one validated, immutable ``SweepSpec`` -> ``TrialSpec`` x N.

The classes below are the schema. Each field declares its type and bounds (``PosInt``,
``Unit``, a ``Literal`` of the allowed names, ...) and pydantic checks them when a spec is
parsed: unknown keys at any level, wrong types, bools or strings for numbers, NaN and
infinities, lists where a value belongs and values where a list belongs are refused (a
single value stands for a one-element list only in shapes, controls, ramp_rates, modes
and the shape parameters, whose lists are grid axes).
``_check`` then relates fields to each other (l_min <= l_max, fields one architecture
cannot use, ...), and ``expand`` builds the grid of trials. Validation happens here and
only here, before anything starts: every error is a ``SpecError`` that names the field (a
dotted path) and the offending value in one line.

The classes are plain frozen dataclasses: code may build them directly (unchecked) and
use ``dataclasses.replace``; ``parse`` is the only door for user input.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import Required, TypedDict

Shape = Literal[
    "constant",
    "two_stage",
    "multi_stage",
    "linear",
    "root",
    "geometric",
    "exponential",
    "cosine",
    "reverse",
    "mixture",
    "short_only",
]
SHAPES = get_args(Shape)
# Shapes whose length does not depend on the ramp rate: one trial per seed, not per rate.
RATE_FREE_SHAPES = ("constant", "two_stage", "multi_stage", "short_only")
# The negative control: trained short throughout, it must come out worse than the reference.
NEGATIVE_CONTROL = "short_only"
# The shapes ``reverse`` can mirror.
Ramp = Literal["linear", "root", "geometric", "exponential", "cosine"]
RAMPS = get_args(Ramp)
# The parameters each shape reads (``reverse`` reads those of the shape it mirrors too).
SHAPE_PARAMS = {
    "two_stage": ("switch", "l_short"),
    "short_only": ("l_short",),
    "root": ("degree",),
    "geometric": ("cycles",),
    "reverse": ("reverse_of", "degree", "cycles"),
    "multi_stage": ("stages",),
    "mixture": ("mixture_lengths", "mixture_start", "mixture_end"),
}
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
# How a step's sequences are made short (docs/design.md, "Modes"): reshape (more, shorter
# rows at constant tokens), truncate (rows of l_max cut to L: fewer tokens), window (rows of
# l_max, attention limited to the last L positions), doc_buckets (rows of L cut from single
# documents, never packed across a boundary).
Mode = Literal["reshape", "truncate", "window", "doc_buckets"]
MODES = get_args(Mode)
WandbMode = Literal["auto", "offline", "online", "disabled"]
WANDB_MODES = get_args(WandbMode)
MAX_STEPS = 10_000_000  # optimizer steps of one trial: more is a typo in budget.tokens


USAGE_FIELDS = ("DIR", "WANDB_API_KEY")  # command-line positionals and environment


class SpecError(ValueError):
    """A bad spec value, or a bad command-line argument (an option such as ``--results``
    or a positional such as ``DIR``: a usage error); ``str(err)`` is the one line shown to
    the user, in the same form for both: ``KIND error: FIELD=VALUE: why``."""

    def __init__(self, field_name: str, value: Any, why: str):
        self.field, self.value, self.why = field_name, value, why
        # one line, whatever the key: a YAML key may hold a newline
        shown = field_name if field_name.isprintable() else repr(field_name)[1:-1]
        usage = field_name.startswith("--") or field_name in USAGE_FIELDS
        kind = "usage" if usage else "spec"
        super().__init__(f"{kind} error: {shown}={value!r}: {why}")

    def __reduce__(self):  # picklable and copyable across Ray processes
        return (SpecError, (self.field, self.value, self.why))


# ----------------------------------------------------------------------------- value types
# Numbers are strict: no bools, no numeric strings, no NaN or infinities. An integer may be
# written as a whole float (YAML's 2.0e+6); floats take integers.

INT_LIMIT = 2**53  # beyond: a typo, and no longer exact in JSON


def _whole(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        if abs(v) > INT_LIMIT:
            raise ValueError(f"must be at most {INT_LIMIT} in size")
        return int(v)
    return v


def _as_list(v: Any) -> Any:
    """A single value where a list is expected: the one-element list."""
    return v if isinstance(v, (list, tuple)) else [v]


def _unique(v: Any) -> Any:
    if len(set(v)) != len(v):
        raise ValueError("must not repeat")
    return v


def _entry(v: Any) -> Any:
    return {"shape": v} if isinstance(v, str) else v


def _pair(v: Any) -> Any:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError("each stage must be a [fraction, length] pair")
    return v


def _name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError("must be a non-empty name of letters, digits, '_', '.', '-'")
    return v


Int = Annotated[int, Strict(), Field(ge=-INT_LIMIT, le=INT_LIMIT), BeforeValidator(_whole)]
PosInt = Annotated[Int, Field(gt=0)]
NonNegInt = Annotated[Int, Field(ge=0)]
Seed = Annotated[Int, Field(ge=0, lt=2**32)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PosFloat = Annotated[Float, Field(gt=0)]
NonNegFloat = Annotated[Float, Field(ge=0)]
Unit = Annotated[Float, Field(ge=0, le=1)]  # [0, 1]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # [0, 1)
Rate = Annotated[Float, Field(gt=0, le=1)]  # (0, 1]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Name = Annotated[Str, AfterValidator(_name)]
Rates = Annotated[
    tuple[Rate, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_unique)
]
Stage = Annotated[tuple[Rate, PosInt], BeforeValidator(_pair)]
Stages = tuple[Stage, ...]


def Grid(t: Any) -> Any:  # noqa: N802 (a type constructor)
    """A shape parameter: one value, or a list of values (a grid axis)."""
    return Annotated[
        list[t], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_unique)
    ]


@with_config(ConfigDict(extra="forbid"))
class ShapeParams(TypedDict, total=False):
    """Shape parameters, at ``schedules`` level (defaults for every shape that reads them)
    or in a ``shapes`` / ``controls`` entry; a list of values is a grid axis."""

    switch: Grid(Unit)  # two_stage: fraction of tokens at l_short (BTLM 470/627)
    l_short: Grid(NonNegInt)  # two_stage: 0 means l_max // 4; short_only: 0 means l_min
    degree: Grid(PosFloat)  # root
    cycles: Grid(PosInt)  # geometric
    reverse_of: Grid(Ramp)  # reverse: the forward shape it mirrors
    stages: Stages  # multi_stage: (end fraction, length)
    mixture_lengths: tuple[PosInt, ...]  # mixture: support of the length distribution
    mixture_start: tuple[Unit, ...]  # probabilities at f = 0
    mixture_end: tuple[Unit, ...]  # probabilities at f >= ramp_rate


@with_config(ConfigDict(extra="forbid"))
class ShapeEntry(ShapeParams, total=False):
    """One entry of ``shapes`` / ``controls``: a shape name, or a mapping with the shape, its
    own ramp rates and parameters."""

    shape: Required[Shape]
    ramp_rates: Rates


Entries = tuple[Annotated[ShapeEntry, BeforeValidator(_entry)], ...]
SCALAR_PARAMS = {"switch": "sw", "l_short": "ls", "degree": "d", "cycles": "c", "reverse_of": ""}
LIST_PARAMS = ("stages", "mixture_lengths", "mixture_start", "mixture_end")

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
class ScheduleSpec:
    """One schedule: the shape, its lengths, ramp rate and shape-specific parameters."""

    __pydantic_config__ = _FORBID
    shape: Shape
    l_min: PosInt
    l_max: PosInt
    ramp_rate: Rate = 1.0
    multiple_of: PosInt = 8
    switch: Unit = 0.75  # two_stage: fraction of tokens at l_short (BTLM 470/627)
    l_short: NonNegInt = 0  # two_stage: 0 means l_max // 4; short_only: 0 means l_min
    degree: PosFloat = 2.0  # root
    cycles: PosInt = 1  # geometric
    reverse_of: Ramp = "linear"  # reverse: the forward shape it mirrors
    stages: Stages = ()  # multi_stage: (end fraction, length)
    mixture_lengths: tuple[PosInt, ...] = ()  # mixture: support of the length distribution
    mixture_start: tuple[Unit, ...] = ()  # probabilities at f = 0
    mixture_end: tuple[Unit, ...] = ()  # probabilities at f >= ramp_rate
    tag: Str = ""  # the grid parameters that tell this schedule from its siblings
    control: Bool = False  # a control of the sweep: measured, never picked
    mode: Mode = "reshape"  # how a step's sequences are made short (MODES)

    @property
    def label(self) -> str:
        """Human name of the schedule, without the seed; the mode is named unless reshape."""
        base = self.shape + self.tag
        if self.shape not in RATE_FREE_SHAPES:
            base += f"-r{self.ramp_rate:g}"
        return base if self.mode == "reshape" else f"{base}-{self.mode}"


@dataclass(frozen=True)
class SchedulesSpec:
    """The ``schedules`` section; in YAML the shape parameters (``params``) sit directly in
    it, beside the fields."""

    __pydantic_config__ = _FORBID
    l_min: PosInt
    l_max: PosInt
    shapes: Annotated[Entries, BeforeValidator(_as_list), Field(min_length=1)]
    ramp_rates: Rates = (1.0,)
    multiple_of: PosInt = 8
    reference: Str = "constant"
    params: ShapeParams = field(default_factory=dict)  # type: ignore[assignment]
    controls: Annotated[Entries, BeforeValidator(_as_list)] = ()  # e.g. short_only, never picked
    modes: Annotated[
        tuple[Mode, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_unique)
    ] = ("reshape",)  # an axis crossed with every shape and rate


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


def _range(v: Any) -> Any:
    """A [low, high] pair, low <= high (one value: a fixed point)."""
    v = _as_list(v)
    if isinstance(v, list) and len(v) == 1:
        v = v * 2
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        if v[0] > v[1]:
            raise ValueError("must be [low, high] with low <= high")
    return v


def Range(t: Any) -> Any:  # noqa: N802 (a type constructor)
    """A search range: [low, high] of ``t`` (or one value)."""
    return Annotated[tuple[t, t], BeforeValidator(_range)]


# Shapes the search samples: the ramps and BTLM's two stages (the reference and controls
# run as fixed trials beside it, from ``schedules``).
SearchShape = Literal["linear", "root", "geometric", "exponential", "cosine", "two_stage"]


@dataclass(frozen=True)
class SearchSpace:
    """What the searcher chooses for each sample: a shape (categorical) and the continuous
    parameters the chosen shape reads; a range of one value fixes the parameter."""

    __pydantic_config__ = _FORBID
    shapes: Annotated[
        tuple[SearchShape, ...],
        BeforeValidator(_as_list),
        Field(min_length=1),
        AfterValidator(_unique),
    ] = ("linear", "root", "geometric", "two_stage")
    ramp_rate: Range(Rate) = (0.1, 1.0)  # ramps
    l_min: Range(PosInt) | None = None  # ramps; default: schedules.l_min, fixed
    switch: Range(Unit) = (0.5, 0.9)  # two_stage: fraction of tokens at l_short
    l_short: Range(PosInt) | None = None  # two_stage; default: l_max // 4, fixed
    degree: Range(PosFloat) = (1.5, 4.0)  # root
    modes: Annotated[
        tuple[Mode, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_unique)
    ] = ("reshape",)


@dataclass(frozen=True)
class EarlyStopSpec:
    """Stop a sampled trial whose intermediate evaluation is dominated at a rung; never
    before its schedule has trained ``min_at_l_max`` of the budget at l_max."""

    __pydantic_config__ = _FORBID
    enabled: Bool = False
    rungs: Annotated[
        tuple[Annotated[Float, Field(gt=0, lt=1)], ...],
        BeforeValidator(_as_list),
        Field(min_length=1),
        AfterValidator(_unique),
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
    seeds: Annotated[tuple[Seed, ...], Field(min_length=2), AfterValidator(_unique)] = (
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
    seeds: Annotated[tuple[Seed, ...], Field(min_length=1), AfterValidator(_unique)] = (0,)
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
        d = _plain(dataclasses.asdict(self))
        d["schedules"].update(d["schedules"].pop("params"))
        return d

    def trials(self) -> list[TrialSpec]:
        return expand(self)


@dataclass(frozen=True)
class TrialSpec:
    trial_id: str
    seed: int
    schedule: ScheduleSpec
    sweep: SweepSpec

    @property
    def role(self) -> str:
        """reference, control or candidate: what the pick rule may do with it."""
        if self.schedule.label == self.sweep.schedules.reference:
            return "reference"
        return "control" if self.schedule.control else "candidate"

    def plan(self):
        """The step table this trial trains on (``schedules.Plan``)."""
        from sweep.config import schedules  # schedules imports this module, never the reverse

        b = self.sweep.budget
        return schedules.plan(self.schedule, b.tokens, b.tokens_per_step, self.seed)

    def to_dict(self) -> dict:
        return {
            "trial_id": self.trial_id,
            "seed": self.seed,
            "schedule": _plain(dataclasses.asdict(self.schedule)),
            "sweep": self.sweep.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrialSpec:
        sched = _validated(ScheduleSpec, d["schedule"], "schedule")
        return cls(d["trial_id"], d["seed"], sched, parse(d["sweep"], paths=False))


def _plain(obj: Any) -> Any:
    """Tuples to lists, recursively, so dicts round-trip through JSON and YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- parsing


def read_yaml(path: str | Path) -> dict:
    """A spec (or study) file's YAML mapping, or a SpecError saying why not."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("spec", str(path), "file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except UnicodeDecodeError as e:
        raise SpecError("spec", str(path), f"not valid YAML (not UTF-8 text: {e.reason})") from None
    except yaml.YAMLError as e:
        raise SpecError("spec", str(path), f"not valid YAML ({_yaml_why(e)})") from None
    if not isinstance(raw, dict):
        raise SpecError("spec", str(path), "must be a YAML mapping")
    return raw


def _yaml_why(e: yaml.YAMLError) -> str:
    """The parser's complaint with its place: line and column (1-based) of the problem,
    and a tab named as such (YAML forbids tabs in indentation)."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if mark is not None and mark.buffer and mark.pointer < len(mark.buffer):
        if mark.buffer[mark.pointer] == "\t" or "\t" in problem:
            problem = "a tab character (indent with spaces)"
    return problem + where


def load(path: str | Path) -> SweepSpec:
    return parse(read_yaml(path))


def parse(raw: dict, paths: bool = True) -> SweepSpec:
    """The one validated ``SweepSpec`` of a spec in its YAML form, or a ``SpecError``.
    ``paths=False``: a stored spec (a results directory's, a record's), validated whole
    except for the files it names on this machine (``check_paths``): reading results
    never needs the corpus."""
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
    spec = _validated(SweepSpec, data, "")
    _check(spec)
    if paths:
        check_paths(spec)
    return spec


def check_paths(spec: SweepSpec) -> None:
    """The files a spec names exist on this machine: what training needs and reading
    results does not."""
    corpus, tk = spec.data.corpus, spec.data.tokenizer
    if corpus.startswith("files:") and not Path(corpus[6:]).exists():
        raise SpecError("data.corpus", corpus, "path does not exist")
    if tk.endswith(".json") and not Path(tk).is_file():
        raise SpecError("data.tokenizer", tk, "file not found")


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _validated(cls: type, data: Any, prefix: str) -> Any:
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise _spec_error(exc.errors()[0], data, prefix) from None


# What a pydantic error type means, in the words of a SpecError.
_WHY = {
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must not be empty",
    "missing": "is required",
    "missing_keyword_argument": "is required",
}


def _spec_error(err: dict, data: Any, prefix: str) -> SpecError:
    """The first pydantic error as a SpecError naming the field's dotted path."""
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx", {})
    name = _where(loc, data, prefix)
    value = None if kind.startswith("missing") else _plain(err["input"])
    bounds = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    if loc[-1:] == ("shape",) and kind == "missing":
        value, why = _plain(err["input"]), "an entry needs a shape"
    elif "[key]" in loc:
        why = "keys must be strings"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_fields(loc, prefix)
        why = f"unknown field (known: {', '.join(known)})"
    elif kind in _WHY:
        why = _WHY[kind]
    elif kind == "literal_error":
        why = f"must be one of {ctx['expected'].replace(chr(39), '')}"
    elif kind == "value_error":
        why = str(ctx["error"])
    elif set(ctx) & set(bounds):
        limit = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in ctx.items()}
        why = " and ".join(f"must be {bounds[k]} {limit[k]}" for k in bounds if k in ctx)
    elif kind == "too_long":
        why = f"must have at most {ctx['max_length']} items"
    else:
        why = err["msg"].splitlines()[0]
    return SpecError(name, value, why)


def _where(loc: tuple, data: Any, prefix: str) -> str:
    """``('schedules', 'shapes', 1, 'switch', 0)`` -> ``schedules.shapes[two_stage].switch``:
    list positions dropped, except that an entry of shapes / controls is named by its shape;
    ``params`` (the YAML's schedules level) dropped."""
    parts = [prefix] if prefix else []
    node = data
    for i, key in enumerate(loc):
        child = _child(node, key)
        if isinstance(key, int):
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            shape = child.get("shape") if isinstance(child, dict) else None
            if parts and parts[-1] in ("shapes", "controls") and nxt not in (None, "shape"):
                if isinstance(shape, str):
                    parts[-1] += f"[{shape}]"
        elif key == "params" and i == 1 and parts == ["schedules"]:
            pass
        elif key == "shape" and parts and parts[-1] in ("shapes", "controls"):
            pass
        elif key != "[key]":  # a bad key of a mapping: named by the mapping
            parts.append(str(key))
        node = child
    return ".".join(parts) or "spec"


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, int) and isinstance(node, (list, tuple)) and -len(node) <= key < len(node):
        return _entry(node[key])
    if isinstance(node, dict):
        return node.get(key)
    return None


def _known_fields(loc: tuple, prefix: str) -> list[str]:
    """The keys allowed where ``loc`` names an unknown one."""
    path = [k for k in loc[:-1] if isinstance(k, str)]
    if prefix == "schedule":
        return _field_names(ScheduleSpec)
    if path[-1:] in (["shapes"], ["controls"]):
        return list(ShapeEntry.__annotations__)
    if path[:1] == ["schedules"]:
        own = [n for n in _field_names(SchedulesSpec) if n != "params"]
        return own + list(ShapeParams.__annotations__)
    if path:
        return _field_names(_SECTIONS[path[0]])
    return _field_names(SweepSpec)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


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
    if m.arch not in ARCHS:
        _check_transformers_arch(m)
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
_HF_SET = {
    "hidden_size": "model.d_model",
    "num_hidden_layers": "model.n_layers",
    "num_attention_heads": "model.n_heads",
    "vocab_size": "the tokenizer",
}


def _check_transformers_arch(m: ModelSpec) -> None:
    from sweep.train.model import causal_lm_types

    if m.arch not in causal_lm_types():
        raise SpecError(
            "model.arch",
            m.arch,
            "unknown architecture (btlm-proxy or a transformers causal-LM "
            "model type such as falcon or llama)",
        )
    for key in PROXY_ONLY:
        value = getattr(m, key)
        if value != getattr(ModelSpec, key):
            raise SpecError(f"model.{key}", value, f"is a btlm-proxy field, unused by {m.arch}")
    from transformers import AutoConfig

    base = AutoConfig.for_model(m.arch)
    aliases = {v: k for k, v in getattr(base, "attribute_map", {}).items()}
    for key in m.hf_config:
        owner = _HF_SET.get(aliases.get(key, key))
        if owner:
            raise SpecError(f"model.hf_config.{key}", m.hf_config[key], f"is set by {owner}")
        if key not in base.to_dict() and key not in aliases:
            raise SpecError(
                f"model.hf_config.{key}",
                m.hf_config[key],
                f"is not a field of {type(base).__name__}",
            )
    try:
        AutoConfig.for_model(
            m.arch,
            hidden_size=m.d_model,
            num_hidden_layers=m.n_layers,
            num_attention_heads=m.n_heads,
            **m.hf_config,
        )
    except Exception as exc:  # transformers' own check of the values, in its words
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SpecError("model.hf_config", m.hf_config, f"refused by {m.arch}: {why}") from None


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
            raise SpecError(f"data.{key}", _plain(getattr(d, key)), why)
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
    _check_unused_parameters(s)


def _check_unused_parameters(s: SchedulesSpec) -> None:
    """No silent knobs: a shape parameter or ramp rate that no listed shape reads."""
    entries = [(e, "shapes") for e in s.shapes] + [(e, "controls") for e in s.controls]
    for entry, where in entries:
        shape = entry["shape"]
        for key, value in entry.items():
            if key in ("shape", "ramp_rates"):
                continue
            if key not in SHAPE_PARAMS.get(shape, ()):
                raise SpecError(
                    f"schedules.{where}[{shape}].{key}", _plain(value), f"is unused by {shape}"
                )
        rates = entry.get("ramp_rates", (1.0,))
        if shape in RATE_FREE_SHAPES and tuple(rates) != (1.0,):
            raise SpecError(
                f"schedules.{where}[{shape}].ramp_rates",
                _plain(rates),
                f"is unused: {shape} does not depend on the ramp rate",
            )
    readers = {k for e, _ in entries for k in SHAPE_PARAMS.get(e["shape"], ())}
    for key, value in s.params.items():
        if key not in readers:
            raise SpecError(f"schedules.{key}", _plain(value), "is unused by every shape listed")
    rated = [e for e, _ in entries if e["shape"] not in RATE_FREE_SHAPES and "ramp_rates" not in e]
    if not rated and s.ramp_rates != (1.0,):
        raise SpecError(
            "schedules.ramp_rates", list(s.ramp_rates), "is unused by every shape listed"
        )


def validate_schedule(s: ScheduleSpec) -> None:
    """Checks of one schedule: its field types and bounds, then the shape's own rules;
    raises SpecError naming the schedule field (``schedules.stages``, ...)."""
    _validated(ScheduleSpec, dataclasses.asdict(s), "schedules")
    if s.l_min > s.l_max:
        raise SpecError("schedules.l_min", s.l_min, f"is larger than l_max={s.l_max}")
    if s.shape in ("two_stage", "short_only") and s.l_short:
        if not s.l_min <= s.l_short <= s.l_max:
            raise SpecError("schedules.l_short", s.l_short, "must lie in [l_min, l_max]")
    if s.shape == "multi_stage":
        if not s.stages:
            raise SpecError(
                "schedules.stages", [], "multi_stage needs a list of [fraction, length]"
            )
        fracs = [f for f, _ in s.stages]
        if any(b <= a for a, b in zip(fracs, fracs[1:])):
            raise SpecError("schedules.stages", fracs, "fractions must increase")
        if not math.isclose(fracs[-1], 1.0):
            raise SpecError("schedules.stages", fracs, "fractions must end at 1")
        for _, length in s.stages:
            if not s.l_min <= length <= s.l_max:
                raise SpecError("schedules.stages", length, "stage length outside [l_min, l_max]")
    if s.shape == "mixture":
        n = len(s.mixture_lengths)
        if n == 0:
            raise SpecError("schedules.mixture_lengths", [], "mixture needs a list of lengths")
        for length in s.mixture_lengths:
            if not s.l_min <= length <= s.l_max:
                raise SpecError("schedules.mixture_lengths", length, "outside [l_min, l_max]")
        for key in ("mixture_start", "mixture_end"):
            probs = getattr(s, key)
            if not probs:
                continue
            if len(probs) != n:
                raise SpecError(f"schedules.{key}", list(probs), f"needs {n} probabilities")
            if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
                raise SpecError(f"schedules.{key}", list(probs), "probabilities must sum to 1")


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


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """The grid: for every mode and shape entry, its scalar-parameter axes x ramp rates, x
    seeds; then the controls the same way. Rate-free shapes run once per seed, not once per
    rate; ``constant`` under truncate or window trains exactly as under reshape, so it runs
    once (as ``constant``). A schedule listed twice, or both as a candidate and a control,
    is refused."""
    s = spec.schedules
    seen: dict[str, tuple[ScheduleSpec, int]] = {}
    entries = [(False, e) for e in s.shapes] + [(True, e) for e in s.controls]
    for index, (control, entry) in enumerate(entries):
        for mode, sched in itertools.product(s.modes, _entry_schedules(s, entry, control)):
            if not (sched.shape == "constant" and mode in ("truncate", "window")):
                sched = dataclasses.replace(sched, mode=mode)
            old, where = seen.setdefault(sched.label, (sched, index))
            if old.control != control:
                raise SpecError(
                    "schedules.controls", sched.label, "is also one of the sweep's shapes"
                )
            if where != index:
                name = "schedules.controls" if control else "schedules.shapes"
                raise SpecError(name, sched.label, "is listed twice")
    return [
        TrialSpec(f"{label}-s{seed}", seed, sched, spec)
        for label, (sched, _) in seen.items()
        for seed in spec.seeds
    ]


def _entry_schedules(s: SchedulesSpec, entry: dict, control: bool) -> list[ScheduleSpec]:
    shape = entry["shape"]
    reads = SHAPE_PARAMS.get(shape, ())
    own = {k: v for k, v in entry.items() if k in reads}
    params = {k: v for k, v in {**s.params, **own}.items() if k in reads}
    fixed = {k: tuple(v) for k, v in params.items() if k in LIST_PARAMS}
    axes = {k: list(v) for k, v in params.items() if k in SCALAR_PARAMS}
    tagged = [k for k, v in axes.items() if len(v) > 1 or k in own]
    rates = [1.0] if shape in RATE_FREE_SHAPES else entry.get("ramp_rates", s.ramp_rates)
    out = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo))
        tag = "".join(f"-{SCALAR_PARAMS[k]}{_fmt(chosen[k])}" for k in tagged)
        for rate in rates:
            out.append(
                ScheduleSpec(
                    shape=shape,
                    l_min=s.l_min,
                    l_max=s.l_max,
                    ramp_rate=float(rate),
                    multiple_of=s.multiple_of,
                    tag=tag,
                    control=control,
                    **fixed,
                    **chosen,
                )
            )
    return out
