"""Search beyond the grid (``search:`` in the spec): what a sample is, and when a sampled
trial may be stopped. Pure functions; the Tune/Optuna wiring builds on them.

A sample is a schedule: a shape from ``search.space.shapes`` and the continuous
parameters that shape reads (ramp rate and l_min for ramps, degree for root, switch and
l_short for two stages) and a mode. Early stopping is schedule-aware: a trial is judged
at a rung only once its schedule has trained ``min_at_l_max`` of the budget at l_max
(before that its far-context loss says little, and in-distribution loss favours short
sequences), and it is stopped only when another trial at the same rung is better on both
objectives by more than ``noise_z`` standard errors of the intermediate evaluation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweep.spec import ScheduleSpec, SearchSpace, SweepSpec

RAMP_SHAPES = ("linear", "root", "geometric", "exponential", "cosine")


def _round(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")


def _snap(v: float, multiple: int, lo: int, hi: int) -> int:
    return int(min(max(multiple * round(v / multiple), lo), hi))


def space_params(space: SearchSpace, spec: SweepSpec) -> dict[str, tuple]:
    """Every parameter the searcher may choose, as (kind, low, high) or ("cat", choices);
    a range of one value is fixed and left out. The shape decides which are read."""
    s = spec.schedules
    out: dict[str, tuple] = {"shape": ("cat", tuple(space.shapes))}
    if len(space.modes) > 1:
        out["mode"] = ("cat", tuple(space.modes))
    shapes = set(space.shapes)
    if shapes & set(RAMP_SHAPES):
        out["ramp_rate"] = ("float", *space.ramp_rate)
        l_min = space.l_min or (s.l_min, s.l_min)
        out["l_min"] = ("int", *l_min)
    if "root" in shapes:
        out["degree"] = ("float", *space.degree)
    if "two_stage" in shapes:
        out["switch"] = ("float", *space.switch)
        l_short = space.l_short or (s.l_max // 4, s.l_max // 4)
        out["l_short"] = ("int", *l_short)
    return {k: v for k, v in out.items() if v[0] == "cat" or v[1] != v[2]}


def reads(shape: str) -> tuple[str, ...]:
    """The searched parameters a shape uses (the others are ignored for that sample)."""
    if shape == "two_stage":
        return ("switch", "l_short")
    return ("ramp_rate", "l_min", "degree") if shape == "root" else ("ramp_rate", "l_min")


def schedule_of(params: dict[str, Any], spec: SweepSpec) -> ScheduleSpec:
    """The schedule a sample stands for. Lengths snap to ``multiple_of``; floats round to
    3 significant digits, so the label names the schedule exactly as trained. Parameters
    the spec fixes (a range of one value) come from the space's defaults."""
    s, sp = spec.schedules, spec.search.space
    shape = params["shape"]
    mode = params.get("mode", sp.modes[0])
    fixed = {
        "ramp_rate": sp.ramp_rate[0],
        "l_min": (sp.l_min or (s.l_min, s.l_min))[0],
        "degree": sp.degree[0],
        "switch": sp.switch[0],
        "l_short": (sp.l_short or (s.l_max // 4,) * 2)[0],
    }
    p = {k: params.get(k, fixed[k]) for k in reads(shape)}
    kw: dict[str, Any] = {"shape": shape, "l_max": s.l_max, "multiple_of": s.multiple_of}
    tag = ""
    if shape == "two_stage":
        kw["l_min"] = s.l_min
        kw["switch"] = _round(p["switch"])
        kw["l_short"] = _snap(p["l_short"], s.multiple_of, s.multiple_of, s.l_max)
        tag = f"-sw{kw['switch']:g}-ls{kw['l_short']}"
    else:
        kw["l_min"] = _snap(p["l_min"], s.multiple_of, s.multiple_of, s.l_max)
        kw["ramp_rate"] = _round(p["ramp_rate"])
        tag = f"-lm{kw['l_min']}"
        if shape == "root":
            kw["degree"] = _round(p["degree"])
            tag += f"-d{kw['degree']:g}"
    return ScheduleSpec(**kw, tag=tag, mode=mode)


def tokens_at_l_max(plan, seen: int) -> int:
    """Tokens a trial's plan has trained at l_max (its schedule's length, the window in
    window mode) once ``seen`` tokens are behind it."""
    l_max = int(plan.context.max()) if len(plan.context) else 0
    before = plan.cumulative_tokens()
    done = before < seen  # steps started before ``seen``
    at = (plan.context == l_max) & done
    # a step straddling ``seen`` counts only its part before it
    partial = np.minimum(plan.tokens, np.maximum(seen - before, 0))
    return int(partial[at].sum())


def judgeable(plan, seen: int, l_max: int, budget: int, min_at_l_max: float) -> bool:
    """The rung rule: a trial may be judged (and so stopped) only after its schedule has
    reached ``l_max`` and trained there for ``min_at_l_max`` of the budget."""
    if not len(plan.context) or int(plan.context.max()) < l_max:
        return False
    return tokens_at_l_max(plan, seen) >= min_at_l_max * budget


def dominating(
    me: dict[str, float], others: list[dict[str, float]], keys: tuple[str, str], z: float
) -> dict | None:
    """The first of ``others`` (same rung) better than ``me`` on both objectives by more
    than z standard errors of each difference (``<key>_se`` holds each one's SE), or None.
    Lower is better on both. Without an SE the difference must simply be positive."""
    for o in others:
        ok = True
        for k in keys:
            se = math.hypot(me.get(f"{k}_se", 0.0) or 0.0, o.get(f"{k}_se", 0.0) or 0.0)
            if not me[k] - o[k] > z * se or not math.isfinite(o[k]):
                ok = False
                break
        if ok:
            return o
    return None
