"""The ``schedules`` section of a spec: its schema (``SchedulesSpec``, with the shape entries
and parameters a spec lists) and the grid of schedules it spans (``schedules``), with the
checks of the section that read nothing else: every parameter and ramp rate is read by a
listed shape (``check_unused_parameters``), and each schedule keeps its shape's rules
(``validate_schedule``). What a shape reads and checks is its entry's in the registry
(sweep/config/shapes.py)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import Required, TypedDict

from sweep.config.fields import (
    Grid,
    Mode,
    NonNegInt,
    PosFloat,
    PosInt,
    Rates,
    SpecError,
    Stages,
    Str,
    Unit,
    as_list,
    plain,
    unique,
)
from sweep.config.shapes import (
    LIST_PARAMS,
    SCALAR_PARAMS,
    SHAPES,
    RampName,
    ScheduleSpec,
    ShapeName,
)
from sweep.config.validation import as_entry, field_names, validated


@with_config(ConfigDict(extra="forbid"))
class ShapeParams(TypedDict, total=False):
    """Shape parameters, at ``schedules`` level (defaults for every shape that reads them)
    or in a ``shapes`` / ``controls`` entry; a list of values is a grid axis."""

    switch: Grid(Unit)  # two_stage: fraction of tokens at l_short (BTLM 470/627)
    l_short: Grid(NonNegInt)  # two_stage: 0 means l_max // 4; short_only: 0 means l_min
    degree: Grid(PosFloat)  # root
    cycles: Grid(PosInt)  # geometric
    reverse_of: Grid(RampName)  # reverse: the forward shape it mirrors
    stages: Stages  # multi_stage: (end fraction, length)
    mixture_lengths: tuple[PosInt, ...]  # mixture: support of the length distribution
    mixture_start: tuple[Unit, ...]  # probabilities at f = 0
    mixture_end: tuple[Unit, ...]  # probabilities at f >= ramp_rate


@with_config(ConfigDict(extra="forbid"))
class ShapeEntry(ShapeParams, total=False):
    """One entry of ``shapes`` / ``controls``: a shape name, or a mapping with the shape, its
    own ramp rates and parameters."""

    shape: Required[ShapeName]
    ramp_rates: Rates


Entries = tuple[Annotated[ShapeEntry, BeforeValidator(as_entry)], ...]


@dataclass(frozen=True)
class SchedulesSpec:
    """The ``schedules`` section; in YAML the shape parameters (``params``) sit directly in
    it, beside the fields."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    l_min: PosInt
    l_max: PosInt
    shapes: Annotated[Entries, BeforeValidator(as_list), Field(min_length=1)]
    ramp_rates: Rates = (1.0,)
    multiple_of: PosInt = 8
    reference: Str = "constant"
    params: ShapeParams = field(default_factory=dict)  # type: ignore[assignment]
    controls: Annotated[Entries, BeforeValidator(as_list)] = ()  # e.g. short_only, never picked
    modes: Annotated[
        tuple[Mode, ...], BeforeValidator(as_list), Field(min_length=1), AfterValidator(unique)
    ] = ("reshape",)  # an axis crossed with every shape and rate


def tag_value(v: Any) -> str:
    """A grid value as a label's tag writes it."""
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def schedules(s: SchedulesSpec) -> list[ScheduleSpec]:
    """The grid: for every mode and shape entry, its scalar-parameter axes x ramp rates;
    then the controls the same way. Rate-free shapes run once, not once per rate;
    ``constant`` under truncate or window trains exactly as under reshape, so it runs once
    (as ``constant``). A schedule listed twice, or both as a candidate and a control, is
    refused."""
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
    return [sched for sched, _ in seen.values()]


def _entry_schedules(s: SchedulesSpec, entry: dict, control: bool) -> list[ScheduleSpec]:
    shape = entry["shape"]
    reads = SHAPES[shape].params
    own = {k: v for k, v in entry.items() if k in reads}
    params = {k: v for k, v in {**s.params, **own}.items() if k in reads}
    fixed = {k: tuple(v) for k, v in params.items() if k in LIST_PARAMS}
    axes = {k: list(v) for k, v in params.items() if k in SCALAR_PARAMS}
    tagged = [k for k, v in axes.items() if len(v) > 1 or k in own]
    rates = [1.0] if not SHAPES[shape].reads_rate else entry.get("ramp_rates", s.ramp_rates)
    out = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo))
        tag = "".join(f"-{SCALAR_PARAMS[k]}{tag_value(chosen[k])}" for k in tagged)
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


def check_unused_parameters(s: SchedulesSpec) -> None:
    """No silent knobs: a shape parameter or ramp rate that no listed shape reads."""
    entries = [(e, "shapes") for e in s.shapes] + [(e, "controls") for e in s.controls]
    for entry, where in entries:
        shape = entry["shape"]
        for key, value in entry.items():
            if key in ("shape", "ramp_rates"):
                continue
            if key not in SHAPES[shape].params:
                raise SpecError(
                    f"schedules.{where}[{shape}].{key}", plain(value), f"is unused by {shape}"
                )
        rates = entry.get("ramp_rates", (1.0,))
        if not SHAPES[shape].reads_rate and tuple(rates) != (1.0,):
            raise SpecError(
                f"schedules.{where}[{shape}].ramp_rates",
                plain(rates),
                f"is unused: {shape} does not depend on the ramp rate",
            )
    readers = {k for e, _ in entries for k in SHAPES[e["shape"]].params}
    for key, value in s.params.items():
        if key not in readers:
            raise SpecError(f"schedules.{key}", plain(value), "is unused by every shape listed")
    rated = [e for e, _ in entries if SHAPES[e["shape"]].reads_rate and "ramp_rates" not in e]
    if not rated and s.ramp_rates != (1.0,):
        raise SpecError(
            "schedules.ramp_rates", list(s.ramp_rates), "is unused by every shape listed"
        )


def validate_schedule(s: ScheduleSpec) -> None:
    """Checks of one schedule: its field types and bounds, then the shape's own rules;
    raises SpecError naming the schedule field (``schedules.stages``, ...)."""
    validated(ScheduleSpec, dataclasses.asdict(s), "schedules", _schedule_fields)
    if s.l_min > s.l_max:
        raise SpecError("schedules.l_min", s.l_min, f"is larger than l_max={s.l_max}")
    SHAPES[s.shape].validate(s)


def _schedule_fields(loc: tuple, prefix: str) -> list[str]:
    return field_names(ScheduleSpec)
