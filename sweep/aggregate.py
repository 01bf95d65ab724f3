"""Aggregator: reads only the results directory, recomputes every metric from the stored
curves, averages seeds, finds the Pareto front of (id_loss, delta, flops) and picks the
schedules worth scaling against the reference, each pick with its rationale."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep import metrics
from sweep.trial import read_record, write_json_atomic

EPSILON = 0.01  # nats of id_loss a pick may give up against the reference


class EmptyResults(ValueError):
    pass


@dataclass
class Trial:
    record: dict
    metrics: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.record["trial_id"]

    @property
    def status(self) -> str:
        return self.record.get("status", "?")


@dataclass
class Summary:
    sweep_dir: Path
    trials: list[Trial]
    skipped: list[dict]
    schedules: list[dict]
    reference: str
    picks: list[dict]
    verdict: str

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "finished"]

    def to_dict(self) -> dict:
        return {
            "sweep": self.sweep_dir.name,
            "reference": self.reference,
            "verdict": self.verdict,
            "picks": self.picks,
            "ranking": [
                {k: v for k, v in r.items() if not k.startswith("_")} for r in self.schedules
            ],
            "trials": [
                {
                    "trial_id": t.id,
                    "status": t.status,
                    "schedule": t.record.get("schedule"),
                    "seed": t.record.get("seed"),
                    "error": t.record.get("error"),
                    "tokens_trained": t.record.get("tokens_trained"),
                    "wall_s": t.record.get("wall_s"),
                    "metrics": t.metrics,
                    "ci": t.ci,
                }
                for t in self.trials
            ],
            "skipped": self.skipped,
        }


def load_trials(sweep_dir: Path) -> tuple[list[Trial], list[dict]]:
    """Every readable record; unreadable or malformed ones are reported, never fatal."""
    trials, skipped = [], []
    for path in sorted(Path(sweep_dir).glob("trials/*/record.json")):
        rec = read_record(path)
        if not isinstance(rec, dict) or "trial_id" not in rec or "status" not in rec:
            skipped.append({"path": str(path), "reason": "unreadable or incomplete record"})
            continue
        t = Trial(rec)
        if t.status == "finished":
            try:
                curve = np.asarray(rec["curve"], dtype=np.float64)
                l_max = int(rec["l_max"])
                if len(curve) != int(rec["eval_length"]) or len(curve) <= l_max:
                    raise ValueError("curve length does not match eval_length")
                t.metrics = metrics.all_metrics(curve, l_max)
                t.metrics["flops"] = float(rec["metrics"]["flops"])
                per = {k: np.asarray(v) for k, v in rec.get("per_sequence", {}).items()}
                if per:
                    t.ci = {
                        "id_loss": metrics.bootstrap_ci(per["id_loss"]),
                        "delta": metrics.bootstrap_ci(per["far_loss"] - per["near_loss"]),
                    }
            except (KeyError, TypeError, ValueError) as exc:
                skipped.append({"path": str(path), "reason": f"malformed record: {exc}"})
                continue
        trials.append(t)
    return trials, skipped


def _seed_average(trials: list[Trial]) -> list[dict]:
    """One row per schedule: seed means, with a t-interval across seeds when there are
    several and the bootstrap interval over eval sequences when there is one."""
    by_sched: dict[str, list[Trial]] = {}
    for t in trials:
        by_sched.setdefault(t.record["schedule"], []).append(t)
    rows = []
    for name, ts in by_sched.items():
        row = {
            "schedule": name,
            "shape": ts[0].record["shape"],
            "ramp_rate": ts[0].record["ramp_rate"],
            "seeds": len(ts),
            "trial_ids": [t.id for t in ts],
        }
        for key in ("id_loss", "near_loss", "far_loss", "delta", "slope", "l_eff", "flops"):
            vals = np.array([t.metrics[key] for t in ts])
            row[key] = float(vals.mean())
            if key in ("id_loss", "delta"):
                if len(ts) > 1:
                    half = 1.96 * vals.std(ddof=1) / math.sqrt(len(ts))
                    # the per-seed bootstrap width still bounds the noise from below
                    boot = np.mean(
                        [np.diff(t.ci.get(key, (math.nan, math.nan)))[0] / 2 for t in ts]
                    )
                    half = max(half, boot / math.sqrt(len(ts))) if math.isfinite(boot) else half
                    row[f"{key}_ci"] = (row[key] - half, row[key] + half)
                else:
                    row[f"{key}_ci"] = tuple(ts[0].ci.get(key, (math.nan, math.nan)))
        per_seq = [t.record.get("per_sequence") for t in ts]
        if all(per_seq) and len({len(p["far_loss"]) for p in per_seq}) == 1:
            # per eval sequence, averaged over seeds: the paired comparison's raw material
            row["_seq_delta"] = np.mean(
                [np.asarray(p["far_loss"]) - np.asarray(p["near_loss"]) for p in per_seq], axis=0
            )
        row["_seed_delta"] = {t.record["seed"]: t.metrics["delta"] for t in ts}
        rows.append(row)
    rows.sort(key=lambda r: r["delta"])
    return rows


def pareto_front(rows: list[dict], keys=("id_loss", "delta", "flops")) -> list[str]:
    """Schedules no other schedule beats on every key (all minimised)."""
    front = []
    for r in rows:
        dominated = any(
            all(o[k] <= r[k] for k in keys) and any(o[k] < r[k] for k in keys)
            for o in rows
            if o is not r
        )
        if not dominated:
            front.append(r["schedule"])
    return front


def _halfwidth(row: dict, key: str) -> float:
    lo, hi = row.get(f"{key}_ci", (math.nan, math.nan))
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else 0.0


def delta_margin(r: dict, ref: dict) -> tuple[float, str]:
    """Half-width of the 95% interval of ref.delta - r.delta. All trials share the same
    eval sequences, so the comparison is paired (bootstrap of per-sequence differences);
    with several common seeds, the seed-to-seed interval counts too, whichever is wider."""
    a, b = r.get("_seq_delta"), ref.get("_seq_delta")
    if a is None or b is None or len(a) != len(b):
        return _halfwidth(r, "delta") + _halfwidth(ref, "delta"), "unpaired intervals"
    diff = b - a
    lo, hi = metrics.bootstrap_ci(diff)
    half, how = (hi - lo) / 2, f"paired bootstrap over {len(diff)} eval sequences"
    common = sorted(set(r["_seed_delta"]) & set(ref["_seed_delta"]))
    if len(common) > 1:
        d = np.array([ref["_seed_delta"][s] - r["_seed_delta"][s] for s in common])
        seed_half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        if seed_half > half:
            half, how = seed_half, f"t-interval over {len(common)} seeds"
    return float(half), how


def decide(rows: list[dict], reference: str, epsilon: float = EPSILON) -> tuple[list[dict], str]:
    """DESIGN.md pick rule: on the Pareto front, beats the reference on delta by more than
    the combined interval, and gives up at most ``epsilon`` of id_loss."""
    ref = next((r for r in rows if r["schedule"] == reference), None)
    if ref is None:
        return [], f"no pick: the reference schedule {reference!r} has no finished trial"
    front = set(pareto_front(rows))
    for r in rows:
        r["pareto"] = r["schedule"] in front
    picks, near_misses, too_costly = [], 0, []
    for r in rows:
        if r is ref:
            continue
        gain = ref["delta"] - r["delta"]
        margin, how = delta_margin(r, ref)
        r["vs_ref"], r["vs_ref_margin"] = gain, margin
        id_cost = r["id_loss"] - ref["id_loss"]
        if not r["pareto"]:
            continue
        if gain <= margin:
            if gain > 0:
                near_misses += 1
            continue
        if id_cost > epsilon:
            too_costly.append(f"{r['schedule']} (+{id_cost:.4f})")
            continue
        picks.append(
            {
                "schedule": r["schedule"],
                "rationale": (
                    f"{r['schedule']} is on the Pareto front of (id_loss, delta, flops); "
                    f"its delta {r['delta']:+.4f} nats beats the reference {reference} "
                    f"({ref['delta']:+.4f}) by {gain:.4f}, more than the 95% interval "
                    f"{margin:.4f} ({how}); its id_loss {r['id_loss']:.4f} is "
                    f"{id_cost:+.4f} nats from the reference (limit +{epsilon}); it costs "
                    f"{r['flops'] / ref['flops']:.2f}x the reference FLOPs."
                ),
                "delta_gain": gain,
                "margin": margin,
                "id_cost": id_cost,
            }
        )
    if picks:
        return picks, f"{len(picks)} schedule(s) worth scaling"
    reasons = []
    if too_costly:
        reasons.append(
            f"{', '.join(too_costly)} flatten the curve beyond the noise but lose more than "
            f"{epsilon} nats of id_loss"
        )
    if near_misses:
        reasons.append(
            f"{near_misses} schedule(s) flatten the curve less than the noise (delta gain "
            "within its 95% interval; add seeds or eval sequences)"
        )
    if not reasons:
        reasons.append(f"no schedule on the Pareto front is flatter than {reference}")
    return [], "no pick: " + "; ".join(reasons)


def aggregate(sweep_dir: Path, reference: str | None = None) -> Summary:
    sweep_dir = Path(sweep_dir)
    trials, skipped = load_trials(sweep_dir)
    if not trials:
        raise EmptyResults(
            f"{sweep_dir}: no trial records found (is this a sweep's results directory?)"
        )
    if reference is None:
        reference = _reference_from_dir(sweep_dir, trials)
    rows = _seed_average([t for t in trials if t.status == "finished"])
    picks, verdict = decide(rows, reference) if rows else ([], "no pick: no finished trial")
    return Summary(sweep_dir, trials, skipped, rows, reference, picks, verdict)


def _reference_from_dir(sweep_dir: Path, trials: list[Trial]) -> str:
    ref = "constant"
    for t in trials:
        ref = t.record.get("config", {}).get("sweep", {}).get("schedules", {}).get("reference", ref)
        break
    return ref


def write_summary(summary: Summary) -> Path:
    path = summary.sweep_dir / "summary.json"
    write_json_atomic(path, summary.to_dict())
    return path


def _vs_ref(r: dict) -> str:
    if "vs_ref" not in r:
        return "-"
    return f"{r['vs_ref']:+.4f}±{r['vs_ref_margin']:.4f}"


def format_table(summary: Summary) -> str:
    """The ranked table printed at the end of a sweep (flattest first)."""
    head = (
        f"{'rank':>4}  {'schedule':<20} {'seeds':>5} {'id_loss':>8} {'near':>7} {'far':>7} "
        f"{'delta':>8} {'flatter_than_ref':>17} {'slope':>8} {'l_eff':>6} {'GFLOPs':>9}  pick"
    )
    lines = [head, "-" * len(head)]
    picked = {p["schedule"] for p in summary.picks}
    for i, r in enumerate(summary.schedules, 1):
        mark = (
            "PICK"
            if r["schedule"] in picked
            else (
                "ref"
                if r["schedule"] == summary.reference
                else ("pareto" if r.get("pareto") else "")
            )
        )
        lines.append(
            f"{i:>4}  {r['schedule']:<20} {r['seeds']:>5} {r['id_loss']:>8.4f} "
            f"{r['near_loss']:>7.4f} {r['far_loss']:>7.4f} {r['delta']:>+8.4f} "
            f"{_vs_ref(r):>17} {r['slope']:>+8.4f} {r['l_eff']:>6.2f} "
            f"{r['flops'] / 1e9:>9.1f}  {mark}"
        )
    for t in summary.trials:
        if t.status != "finished":
            lines.append(f"   -  {t.id:<20} {t.status}: {t.record.get('error') or ''}")
    lines.append(summary.verdict)
    return "\n".join(lines)
