"""Calibration: find the cheapest proxy that sees extrapolation before sweeping on it.

A sweep can only tell schedules apart on extrapolation when its proxy uses its context up
to l_max (the reference's context_use > 0) and a short-trained control's deficit grows past
its own trained length (its own_excess > 0), each beyond its interval. ``sweep calibrate``
climbs a ladder of proxies (``calibrate:`` in the spec: tokens x token_factor per rung, and
optionally width, depth, l_max, tokenizer and the corpus's long-range share), training
only the reference and the negative control on at least two seeds at each rung, each rung
a real sweep of its own (Ray Tune, resumable) in ``<results>/<name>-calibrate/rung<k>/``.
It stops at the first rung that sees extrapolation and writes that rung as a full sweep
spec; when the minutes run out first it says so and projects, from the measured trend,
the compute at which the criteria would hold."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np
import yaml

from sweep.analysis import decision
from sweep.analysis.aggregate import aggregate
from sweep.analysis.controls import interval_text as _iv
from sweep.analysis.records import write_json_atomic, write_text_atomic
from sweep.config.shapes import NEGATIVE_CONTROL, RATE_FREE_SHAPES, SHAPE_PARAMS
from sweep.config.spec import CalibrateSpec, SpecError, SweepSpec, parse
from sweep.run import cost, orchestrate

CRITERIA = ("context_use", "own_excess")  # both > 0 beyond their intervals: sees extrapolation


def ladder_dir(spec: SweepSpec, results: Path) -> Path:
    return orchestrate.sweep_dir_for_name(f"{spec.name}-calibrate", results)


def rung_spec(spec: SweepSpec, k: int) -> SweepSpec:
    """Rung k: the spec's reference and negative control only, on the ladder's seeds, with
    k times more token_factor x the tokens (whole steps) and each listed axis's k-th value."""
    cal = spec.calibrate
    raw = spec.to_dict()
    raw["name"] = f"{spec.name}-rung{k}"
    step = spec.budget.tokens_per_step
    tokens = spec.budget.tokens * cal.token_factor**k
    raw["budget"]["tokens"] = max(step, int(round(tokens / step)) * step)
    for (section, key), values in cal.axes().items():
        raw[section][key] = values[min(k, len(values) - 1)]
    sched = raw["schedules"]
    reference = sched.get("reference") or "constant"
    keep = ("l_min", "l_max", "multiple_of", "reference", "modes")
    raw["schedules"] = sched = {k: sched[k] for k in keep if k in sched}
    sched["shapes"] = [_entry(spec, reference)]
    neg = [c for c in spec.schedules.controls if c["shape"] == NEGATIVE_CONTROL]
    sched["controls"] = [dict(neg[0]) if neg else {"shape": NEGATIVE_CONTROL}]
    sched["modes"] = ["reshape"]
    sched["l_min"] = min(sched["l_min"], sched["l_max"])
    raw["seeds"] = list(cal.seeds)
    raw["search"] = None
    raw["calibrate"] = None
    raw["decision"]["confirm_seeds"] = 0
    return parse(raw)


def _entry(spec: SweepSpec, label: str) -> dict:
    """The shape entry that makes schedule ``label`` alone (the reference)."""
    sched = next(t.schedule for t in spec.trials() if t.schedule.label == label)
    entry = {"shape": sched.shape}
    if sched.shape not in RATE_FREE_SHAPES:
        entry["ramp_rates"] = [sched.ramp_rate]
    fields = dataclasses.asdict(sched)
    for key in SHAPE_PARAMS.get(sched.shape, ()):
        value = fields[key]
        entry[key] = list(value) if isinstance(value, tuple) else value
    return entry


def sweep_spec_at(spec: SweepSpec, k: int) -> dict:
    """The spec ready to sweep at rung k's proxy: every schedule of the original spec, its
    seeds and search, with the rung's tokens and axes; no calibrate section."""
    rung = rung_spec(spec, k).to_dict()
    raw = spec.to_dict()
    raw["name"] = f"{spec.name}-calibrated"
    raw["budget"] = rung["budget"]
    for section, key in spec.calibrate.axes():
        raw[section][key] = rung[section][key]
    raw["calibrate"] = None
    parse(raw)  # a rung that validates as a pair must validate as a sweep too
    return raw


