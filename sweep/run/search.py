"""Search beyond the grid (``search:`` in the spec): what a sample is, and when a sampled
trial may be stopped. Pure functions; the Tune/Optuna wiring (sweep.run.tune_search)
builds on them.

A sample is a schedule: a shape from ``search.space.shapes`` and the continuous
parameters that shape reads (ramp rate and l_min for ramps, degree for root, switch and
l_short for two stages) and a mode. Early stopping is schedule-aware: a trial is judged
at a rung only once its schedule has trained ``min_at_l_max`` of the budget at l_max
(before that its far-context loss says little, and in-distribution loss favours short
sequences), and it is stopped only when another trial at the same rung is better on both
objectives by more than ``noise_z`` standard errors of the intermediate evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sweep.analysis.pareto import pareto_front
from sweep.analysis.records import TrialRecord, read_record
from sweep.config.shapes import SHAPES, ScheduleSpec
from sweep.config.spec import SearchSpace, SweepSpec, TrialSpec

# How a sampled value is named in a schedule's tag (the ramp rate is named by the label).
TAGS = {
    "ramp_rate": "",
    "l_min": "-lm{}",
    "degree": "-d{:g}",
    "switch": "-sw{:g}",
    "l_short": "-ls{}",
}


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
    read = {k for shape in space.shapes for k in reads(shape)}
    if "ramp_rate" in read:
        out["ramp_rate"] = ("float", *space.ramp_rate)
    if "l_min" in read:
        out["l_min"] = ("int", *(space.l_min or (s.l_min, s.l_min)))
    if "degree" in read:
        out["degree"] = ("float", *space.degree)
    if "switch" in read:
        out["switch"] = ("float", *space.switch)
    if "l_short" in read:
        out["l_short"] = ("int", *(space.l_short or (s.l_max // 4, s.l_max // 4)))
    return {k: v for k, v in out.items() if v[0] == "cat" or v[1] != v[2]}


def reads(shape: str) -> tuple[str, ...]:
    """The searched parameters a shape uses (the others are ignored for that sample): its
    entry's in the shape registry."""
    return SHAPES[shape].search


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
    kw: dict[str, Any] = {"shape": shape, "l_min": s.l_min, "l_max": s.l_max}
    tag = ""
    for k, v in p.items():  # lengths snap, floats round; each named in the tag in turn
        length = k in ("l_min", "l_short")
        kw[k] = _snap(v, s.multiple_of, s.multiple_of, s.l_max) if length else _round(v)
        tag += TAGS[k].format(kw[k])
    return ScheduleSpec(**kw, multiple_of=s.multiple_of, tag=tag, mode=mode)


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


# ----------------------------------------------------------------------------- samples

SAMPLE_PREFIX = "q"  # trial ids of sampled trials: q<number>-<label>-s<seed>


def sample_trial(params: dict[str, Any], number: int, spec: SweepSpec) -> TrialSpec:
    """The TrialSpec of sample ``number`` (first seed of the spec: a sample is one
    schedule, trained once; the fixed reference and controls carry the seeds)."""
    sched = schedule_of(params, spec)
    seed = spec.seeds[0]
    return TrialSpec(f"{SAMPLE_PREFIX}{number:03d}-{sched.label}-s{seed}", seed, sched, spec)


def params_of(sched: ScheduleSpec, spec: SweepSpec) -> dict[str, Any]:
    """The searched parameters a sampled schedule was made from (inverse of
    ``schedule_of`` on its rounded values): what a resumed searcher is told."""
    names = space_params(spec.search.space, spec)
    values = {
        "shape": sched.shape,
        "mode": sched.mode,
        "ramp_rate": sched.ramp_rate,
        "l_min": sched.l_min,
        "degree": sched.degree,
        "switch": sched.switch,
        "l_short": sched.l_short,
    }
    keep = {"shape", "mode", *reads(sched.shape)}
    out = {}
    for k, dist in names.items():
        if k in keep:
            v = values[k]
            out[k] = v if dist[0] == "cat" else min(max(v, dist[1]), dist[2])
    return out


def sample_number(trial_id: str) -> int:
    """The sample number in a sampled trial's id (q<number>-...)."""
    return int(trial_id[len(SAMPLE_PREFIX) :].split("-", 1)[0])


def sample_records(sweep_dir) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """Sampled trials on disk: (done: finished, diverged or stopped; unfinished: running
    or failed, whose parameters a resumed search asks again)."""
    done, unfinished = [], []
    for path in sorted(Path(sweep_dir).glob(f"trials/{SAMPLE_PREFIX}*/record.json")):
        rec = read_record(path)
        if rec is None or rec.spec is None:
            continue
        (done if rec.status in ("finished", "diverged", "stopped") else unfinished).append(rec)
    return done, unfinished


def search_facts(summary) -> str:
    """One paragraph on a search's samples for the report: how many, how many stopped at
    a rung and the tokens that saved, the non-dominated set on the search's objectives
    (among every finished schedule, fixed trials included) and the best sampled far_loss.
    Empty for a grid sweep."""
    samples = [t for t in summary.trials if t.id.startswith(SAMPLE_PREFIX)]
    if not samples:
        return ""
    sweep = samples[0].record.sweep
    objectives = tuple(sweep.search.objectives)
    budget = sweep.budget.tokens
    stopped = [t for t in samples if t.status == "stopped"]
    finished = [t for t in samples if t.status == "finished"]
    spent = sum(t.record.tokens_trained or 0 for t in samples)
    rows = [
        r for r in summary.schedules if all(math.isfinite(r.get(k, math.nan)) for k in objectives)
    ]
    front = pareto_front(rows, objectives)
    best = min(finished, key=lambda t: t.metrics["far_loss"], default=None)
    line = (
        f"Search: {len(samples)} sampled schedules ({sweep.search.sampler} on "
        f"{' and '.join(objectives)}), {len(finished)} finished, {len(stopped)} stopped at a "
        f"rung; {spent:,} training tokens against {len(samples) * budget:,} for all of them "
        f"in full. Non-dominated on {' and '.join(objectives)}: {', '.join(front) or 'none'}."
    )
    if best is not None:
        line += f" Best sampled far_loss: {best.record.schedule} {best.metrics['far_loss']:.4f}."
    return line
