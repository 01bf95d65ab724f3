"""Sweep spec: YAML -> one validated, immutable ``SweepSpec`` -> ``TrialSpec`` x N.

Validation happens here and only here, before anything starts: every error is a
``SpecError`` that names the field and the offending value in one line.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHAPES = (
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
)
# Shapes whose length does not depend on the ramp rate: one trial per seed, not per rate.
RATE_FREE_SHAPES = ("constant", "two_stage", "multi_stage", "short_only")
# The negative control: trained short throughout, it must come out worse than the reference.
NEGATIVE_CONTROL = "short_only"
POSITIONS = ("alibi", "rope", "none")
ARCHS = ("btlm-proxy",)
# How a step's sequences are made short (docs/design.md, "Modes"): reshape (more, shorter
# rows at constant tokens), truncate (rows of l_max cut to L: fewer tokens), window (rows of
# l_max, attention limited to the last L positions), doc_buckets (rows of L cut from single
# documents, never packed across a boundary).
MODES = ("reshape", "truncate", "window", "doc_buckets")
WANDB_MODES = ("auto", "offline", "online", "disabled")


class SpecError(ValueError):
    """A bad spec value; ``str(err)`` is the one line shown to the user."""

    def __init__(self, field_name: str, value: Any, why: str):
        self.field, self.value, self.why = field_name, value, why
        super().__init__(f"spec error: {field_name}={value!r}: {why}")

    def __reduce__(self):  # picklable and copyable across Ray processes
        return (SpecError, (self.field, self.value, self.why))


@dataclass(frozen=True)
class Budget:
    tokens: int
    tokens_per_step: int
    micro_batches: int = 1  # gradient accumulation: each step's rows in this many pieces


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "btlm-proxy"
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    position: str = "alibi"
    ffn_mult: float = 8 / 3
    mup_base_width: int = 128
    init_std: float = 0.02
    embeddings_scale: float = 10.0
    hf_config: dict = field(default_factory=dict)  # extra config for a transformers arch
    attention: str = "auto"  # btlm-proxy: sdpa | flex | auto (FlexAttention on CUDA)


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 3e-3
    warmup_fraction: float = 0.02
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0


@dataclass(frozen=True)
class DataSpec:
    corpus: str = "stdlib"  # stdlib | files:PATH (text, jsonl, parquet) | hf:NAME (streamed)
    tokenizer: str = "byte"
    held_out_fraction: float = 0.1
    text_field: str = "text"  # the text of a jsonl / parquet / hub record
    sets: tuple = ()  # keep only these SlimPajama meta.redpajama_set_name values
    max_documents: int = 20000  # hf: how many records to stream
    vocab_size: int = 4096  # bpe: vocabulary size to train
    doc_mask: bool = False  # no attention across document boundaries in packed rows
    # Long-range structure a small model learns in minutes: this fraction of documents
    # (chosen by a hash of their name, in both splits) get spans of `repeat_span` tokens
    # copied from earlier in the same document, at distances log-uniform in
    # [repeat_span, repeat_max_distance] (0: the eval length E). Metrics are reported on
    # the natural documents alone as well.
    repeat_share: float = 0.0
    repeat_span: int = 32
    repeat_max_distance: int = 0


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule: the shape, its lengths, ramp rate and shape-specific parameters."""

    shape: str
    l_min: int
    l_max: int
    ramp_rate: float = 1.0
    multiple_of: int = 8
    switch: float = 0.75  # two_stage: fraction of tokens at l_short (BTLM 470/627)
    l_short: int = 0  # two_stage: 0 means l_max // 4; short_only: 0 means l_min
    degree: float = 2.0  # root
    cycles: int = 1  # geometric
    reverse_of: str = "linear"  # reverse: the forward shape it mirrors
    stages: tuple[tuple[float, int], ...] = ()  # multi_stage: (end fraction, length)
    mixture_lengths: tuple[int, ...] = ()  # mixture: support of the length distribution
    mixture_start: tuple[float, ...] = ()  # probabilities at f = 0
    mixture_end: tuple[float, ...] = ()  # probabilities at f >= ramp_rate
    tag: str = ""  # the grid parameters that tell this schedule from its siblings
    control: bool = False  # a control of the sweep: measured, never picked
    mode: str = "reshape"  # how a step's sequences are made short (MODES)

    @property
    def label(self) -> str:
        """Human name of the schedule, without the seed; the mode is named unless reshape."""
        base = self.shape + self.tag
        if self.shape not in RATE_FREE_SHAPES:
            base += f"-r{self.ramp_rate:g}"
        return base if self.mode == "reshape" else f"{base}-{self.mode}"