def measure(rung_dir: Path) -> dict:
    """A finished rung's criteria from its records: the reference's context_use, the
    control's far_loss gap and own_excess (each an interval dict), and its cost."""
    s = aggregate(rung_dir)
    c = s.controls
    ref = next((r for r in s.schedules if r["role"] == "reference"), {})
    trials = [t for t in s.trials if t.status == "finished"]
    sweep = s.sweep
    return {
        "context_use": c.get("reference_context_use"),
        "level_gap": c.get("far_loss"),
        "own_excess": c.get(c.get("excess_key") or "own_excess"),
        "excess_key": c.get("excess_key"),
        "sees": c.get("sees"),
        "id_loss": ref.get("id_loss"),
        "far_loss": ref.get("far_loss"),
        "tokens": sweep.budget.tokens if trials and sweep else math.nan,
        "flops": float(sum(t.metrics.get("flops", 0.0) for t in trials)),
        "trials": len(trials),
        # the trials' own wall time over the slots they shared: the same however often the
        # rung was interrupted and resumed
        "minutes": sum(float(t.record.wall_s or 0.0) for t in trials)
        / 60
        / max(1, min(len(trials), sweep.resources.max_concurrent_trials if sweep else 1)),
    }


def _holds(iv: dict | None) -> bool:
    """A lower bound above zero (a projection's rows carry bounds without a mean)."""
    return bool(iv and iv.get("lo") is not None and iv["lo"] > 0)


def seeds_needed(iv: dict | None) -> int | None:
    """For a criterion that does not hold yet but leans positive: the seeds at which its
    interval would likely clear zero, from the variance components of its own matrix
    (``decision.seeds_to_settle`` with margin 0). None when unmeasured or not leaning."""
    if not iv or _holds(iv) or not iv.get("components") or (iv.get("mean") or 0) <= 0:
        return None
    return decision.seeds_to_settle(iv["mean"], iv["components"], 0.0, 0.95)


def _said(iv: dict | None) -> str:
    if _holds(iv):
        return "> 0"
    n = seeds_needed(iv)
    return f"NOT > 0; ~{n} seeds would likely clear zero" if n else "NOT > 0"


def describe(k: int, rs: SweepSpec, axes: list[tuple[str, str]], m: dict) -> str:
    """One printed line per rung: the proxy, the criteria with their intervals, the cost."""
    shown = "".join(f", {key} {getattr(getattr(rs, section), key)}" for section, key in axes)
    return (
        f"rung {k}: {m['tokens'] / 1e6:.2f}M tokens{shown}: reference context_use "
        f"{_iv(m['context_use'])} ({_said(m['context_use'])}), control "
        f"{m['excess_key']} {_iv(m['own_excess'])} ({_said(m['own_excess'])}), level "
        f"gap {_iv(m['level_gap'])}; {m['flops'] / 1e12:.3f} TFLOPs, {m['minutes']:.1f} min"
    )


def project(rows: list[dict]) -> dict:
    """Where the measured trend reaches the criteria: for each criterion, a least-squares
    line of its interval's lower bound against log2 of the rung's FLOPs, solved for zero
    (the lower bound crossing zero is the criterion holding, if the interval's width stays
    as measured). None for a criterion with fewer than two rungs or no upward trend."""
    out = {}
    for key in CRITERIA:
        pts = [
            (math.log2(r["flops"]), r[key]["lo"])
            for r in rows
            if r.get(key) and r[key].get("lo") is not None and r["flops"] > 0
        ]
        if _holds(rows[-1].get(key)) if rows else False:
            out[key] = rows[-1]["flops"]
            continue
        if len(pts) < 2 or len({x for x, _ in pts}) < 2:
            out[key] = None
            continue
        slope, icept = np.polyfit(*zip(*pts), 1)
        out[key] = float(2 ** (-icept / slope)) if slope > 0 else None
    need = None if any(v is None for v in out.values()) else max(out.values())
    last = rows[-1] if rows else None
    minutes = None
    if need is not None and last and last["flops"] > 0:
        minutes = last["minutes"] * need / last["flops"]
    return {"flops": out, "needed_flops": need, "needed_minutes": minutes}


