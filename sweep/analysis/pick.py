"""The pick rule: each candidate against the reference at a family-wise level and an
equivalence margin, the Pareto front, the best ramp head to head, and how stable the
ranking is over seed halves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.analysis import decision
from sweep.analysis.controls import interval_text
from sweep.analysis.paired import OBJECTIVE, Trial, num_or_inf, paired_difference
from sweep.analysis.pareto import pareto_front
from sweep.config.shapes import RAMPS

EPSILON = 0.01  # nats of id_loss a pick may give up against the reference
DEFAULT_MARGIN = 0.01  # nats of far_loss, when no negative control sets the margin
LEVEL = 0.95  # family-wise: every comparison of a sweep together


@dataclass
class Decision:
    """What the pick rule concluded: picks (at least 2 seeds, better beyond the margin on
    a family-wise corrected interval), candidates to confirm (the rest that lean better),
    the verdict's words and how the comparisons were made."""

    picks: list[dict]
    candidates: list[dict]
    verdict: str
    margin: float | None = None
    margin_source: str = ""
    comparisons: int = 0
    level: float = LEVEL
    correction: str = ""
    head_to_head: dict | None = None  # the best ramp against two_stage and the reference
    stability: dict | None = None  # pairwise decision accuracy over seed halves

    def to_dict(self) -> dict:
        return {
            "margin": self.margin,
            "margin_source": self.margin_source,
            "comparisons": self.comparisons,
            "level": self.level,
            "correction": self.correction,
            "head_to_head": self.head_to_head,
            "stability": self.stability,
        }


def best_ramp(trials: list[Trial], rows: list[dict], reference: str, margin) -> dict | None:
    """The user's question answered directly: the ramp (a growing shape, not a control)
    with the lowest far_loss, against two_stage (BTLM's recipe) and against the reference,
    each as better / equivalent / worse / inconclusive at the margin on its paired 95%
    interval. The ramp was chosen on these trials (the lowest far_loss of several), so the
    comparison is optimistic for it; the verdict says so."""
    ramps = [r for r in rows if r["shape"] in RAMPS and r["role"] != "control"]
    if not ramps or margin is None:
        return None
    best = min(ramps, key=lambda r: num_or_inf(r.get(OBJECTIVE)))
    by_sched: dict[str, list[Trial]] = {}
    for t in trials:
        by_sched.setdefault(t.record.schedule, []).append(t)
    others = [r["schedule"] for r in rows if r["shape"] == "two_stage" and r["role"] != "control"]
    out: dict = {"ramp": best["schedule"], "of": len(ramps), "margin": margin, "versus": {}}
    words = []
    for other in [*others[:1], reference]:
        iv = paired_difference(by_sched[best["schedule"]], by_sched.get(other, []), OBJECTIVE)
        if iv is None or other == best["schedule"]:
            continue
        outcome = decision.classify(iv.lo, iv.hi, margin)
        out["versus"][other] = {**iv.to_dict(), "outcome": outcome}
        words.append(f"against {other} {interval_text(iv.to_dict())}, {outcome}")
    if not words:
        return None
    out["summary"] = (
        f"best ramp {best['schedule']} (lowest far_loss of {len(ramps)} ramps, chosen on these "
        f"trials): " + "; ".join(words) + f" (paired 95%, margin {margin:.4f})"
    )
    return out


def stability(trials: list[Trial], rows: list[dict]) -> dict | None:
    """Pairwise decision accuracy (DataDecide 2025): over many splits of the seeds into
    halves, the share of schedule pairs (controls left out) that both halves order the
    same way on far_loss. Needs at least 4 seeds common to the schedules compared."""
    names = [r["schedule"] for r in rows if r["role"] != "control"]
    per: dict[str, dict] = {n: {} for n in names}
    for t in trials:
        if t.record.schedule in per and OBJECTIVE in t.metrics:
            per[t.record.schedule][t.record.seed] = t.metrics[OBJECTIVE]
    common = sorted(set.intersection(*(set(v) for v in per.values()))) if per else []
    if len(common) < 4 or len(names) < 2:
        return None
    values = np.array([[per[n][s] for s in common] for n in names])
    return {**decision.decision_stability(values), "seeds": len(common), "schedules": names}