@dataclass(frozen=True)
class SchedulesSpec:
    l_min: int
    l_max: int
    shapes: tuple[dict, ...]  # {"shape": NAME, optional ramp_rates and shape parameters}
    ramp_rates: tuple[float, ...] = (1.0,)
    multiple_of: int = 8
    reference: str = "constant"
    params: dict = field(default_factory=dict)  # shape-specific defaults (switch, degree, ...)
    controls: tuple[dict, ...] = ()  # entries like `shapes`, e.g. short_only (never picked)
    modes: tuple[str, ...] = ("reshape",)  # an axis crossed with every shape and rate


@dataclass(frozen=True)
class EvalSpec:
    multiple: int = 4
    sequences: int = 256  # eval windows, each at a seeded random offset in a held-out doc
    batch_size: int = 8
    every_fraction: float = 0.0  # intermediate evaluations every this fraction of the budget
    intermediate_sequences: int = 64  # the first this many of the final eval's sequences
    probe_sequences: int = 64  # sequences for the sliding-window and copy probes
    window_stride: int = 0  # sliding-window eval stride (0: l_max // 4)
    copy_span: int = 32  # tokens of the repeated span in the copy probe
    seed: int = 0  # eval offsets: the same windows for every trial of the sweep

    def length(self, l_max: int) -> int:
        return self.multiple * l_max


@dataclass(frozen=True)
class DeepSpeedSpec:
    zero_stage: int = 1


@dataclass(frozen=True)
class Resources:
    workers_per_trial: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0
    max_concurrent_trials: int = 2
    max_failures: int = 2  # restarts of a failed trial, each from its last checkpoint


@dataclass(frozen=True)
class CheckpointSpec:
    every_tokens: int = 0  # 0: no checkpoints (a failed trial then restarts from scratch)