def run(
    spec: SweepSpec,
    results: Path,
    address: str | None = None,
    out: TextIO = sys.stdout,
    run_rung: Callable[[SweepSpec, Path], None] | None = None,
    *,
    plot: Callable[[list[dict], Path], Path],
) -> int:
    """Climb the ladder; 0 when a rung sees extrapolation (its spec written), 1 when the
    budget or the rungs ran out first (the projection written). ``run_rung`` trains one
    rung (default: a real sweep through Ray Tune); finished rungs are never retrained.
    ``plot`` draws the ladder's figure (sweep.api passes the report's)."""
    if spec.calibrate is None:
        raise SpecError("calibrate", None, "the spec has no calibrate: section")
    cal = spec.calibrate
    rungs = [rung_spec(spec, k) for k in range(cal.rungs)]  # every rung validates up front
    d = ladder_dir(spec, results)
    orchestrate.claim_dir(
        d,
        "calibrate.yaml",
        spec.to_dict(),
        lambda text: orchestrate._same(lambda: parse(yaml.safe_load(text)), spec),
        "calibration",
        False,
    )
    run_rung = run_rung or (lambda rs, rd: orchestrate.run_sweep(rs, rd, address, out))
    print(
        f"calibrate {spec.name}: up to {cal.rungs} rungs of the reference and {NEGATIVE_CONTROL} "
        f"on seeds {list(cal.seeds)}, tokens x{cal.token_factor:g} a rung, {cal.minutes:g} min "
        f"in all; in {d}",
        file=out,
        flush=True,
    )
    rows, spent, reached = _climb(rungs, d, cal, run_rung, out)
    figure = plot(rows, d / "calibration.png")
    result = {"rungs": rows, "reached": reached, "minutes": spent, "figure": str(figure)}
    if reached is not None:
        path = d / "calibrated.yaml"
        write_text_atomic(path, yaml.safe_dump(sweep_spec_at(spec, reached), sort_keys=False))
        result["spec"] = str(path)
        print(
            f"rung {reached} sees extrapolation: the spec to sweep on is {path} "
            f"({spent:.1f} min of calibration); figure {figure}",
            file=out,
        )
    else:
        result["projection"] = proj = project(rows)
        said = _not_reached(rows, proj, len(cal.seeds))
        print(
            f"no rung sees extrapolation within {len(rows)} rung(s) and {spent:.1f} min{said}; "
            f"figure {figure}",
            file=out,
        )
    write_json_atomic(d / "calibration.json", result)
    return 0 if reached is not None else 1


def _climb(
    rungs: list[SweepSpec],
    d: Path,
    cal: CalibrateSpec,
    run_rung: Callable[[SweepSpec, Path], None],
    out: TextIO,
) -> tuple[list[dict], float, int | None]:
    """Train (or re-read) rung after rung until one sees extrapolation, the rungs run out
    or the next would pass the budget: the rungs' measures, the minutes spent, the rung
    reached (None when none was)."""
    rows: list[dict] = []
    spent = 0.0
    for k, rs in enumerate(rungs):
        rd = d / f"rung{k}"
        done = rd / "rung.json"
        if done.is_file():  # measured again from its records: the same code reads every rung
            m = measure(rd) | {"k": k}
        else:
            if rows:  # a rung costs about its FLOPs at the last rung's rate
                guess = rows[-1]["minutes"] * orchestrate_flops(rs) / max(1.0, rows[-1]["flops"])
                if spent + guess > cal.minutes:
                    print(
                        f"rung {k} would take about {guess:.1f} min: past the budget of "
                        f"{cal.minutes:g} min ({spent:.1f} spent)",
                        file=out,
                    )
                    break
            orchestrate.prepare(rs, rd)
            run_rung(rs, rd)
            m = measure(rd)
            m["k"] = k
            write_json_atomic(done, m)
        spent += m["minutes"]
        rows.append(m)
        print(describe(k, rs, list(cal.axes()), m), file=out, flush=True)
        if m["sees"] == "extrapolation":
            return rows, spent, k
    return rows, spent, None


def _not_reached(rows: list[dict], proj: dict, n_seeds: int) -> str:
    """What the last rung and the trend say when no rung saw extrapolation (adds the seeds
    the last rung would need to ``proj``)."""
    need, mins = proj["needed_flops"], proj["needed_minutes"]
    seeds = {key: seeds_needed(rows[-1].get(key)) for key in CRITERIA} if rows else {}
    held = {key: _holds(rows[-1].get(key)) for key in CRITERIA} if rows else {}
    proj["seeds_at_last_rung"] = seeds
    leaning = rows and all(held[k] or seeds[k] for k in CRITERIA)
    if leaning:
        n = max([seeds[k] for k in CRITERIA if seeds[k]] or [n_seeds])
        proj["seeds_needed"] = n
        return (
            f" on {n_seeds} seeds, but at rung {len(rows) - 1} both criteria lean "
            f"positive: about {n} seeds (calibrate.seeds) would likely clear zero on both "
            "at its size"
        )
    if need is None:
        return (
            ", and the measured trend does not reach the criteria (a criterion falls or "
            "has one rung only): try other axes"
        )
    return (
        f"; the measured trend reaches both criteria at about {need / 1e12:.1f} TFLOPs "
        f"a rung ({need / max(1.0, rows[-1]['flops']):.1f}x the last rung, about "
        f"{mins:.0f} min at its speed)"
    )


def orchestrate_flops(rs: SweepSpec) -> float:
    """A rung's training FLOPs, all its trials (the cost model the dry run uses)."""
    return float(sum(cost.trial_flops(t) for t in rs.trials()))