def decision_margin(margin: float | None, controls: dict) -> tuple[float, str]:
    """The equivalence margin in nats and where it comes from: the spec's
    ``decision.margin``; else half the negative control's far_loss gap when the control is
    told apart on level (a schedule that moves far_loss by less than half of what never
    training long costs is not worth a full run); else DEFAULT_MARGIN."""
    if margin is not None:
        return float(margin), "decision.margin"
    far = controls.get("far_loss") or {}
    if controls.get("far_separated") and far.get("mean") and far["mean"] > 0:
        return far["mean"] / 2, f"half the negative control's far_loss gap {far['mean']:+.4f}"
    return DEFAULT_MARGIN, f"the default {DEFAULT_MARGIN} (no negative control told apart)"


def decide(
    rows: list[dict],
    reference: str,
    controls: dict,
    epsilon: float = EPSILON,
    margin: float | None = None,
    level: float = LEVEL,
) -> Decision:
    """The pick rule. Every candidate (not the reference, not a control, not in a mode
    whose own control was blind) with a far_loss interval is compared with the reference;
    with m such comparisons each interval is widened to the Bonferroni level
    1 - (1 - level) / m and read as better / equivalent / worse / inconclusive at
    ``margin`` (``decision.classify``). A pick is better, on the Pareto front of
    (id_loss, far_loss, flops), at most ``epsilon`` worse on id_loss, and measured on at
    least 2 seeds: one seed measures no seed noise, so what would be a pick is a
    candidate to confirm. Nothing when the negative control was not told apart."""
    ref = next((r for r in rows if r["schedule"] == reference), None)
    if ref is None:
        why = f"no pick: the reference schedule {reference!r} has no finished trial"
        return Decision([], [], why)
    by_mode = controls.get("by_mode") or {}
    blind, eligible = _mark_front(rows, by_mode)
    if controls.get("discriminates") is False and len(blind) == len(by_mode):
        return Decision([], [], f"underpowered, no pick: {controls['summary']}")
    margin, source = decision_margin(margin, controls)
    compared = [
        r
        for r in eligible
        if r is not ref and (r.get("vs_ref", {}).get(OBJECTIVE) or {}).get("hi") is not None
    ]
    comparisons = len(compared)
    sim = decision.simultaneous_level(level, max(comparisons, 1))
    correction = (
        f"{comparisons} comparison(s) with {reference}, Bonferroni: each interval at "
        f"{100 * sim:.4g}%"
    )
    picks, candidates, too_costly, outcomes = _judge_all(
        compared, ref, reference, level, sim, margin, epsilon
    )
    verdict = _verdict(picks, candidates, too_costly, outcomes, reference, controls, blind, epsilon)
    verdict += f"; {correction}; margin {margin:.4f} nats ({source})"
    return Decision(picks, candidates, verdict, margin, source, comparisons, sim, correction)


def _mark_front(rows: list[dict], by_mode: dict) -> tuple[list[str], list[dict]]:
    """The modes whose control was blind and the rows left eligible; marks each row's
    ``pareto`` (on the front of the eligible rows)."""
    # A mode whose own control was not told apart cannot vouch for its candidates (nor
    # push others off the front).
    blind = sorted(m for m, c in by_mode.items() if c["discriminates"] is False)
    ranked = [r for r in rows if r["role"] != "control"]
    eligible = [r for r in ranked if r.get("mode", "reshape") not in blind]
    front = set(pareto_front(eligible or ranked))
    for r in rows:
        r["pareto"] = r["schedule"] in front
    return blind, eligible


def _judge_all(
    compared: list[dict],
    ref: dict,
    reference: str,
    level: float,
    sim: float,
    margin: float,
    epsilon: float,
) -> tuple[list[dict], list[dict], list[str], dict[str, list[str]]]:
    """Each comparison judged (its ``decision`` set on its row): the picks, the candidates
    to confirm (best first), those too costly on id_loss, and the schedules by outcome."""
    picks, candidates, too_costly, outcomes = [], [], [], {}
    for r in compared:
        far = r["vs_ref"][OBJECTIVE]
        r["decision"], settle = judge_comparison(far, level, sim, margin)
        outcome, (lo, hi) = r["decision"]["outcome"], r["decision"]["interval"]
        outcomes.setdefault(outcome, []).append(r["schedule"])
        id_cost = r["id_loss"] - ref["id_loss"]
        leans = outcome == "better" or (outcome == "inconclusive" and far["mean"] < 0)
        if not leans:
            continue
        if id_cost > epsilon:
            too_costly.append(f"{r['schedule']} (+{id_cost:.4f})")
            continue
        if not r["pareto"]:
            continue
        entry = {
            "schedule": r["schedule"],
            "outcome": outcome,
            "far_gain": -far["mean"],
            "far_interval": [lo, hi],
            "id_cost": id_cost,
            "seeds": r["seeds"],
            "level": sim,
        }
        if outcome == "better" and r["seeds"] >= 2:
            entry["rationale"] = _rationale(r, ref, reference, entry, margin, epsilon)
            picks.append(entry)
        else:
            entry["to_confirm"] = _to_confirm(r, outcome, settle, margin)
            candidates.append(entry)
    candidates.sort(key=lambda c: -c["far_gain"])
    return picks, candidates, too_costly, outcomes


