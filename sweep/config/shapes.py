"""The shape registry: every fact about a schedule shape in one entry of ``SHAPES``, so a
new shape is one edit here. An entry holds the shape's length L(f) before rounding
(``length``), the parameters it reads, whether it reads the ramp rate, whether it is an
increasing ramp (one ``reverse`` can mirror), the parameters the search samples for it,
its own rules (``validate``) and why DeepSpeed's curriculum cannot express it, if it
cannot; ``Shape.label`` names a schedule of it. The spec's grid and checks
(sweep/config/spec.py), the step plan (sweep/config/schedules.py), the search space
(sweep/run/search.py), the export (sweep/export.py) and the study's ramps all read it.

A shape with parameters of its own needs them as fields of ``ScheduleSpec`` (and of
``spec.ShapeParams``, where a spec sets them) as well."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import ConfigDict

from sweep.config.fields import (
    Bool,
    Mode,
    NonNegInt,
    OneOf,
    PosFloat,
    PosInt,
    Rate,
    SpecError,
    Stages,
    Str,
    Unit,
)

# ----------------------------------------------------------------------------- one schedule

# The names are read from the registry when a spec is checked, not when this module loads.
ShapeName = OneOf(lambda: SHAPES)
RampName = OneOf(lambda: ramps())  # the shapes ``reverse`` can mirror
SearchShapeName = OneOf(lambda: searchable())


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule: the shape, its lengths, ramp rate and shape-specific parameters."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    shape: ShapeName
    l_min: PosInt
    l_max: PosInt
    ramp_rate: Rate = 1.0
    multiple_of: PosInt = 8
    switch: Unit = 0.75  # two_stage: fraction of tokens at l_short (BTLM 470/627)
    l_short: NonNegInt = 0  # two_stage: 0 means l_max // 4; short_only: 0 means l_min
    degree: PosFloat = 2.0  # root
    cycles: PosInt = 1  # geometric
    reverse_of: RampName = "linear"  # reverse: the forward shape it mirrors
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
        return SHAPES[self.shape].label(self)


# ----------------------------------------------------------------------------- the entry

Length = Callable[[ScheduleSpec, float, float, "np.random.Generator | None"], float]


def _no_rules(s: ScheduleSpec) -> None:
    return None


@dataclass(frozen=True)
class Shape:
    """Everything the code knows about one shape."""

    # L(f) before rounding, from the schedule, progress f and u = min(f / ramp_rate, 1)
    # (and the generator a random shape draws from)
    length: Length
    params: tuple[str, ...] = ()  # the ScheduleSpec parameters it reads
    reads_rate: bool = True  # False: one trial per seed, not per ramp rate
    ramp: bool = False  # an increasing ramp: ``reverse`` can mirror it, the study repeats it
    search: tuple[str, ...] = ()  # what the search samples for it, in order (): not searched
    validate: Callable[[ScheduleSpec], None] = _no_rules  # its own rules, as SpecErrors
    no_deepspeed: str | None = None  # why DeepSpeed's curriculum cannot express it

    def label(self, s: ScheduleSpec) -> str:
        base = s.shape + s.tag
        if self.reads_rate:
            base += f"-r{s.ramp_rate:g}"
        return base if s.mode == "reshape" else f"{base}-{s.mode}"


def raw_length(s: ScheduleSpec, f: float, rng: np.random.Generator | None = None) -> float:
    """L(f) before rounding, as docs/design.md tabulates it."""
    u = min(f / s.ramp_rate, 1.0)
    return SHAPES[s.shape].length(s, f, u, rng)


# ----------------------------------------------------------------------------- lengths


def _constant(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    return s.l_max


def _two_stage(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    return (s.l_short or s.l_max // 4) if f < s.switch else s.l_max


def _short_only(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    return s.l_short or s.l_min


def _multi_stage(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    for end, length in s.stages:
        if f < end:
            return length
    return s.stages[-1][1]


def _reverse(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    return raw_length(ScheduleSpec(**{**s.__dict__, "shape": s.reverse_of}), 1.0 - f)


def _mixture(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    n = len(s.mixture_lengths)
    start = np.array(s.mixture_start or (1.0 / n,) * n)
    end = np.array(s.mixture_end or start)
    probs = (1 - u) * start + u * end
    rng = rng if rng is not None else np.random.default_rng(0)
    return float(rng.choice(s.mixture_lengths, p=probs / probs.sum()))


def _linear(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    lo, hi = s.l_min, s.l_max
    return lo + (hi - lo) * u


def _root(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    lo, hi = s.l_min, s.l_max
    return lo + (hi - lo) * u ** (1.0 / s.degree)


def _exponential(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    lo, hi = s.l_min, s.l_max
    return lo * (hi / lo) ** u


def _cosine(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    lo, hi = s.l_min, s.l_max
    return lo + (hi - lo) * (1 - math.cos(math.pi * u)) / 2


def _geometric(s: ScheduleSpec, f: float, u: float, rng: np.random.Generator | None) -> float:
    lo, hi = s.l_min, s.l_max
    if u >= 1:
        return hi
    # The ladder l_min, 2 l_min, ..., l_max: n + 1 rungs with an equal share of the
    # ramp each, so l_max gets its share too (Grow-P2 repeats it `cycles` times).
    uc = (u * s.cycles) % 1.0
    rungs = math.ceil(math.log2(hi / lo) - 1e-9) + 1  # the last one clamped to l_max
    return min(hi, lo * 2 ** math.floor(uc * rungs))


# ----------------------------------------------------------------------------- rules


def _short_length_in_range(s: ScheduleSpec) -> None:
    if s.l_short and not s.l_min <= s.l_short <= s.l_max:
        raise SpecError("schedules.l_short", s.l_short, "must lie in [l_min, l_max]")


def _stages_valid(s: ScheduleSpec) -> None:
    if not s.stages:
        raise SpecError("schedules.stages", [], "multi_stage needs a list of [fraction, length]")
    fracs = [f for f, _ in s.stages]
    if any(b <= a for a, b in zip(fracs, fracs[1:])):
        raise SpecError("schedules.stages", fracs, "fractions must increase")
    if not math.isclose(fracs[-1], 1.0):
        raise SpecError("schedules.stages", fracs, "fractions must end at 1")
    for _, length in s.stages:
        if not s.l_min <= length <= s.l_max:
            raise SpecError("schedules.stages", length, "stage length outside [l_min, l_max]")


def _mixture_valid(s: ScheduleSpec) -> None:
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


# ----------------------------------------------------------------------------- the registry

RAMP_SEARCH = ("ramp_rate", "l_min")  # what the search samples for every ramp

# In the order specs, messages and tables list them.
SHAPES: dict[str, Shape] = {
    "constant": Shape(_constant, reads_rate=False),
    "two_stage": Shape(
        _two_stage,
        params=("switch", "l_short"),
        reads_rate=False,
        search=("switch", "l_short"),
        validate=_short_length_in_range,
    ),
    "multi_stage": Shape(
        _multi_stage, params=("stages",), reads_rate=False, validate=_stages_valid
    ),
    "linear": Shape(_linear, ramp=True, search=RAMP_SEARCH),
    "root": Shape(_root, params=("degree",), ramp=True, search=(*RAMP_SEARCH, "degree")),
    "geometric": Shape(_geometric, params=("cycles",), ramp=True, search=RAMP_SEARCH),
    "exponential": Shape(_exponential, ramp=True, search=RAMP_SEARCH),
    "cosine": Shape(_cosine, ramp=True, search=RAMP_SEARCH),
    # reads those of the shape it mirrors too
    "reverse": Shape(_reverse, params=("reverse_of", "degree", "cycles")),
    "mixture": Shape(
        _mixture,
        params=("mixture_lengths", "mixture_start", "mixture_end"),
        validate=_mixture_valid,
        no_deepspeed=(
            "mixture draws every step's length at random; DeepSpeed's curriculum schedules "
            "are fixed runs of one length"
        ),
    ),
    "short_only": Shape(
        _short_only, params=("l_short",), reads_rate=False, validate=_short_length_in_range
    ),
}


def ramps() -> list[str]:
    """The increasing ramps, in registry order."""
    return [name for name, shape in SHAPES.items() if shape.ramp]


def searchable() -> list[str]:
    """The shapes the search may sample: the ramps first, then the others."""
    ordered = sorted(SHAPES.items(), key=lambda item: not item[1].ramp)
    return [name for name, shape in ordered if shape.search]


# Views of the registry for the readers of results (aggregate, study, calibrate, report).
RAMPS = tuple(ramps())
RATE_FREE_SHAPES = tuple(name for name, shape in SHAPES.items() if not shape.reads_rate)
SHAPE_PARAMS = {name: shape.params for name, shape in SHAPES.items() if shape.params}
# The negative control: trained short throughout, it must come out worse than the reference.
NEGATIVE_CONTROL = "short_only"
# The parameters a grid crosses (with the tag that names each value in a label), and those
# a shape takes as one whole list.
SCALAR_PARAMS = {"switch": "sw", "l_short": "ls", "degree": "d", "cycles": "c", "reverse_of": ""}
LIST_PARAMS = ("stages", "mixture_lengths", "mixture_start", "mixture_end")