@dataclass(frozen=True)
class WandbSpec:
    mode: str = "auto"  # online when WANDB_API_KEY is set where the sweep runs, else offline
    project: str = "ctx-schedules"
    entity: str | None = None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    budget: Budget
    model: ModelSpec
    data: DataSpec
    schedules: SchedulesSpec
    eval: EvalSpec
    optim: OptimSpec = OptimSpec()
    seeds: tuple[int, ...] = (0,)
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    resources: Resources = Resources()
    wandb: WandbSpec = WandbSpec()
    checkpoint: CheckpointSpec = CheckpointSpec()
    log_every_steps: int = 5

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

    def to_dict(self) -> dict:
        return {
            "trial_id": self.trial_id,
            "seed": self.seed,
            "schedule": _plain(dataclasses.asdict(self.schedule)),
            "sweep": self.sweep.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrialSpec:
        sched = dict(d["schedule"])
        sched["stages"] = tuple(tuple(s) for s in sched.get("stages", ()))
        for key in ("mixture_lengths", "mixture_start", "mixture_end"):
            sched[key] = tuple(sched.get(key, ()))
        return cls(d["trial_id"], d["seed"], ScheduleSpec(**sched), parse(d["sweep"]))


def _plain(obj: Any) -> Any:
    """Tuples to lists, recursively, so dicts round-trip through JSON and YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- parsing


def load(path: str | Path) -> SweepSpec:
    p = Path(path)
    if not p.is_file():
        raise SpecError("spec", str(path), "file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError("spec", str(path), f"not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SpecError("spec", str(path), "must be a YAML mapping")
    return parse(raw)


def _section(raw: dict, key: str, required: bool = False) -> dict:
    val = raw.get(key)
    if val is None:
        if required:
            raise SpecError(key, None, "section is required")
        return {}
    if not isinstance(val, dict):
        raise SpecError(key, val, "must be a mapping")
    return val


def _build(cls: type, raw: dict, prefix: str, **overrides: Any) -> Any:
    """Construct dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, val in raw.items():
        if key not in fields:
            raise SpecError(f"{prefix}.{key}", val, f"unknown field (known: {', '.join(fields)})")
        kwargs[key] = _coerce(f"{prefix}.{key}", val, fields[key])
    kwargs.update(overrides)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SpecError(f"{prefix}.{missing[0]}", None, "is required")
    return cls(**kwargs)


def _coerce(name: str, val: Any, f: dataclasses.Field) -> Any:
    t = str(f.type)
    if t == "int":
        if isinstance(val, bool) or not isinstance(val, int):
            if isinstance(val, float) and val.is_integer():
                return int(val)
            raise SpecError(name, val, "must be an integer")
        return val
    if t == "float":
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise SpecError(name, val, "must be a number")
        return float(val)
    if t == "str":
        if not isinstance(val, str):
            raise SpecError(name, val, "must be a string")
        return val
    if t == "tuple":
        if not isinstance(val, (list, tuple)):
            raise SpecError(name, val, "must be a list")
        return tuple(val)
    return val


def parse(raw: dict) -> SweepSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SpecError("name", name, "must be a non-empty name of letters, digits, '_', '.', '-'")
    known = {f.name for f in dataclasses.fields(SweepSpec)}
    for key in raw:
        if key not in known:
            raise SpecError(key, raw[key], f"unknown field (known: {', '.join(sorted(known))})")

    budget_raw = _section(raw, "budget", True)
    if "batching" in budget_raw:
        raise SpecError(
            "budget.batching",
            budget_raw["batching"],
            f"moved to schedules.modes (a sweep axis: {', '.join(MODES)})",
        )
    budget = _build(Budget, budget_raw, "budget")
    model = _build(ModelSpec, _section(raw, "model"), "model")
    data = _build(DataSpec, _section(raw, "data"), "data")
    optim = _build(OptimSpec, _section(raw, "optim"), "optim")
    ev = _build(EvalSpec, _section(raw, "eval"), "eval")
    ds = _build(DeepSpeedSpec, _section(raw, "deepspeed"), "deepspeed")
    res = _build(Resources, _section(raw, "resources"), "resources")
    wb = _build(WandbSpec, _section(raw, "wandb"), "wandb")
    ck = _build(CheckpointSpec, _section(raw, "checkpoint"), "checkpoint")
    scheds = _parse_schedules(_section(raw, "schedules", True))

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise SpecError("seeds", seeds, "must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise SpecError("seeds", seeds, "must not repeat")
    log_every = raw.get("log_every_steps", 5)
    if type(log_every) is not int or log_every < 1:
        raise SpecError("log_every_steps", log_every, "must be a positive integer")

    spec = SweepSpec(
        name=name,
        budget=budget,
        model=model,
        data=data,
        schedules=scheds,
        eval=ev,
        optim=optim,
        seeds=tuple(seeds),
        deepspeed=ds,
        resources=res,
        wandb=wb,
        checkpoint=ck,
        log_every_steps=log_every,
    )
    _check(spec)
    return spec


SCALAR_PARAMS = {"switch": "sw", "l_short": "ls", "degree": "d", "cycles": "c", "reverse_of": ""}
LIST_PARAMS = ("stages", "mixture_lengths", "mixture_start", "mixture_end")


def _rates(val: Any, name: str) -> tuple[float, ...]:
    rates = val if isinstance(val, list) else [val]
    if not rates:
        raise SpecError(name, val, "must list at least one ramp rate")
    for r in rates:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0 < r <= 1):
            raise SpecError(name, r, "each ramp rate must be in (0, 1]")
    return tuple(float(r) for r in rates)


def _modes(val: Any) -> tuple[str, ...]:
    modes = [val] if isinstance(val, str) else val
    if not isinstance(modes, list) or not modes:
        raise SpecError("schedules.modes", val, f"must list one or more of {', '.join(MODES)}")
    for m in modes:
        if m not in MODES:
            raise SpecError("schedules.modes", m, f"unknown mode (known: {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise SpecError("schedules.modes", modes, "must not repeat")
    return tuple(modes)


def _shape_params(raw: dict, prefix: str) -> dict:
    out = {}
    for key, val in raw.items():
        if key not in SCALAR_PARAMS and key not in LIST_PARAMS:
            raise SpecError(f"{prefix}.{key}", val, "unknown field")
        out[key] = val
    return out


def _entries(shapes: Any, name: str, required: bool) -> list[dict]:
    """``shapes`` / ``controls`` entries: names or mappings ``{shape: NAME, ramp_rates:
    [...], PARAM: value-or-list}``; a list-valued scalar parameter is a grid axis."""
    if isinstance(shapes, str):
        shapes = [shapes]
    if not isinstance(shapes, list) or (required and not shapes):
        raise SpecError(name, shapes, "must be a non-empty list of shape names")
    entries = []
    for entry in shapes:
        entry = {"shape": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or entry.get("shape") not in SHAPES:
            bad = entry.get("shape") if isinstance(entry, dict) else entry
            raise SpecError(name, bad, f"unknown shape (known: {', '.join(SHAPES)})")
        rest = {k: v for k, v in entry.items() if k not in ("shape", "ramp_rates")}
        _shape_params(rest, f"{name}[{entry['shape']}]")
        if "ramp_rates" in entry:
            entry = {**entry, "ramp_rates": list(_rates(entry["ramp_rates"], f"{name}.ramp_rates"))}
        entries.append(entry)
    return entries


def _parse_schedules(raw: dict) -> SchedulesSpec:
    raw = dict(raw)
    entries = _entries(raw.pop("shapes", None), "schedules.shapes", required=True)
    controls = _entries(raw.pop("controls", []), "schedules.controls", required=False)
    out: dict[str, Any] = {
        "shapes": tuple(entries),
        "controls": tuple(controls),
        "ramp_rates": _rates(raw.pop("ramp_rates", [1.0]), "schedules.ramp_rates"),
        "modes": _modes(raw.pop("modes", ["reshape"])),
    }
    for key in ("l_min", "l_max", "multiple_of"):
        if key in raw:
            v = raw.pop(key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(f"schedules.{key}", v, "must be an integer")
            out[key] = v
    for key in ("l_min", "l_max"):
        if key not in out:
            raise SpecError(f"schedules.{key}", None, "is required")
    if "reference" in raw:
        out["reference"] = raw.pop("reference")
    out["params"] = _shape_params(raw, "schedules")
    return SchedulesSpec(**out)


def _positive(name: str, val: float) -> None:
    if val <= 0:
        raise SpecError(name, val, "must be positive")


def _check(spec: SweepSpec) -> None:
    b, m, s, e = spec.budget, spec.model, spec.schedules, spec.eval
    _positive("budget.tokens", b.tokens)
    _positive("budget.tokens_per_step", b.tokens_per_step)
    _positive("budget.micro_batches", b.micro_batches)
    if b.tokens < b.tokens_per_step:
        raise SpecError("budget.tokens", b.tokens, "is smaller than one step (tokens_per_step)")
    if m.arch not in ARCHS:
        from sweep.model import causal_lm_types

        if m.arch not in causal_lm_types():
            raise SpecError(
                "model.arch",
                m.arch,
                "unknown architecture (btlm-proxy or a transformers causal-LM "
                "model type such as falcon or llama)",
            )
    if m.attention not in ("auto", "sdpa", "flex"):
        raise SpecError("model.attention", m.attention, "must be auto, sdpa or flex")
    if not isinstance(m.hf_config, dict):
        raise SpecError("model.hf_config", m.hf_config, "must be a mapping")
    if m.position not in POSITIONS:
        raise SpecError("model.position", m.position, f"must be one of {', '.join(POSITIONS)}")
    for key in ("d_model", "n_layers", "n_heads", "mup_base_width"):
        _positive(f"model.{key}", getattr(m, key))
    if m.d_model % m.n_heads:
        raise SpecError("model.d_model", m.d_model, f"is not divisible by n_heads={m.n_heads}")
    if spec.data.corpus != "stdlib" and not spec.data.corpus.startswith(("files:", "hf:")):
        raise SpecError("data.corpus", spec.data.corpus, "must be stdlib, files:PATH or hf:NAME")
    _positive("data.max_documents", spec.data.max_documents)
    if not isinstance(spec.data.doc_mask, bool):
        raise SpecError("data.doc_mask", spec.data.doc_mask, "must be true or false")
    if spec.data.doc_mask and m.arch != "btlm-proxy":
        raise SpecError("data.doc_mask", True, f"is supported by btlm-proxy only, not {m.arch}")
    if spec.data.corpus.startswith("files:") and not Path(spec.data.corpus[6:]).exists():
        raise SpecError("data.corpus", spec.data.corpus, "path does not exist")
    tk = spec.data.tokenizer
    if tk not in ("byte", "bpe") and not tk.startswith("hf:") and not tk.endswith(".json"):
        raise SpecError("data.tokenizer", tk, "must be byte, bpe, hf:NAME or a tokenizer.json")
    if tk.endswith(".json") and not Path(tk).is_file():
        raise SpecError("data.tokenizer", tk, "file not found")
    if tk == "bpe" and spec.data.vocab_size < 260:
        raise SpecError("data.vocab_size", spec.data.vocab_size, "must be at least 260 for BPE")
    if not 0 < spec.data.held_out_fraction < 1:
        raise SpecError("data.held_out_fraction", spec.data.held_out_fraction, "must be in (0, 1)")
    _positive("schedules.l_min", s.l_min)
    _positive("schedules.l_max", s.l_max)
    _positive("schedules.multiple_of", s.multiple_of)
    if s.l_min > s.l_max:
        raise SpecError("schedules.l_min", s.l_min, f"is larger than l_max={s.l_max}")
    if s.multiple_of > s.l_min:
        raise SpecError("schedules.multiple_of", s.multiple_of, f"is larger than l_min={s.l_min}")
    for key in ("l_min", "l_max"):
        if getattr(s, key) % s.multiple_of:
            raise SpecError(
                f"schedules.{key}", getattr(s, key), f"is not a multiple of {s.multiple_of}"
            )
    if b.tokens_per_step % s.l_max:  # every mode: a step holds whole rows of l_max
        raise SpecError(
            "budget.tokens_per_step", b.tokens_per_step, f"is not a multiple of l_max={s.l_max}"
        )
    if "doc_buckets" in s.modes and spec.data.doc_mask:
        raise SpecError(
            "data.doc_mask", True, "is redundant with doc_buckets (its rows hold one document)"
        )
    if "window" in s.modes and m.arch != "btlm-proxy":
        raise SpecError(
            "schedules.modes", "window", f"is supported by btlm-proxy only, not {m.arch}"
        )
    trials = expand(spec)
    if s.reference not in {t.schedule.label for t in trials} and s.reference not in SHAPES:
        raise SpecError("schedules.reference", s.reference, "names no schedule of this sweep")
    if any(t.schedule.control and t.role == "reference" for t in trials):
        raise SpecError("schedules.reference", s.reference, "is one of the controls")
    d = spec.data
    if not 0 <= d.repeat_share < 1:
        raise SpecError("data.repeat_share", d.repeat_share, "must be in [0, 1)")
    if d.repeat_span < 2:
        raise SpecError("data.repeat_span", d.repeat_span, "must be at least 2 tokens")
    if d.repeat_max_distance < 0 or 0 < d.repeat_max_distance < d.repeat_span:
        raise SpecError(
            "data.repeat_max_distance", d.repeat_max_distance, "must be 0 (E) or >= repeat_span"
        )
    stride = e.window_stride or s.l_max // 4
    if e.window_stride < 0 or stride < 1 or s.l_max % stride:
        raise SpecError("eval.window_stride", e.window_stride, f"must divide l_max={s.l_max}")
    if not 2 <= e.copy_span <= s.l_max // 2:
        raise SpecError("eval.copy_span", e.copy_span, f"must be in [2, l_max/2={s.l_max // 2}]")
    _positive("eval.probe_sequences", e.probe_sequences)
    _positive("eval.multiple", e.multiple)
    _positive("eval.sequences", e.sequences)
    _positive("eval.batch_size", e.batch_size)
    _positive("eval.intermediate_sequences", e.intermediate_sequences)
    if not 0 <= e.every_fraction < 1:
        raise SpecError(
            "eval.every_fraction", e.every_fraction, "must be in [0, 1) (0: final only)"
        )
    if spec.deepspeed.zero_stage not in (0, 1, 2, 3):
        raise SpecError("deepspeed.zero_stage", spec.deepspeed.zero_stage, "must be 0, 1, 2 or 3")
    r = spec.resources
    for key in ("workers_per_trial", "cpus_per_worker", "max_concurrent_trials"):
        _positive(f"resources.{key}", getattr(r, key))
    if r.max_failures < 0:
        raise SpecError("resources.max_failures", r.max_failures, "must be >= 0")
    if spec.checkpoint.every_tokens < 0:
        raise SpecError("checkpoint.every_tokens", spec.checkpoint.every_tokens, "must be >= 0")
    if r.gpus_per_worker < 0:
        raise SpecError("resources.gpus_per_worker", r.gpus_per_worker, "must be >= 0")
    if spec.wandb.mode not in WANDB_MODES:
        raise SpecError("wandb.mode", spec.wandb.mode, f"must be one of {', '.join(WANDB_MODES)}")
    from sweep import schedules

    for t in trials:
        schedules.validate(t.schedule)


# ----------------------------------------------------------------------------- grid


def _list_param(key: str, val: Any) -> tuple:
    if key == "stages":
        if not isinstance(val, list) or not all(
            isinstance(x, (list, tuple)) and len(x) == 2 for x in val
        ):
            raise SpecError("schedules.stages", val, "must be a list of [fraction, length]")
        return tuple((float(a), int(b)) for a, b in val)
    if not isinstance(val, (list, tuple)):
        raise SpecError(f"schedules.{key}", val, "must be a list")
    return tuple(val)


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """The grid: for every mode and shape entry, its scalar-parameter axes x ramp rates, x
    seeds; then the controls the same way. Rate-free shapes run once per seed, not once per
    rate; ``constant`` under truncate or window trains exactly as under reshape, so it runs
    once (as ``constant``); duplicates collapse; a schedule may not be both a candidate and
    a control."""
    s = spec.schedules
    seen: dict[str, ScheduleSpec] = {}
    for control, entries in ((False, s.shapes), (True, s.controls)):
        for entry, mode in itertools.product(entries, s.modes):
            for sched in _entry_schedules(s, entry, control):
                if not (sched.shape == "constant" and mode in ("truncate", "window")):
                    sched = dataclasses.replace(sched, mode=mode)
                old = seen.setdefault(sched.label, sched)
                if old.control != control:
                    raise SpecError(
                        "schedules.controls", sched.label, "is also one of the sweep's shapes"
                    )
    return [
        TrialSpec(f"{label}-s{seed}", seed, sched, spec)
        for label, sched in seen.items()
        for seed in spec.seeds
    ]


def _entry_schedules(s: SchedulesSpec, entry: dict, control: bool) -> list[ScheduleSpec]:
    shape = entry["shape"]
    own = {k: v for k, v in entry.items() if k not in ("shape", "ramp_rates")}
    params = {**s.params, **own}
    fixed = {k: _list_param(k, v) for k, v in params.items() if k in LIST_PARAMS}
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in params.items() if k in SCALAR_PARAMS}
    tagged = [k for k, v in axes.items() if len(v) > 1 or k in own]
    rates = [1.0] if shape in RATE_FREE_SHAPES else entry.get("ramp_rates", s.ramp_rates)
    out = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo))
        tag = "".join(f"-{SCALAR_PARAMS[k]}{_fmt(chosen[k])}" for k in tagged)
        for rate in rates:
            try:
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
            except TypeError as exc:
                raise SpecError("schedules.shapes", shape, str(exc)) from None
    return out