def judge_comparison(
    far: dict, level: float, sim: float, margin: float
) -> tuple[dict, int | str | None]:
    """One comparison with the reference: its interval at the simultaneous level, its
    outcome at the margin, and the seeds that would likely settle it ("unknown" when the
    interval came without its variance components)."""
    lo, hi = decision.rescale(far, level, sim)
    comp = far.get("components")
    settle = decision.seeds_to_settle(far["mean"], comp, margin, sim) if comp else "unknown"
    judged = {
        "outcome": decision.classify(lo, hi, margin),
        "interval": [lo, hi],
        "level": sim,
        "margin": margin,
        "seeds_to_settle": settle if isinstance(settle, int) else None,
    }
    return judged, settle


def _rationale(r: dict, ref: dict, reference: str, e: dict, margin: float, eps: float) -> str:
    lo, hi = e["far_interval"]
    return (
        f"{r['schedule']} is on the Pareto front of (id_loss, far_loss, flops); its far_loss "
        f"{r['far_loss']:.4f} nats beats the reference {reference} ({ref['far_loss']:.4f}) "
        f"by {e['far_gain']:.4f}, interval of the difference [{lo:+.4f}, {hi:+.4f}] at "
        f"{100 * r['decision']['level']:.4g}% (family-wise 95%; "
        f"{r['vs_ref'][OBJECTIVE]['method']}), wholly below -{margin:.4f}; its id_loss "
        f"{r['id_loss']:.4f} is {e['id_cost']:+.4f} nats from the reference (limit +{eps}); "
        f"{r['seeds']} seeds; it costs {r['flops'] / ref['flops']:.2f}x the reference FLOPs."
    )


def _to_boundary(mean: float, margin: float) -> float:
    """How far a difference lies from the nearer of -margin and +margin: what an interval's
    half-width must fall below for the comparison to settle."""
    return min(abs(mean + margin), abs(mean - margin))


def _to_confirm(r: dict, outcome: str, settle, margin: float) -> str:
    """What confirming a candidate takes."""
    if r["seeds"] < 2:
        return "retrain on at least 2 fresh seeds: one seed measures no seed noise"
    if outcome == "better":
        return "better beyond the margin; confirm on fresh seeds"
    if settle == "unknown":
        return "more seeds (the variances behind the interval are not recorded)"
    if settle is not None:
        return f"about {settle} seeds would likely settle it (from the measured variances)"
    gap = _to_boundary(r["vs_ref"][OBJECTIVE]["mean"], margin)
    return (
        f"not within 64 seeds at the measured variances: its difference lies {gap:.4f} nats "
        f"from the margin's edge (±{margin:.4f}), so only a much narrower interval settles "
        "it (more eval windows and seeds)"
    )


def _verdict(picks, candidates, too_costly, outcomes, reference, controls, blind, eps) -> str:
    power = "" if controls.get("discriminates") else f" ({controls['summary']})"
    if blind:
        power = (
            f" (mode(s) {', '.join(blind)} left out: their control was not told apart; "
            f"{controls['summary']})"
        )
    parts = []
    if picks:
        parts.append(
            f"{len(picks)} pick(s) worth scaling: {', '.join(p['schedule'] for p in picks)}"
        )
    else:
        parts.append("no pick")
    if candidates:
        one_seed = any(c["seeds"] < 2 for c in candidates)
        parts.append(
            ("one seed: " if one_seed else "")
            + "candidates to confirm: "
            + ", ".join(
                f"{c['schedule']} ({-c['far_gain']:+.4f} [{c['far_interval'][0]:+.4f}, "
                f"{c['far_interval'][1]:+.4f}] at {100 * c['level']:.4g}%, {c['outcome']}: "
                f"{c['to_confirm']})"
                for c in candidates
            )
        )
    if too_costly:
        parts.append(
            f"{', '.join(too_costly)} lean better past l_max but lose more than "
            f"{eps} nats of id_loss"
        )
    counts = ", ".join(f"{len(outcomes[o])} {o}" for o in decision.OUTCOMES if o in outcomes)
    if counts:
        parts.append(f"against {reference}: {counts}")
    return "; ".join(parts) + power
