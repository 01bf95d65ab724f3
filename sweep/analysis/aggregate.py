"""Aggregator: reads only the results directory, recomputes every metric from the stored
per-sequence values, averages seeds, compares each schedule with the reference on the
same eval windows (paired intervals over seeds and documents), checks that the negative
control is told apart from the reference, and picks the schedules worth scaling.

The objective is far_loss, held-out loss past l_max (lower is better). delta and slope
describe the curve's shape and never decide anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sweep.analysis.controls import check_controls, sight
from sweep.analysis.paired import OBJECTIVE, Trial, load_trials, schedule_rows
from sweep.analysis.pick import Decision, best_ramp, decide, stability
from sweep.analysis.records import write_json_atomic
from sweep.config.spec import FEW_HELD_OUT, SweepSpec

CONFIRM_DIR = "confirm"  # the confirmation stage's own results directory, in a sweep's


class EmptyResults(ValueError):
    pass


@dataclass
class Summary:
    sweep_dir: Path
    trials: list[Trial]
    skipped: list[dict]
    schedules: list[dict]
    reference: str
    picks: list[dict]
    verdict: str
    controls: dict = field(default_factory=dict)
    decision: Decision | None = None
    confirmation: dict | None = None

    @property
    def candidates(self) -> list[dict]:
        return self.decision.candidates if self.decision else []

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "finished"]

    @property
    def sweep(self) -> SweepSpec | None:
        """The sweep's spec as its records stored it (one parse: every record of a sweep
        stores the same spec, its seeds aside)."""
        return stored_sweep(self.trials)

    @property
    def name(self) -> str:
        """The sweep's name from its spec (a copied or renamed directory keeps it)."""
        return self.sweep.name if self.sweep else self.sweep_dir.name

    def to_dict(self) -> dict:
        return {
            "sweep": self.name,
            "objective": OBJECTIVE,
            "reference": self.reference,
            "verdict": self.verdict,
            "sees": self.controls.get("sees"),
            "controls": self.controls,
            "picks": self.picks,
            "candidates": self.candidates,
            "decision": self.decision.to_dict() if self.decision else None,
            "confirmation": self.confirmation,
            "ranking": [
                {k: v for k, v in r.items() if not k.startswith("_")} for r in self.schedules
            ],
            "trials": [
                {
                    "trial_id": t.id,
                    "status": t.status,
                    "role": t.role,
                    "schedule": t.record.schedule,
                    "seed": t.record.seed,
                    "error": t.record.error,
                    "tokens_trained": t.record.tokens_trained,
                    "wall_s": t.record.wall_s,
                    "metrics": t.metrics,
                }
                for t in self.trials
            ],
            "skipped": self.skipped,
        }


def aggregate(sweep_dir: Path, reference: str | None = None) -> Summary:
    sweep_dir = Path(sweep_dir)
    trials, skipped = load_trials(sweep_dir)
    if not trials:
        raise EmptyResults(
            f"{sweep_dir}: no trial records found (is this a sweep's results directory?)"
        )
    if reference is None:
        reference = _reference_from_dir(trials)
    rows = schedule_rows([t for t in trials if t.status == "finished"], reference)
    controls = check_controls(rows, reference) if rows else {}
    if rows:
        sweep = stored_sweep(trials)
        margin = sweep.decision.margin if sweep else None
        dec = decide(rows, reference, controls, margin=margin)
        finished = [t for t in trials if t.status == "finished"]
        dec.head_to_head = best_ramp(finished, rows, reference, dec.margin)
        dec.stability = stability(finished, rows)
        verdict = f"{sight(controls)}\n{dec.verdict}"
        if dec.head_to_head:
            verdict += "\n" + dec.head_to_head["summary"]
    else:
        why = "no pick: no finished trial"
        if all(t.status == "diverged" for t in trials):
            why += " (every trial diverged: lower optim.lr or raise optim.warmup_fraction)"
        dec = Decision([], [], why)
        verdict = dec.verdict
    kept = (trials[0].record.held_out_removed or {}).get("kept")
    if isinstance(kept, int) and kept < FEW_HELD_OUT:
        verdict += (
            f"\nwarning: only {kept} held-out documents (fewer than {FEW_HELD_OUT}): the "
            "intervals over documents are wide; raise data.held_out_fraction or use a "
            "larger corpus"
        )
    confirmed = confirmation(sweep_dir, dec.picks or dec.candidates)
    if confirmed:
        verdict += "\n" + confirmed["summary"]
    return Summary(
        sweep_dir, trials, skipped, rows, reference, dec.picks, verdict, controls, dec, confirmed
    )


def confirmation(sweep_dir: Path, chosen: list[dict]) -> dict | None:
    """What the confirmation stage (``sweep confirm``: fresh seeds, selection-free) says of
    each schedule the sweep chose: "confirmed" when it is better than the reference there
    too (on at least 2 fresh seeds, at the selection stage's margin, corrected for the
    stage's own comparisons), "did not hold" when its fresh seeds are all in and it is
    not, "pending" while they are not. None without such a stage."""
    stage = Path(sweep_dir) / CONFIRM_DIR
    if not chosen or not (stage / "trials").is_dir():
        return None
    plan_path = stage / "confirm.yaml"
    plan = yaml.safe_load(plan_path.read_text()) if plan_path.is_file() else {}
    want = len(plan.get("seeds") or []) or 2
    try:
        staged = aggregate(stage)
    except EmptyResults:
        return None
    rows = {r["schedule"]: r for r in staged.schedules}
    out: dict = {"seeds": plan.get("seeds"), "schedules": {}}
    words = []
    for c in chosen:
        name, r = c["schedule"], rows.get(c["schedule"])
        far = (r or {}).get("vs_ref", {}).get(OBJECTIVE)
        d = (r or {}).get("decision") or {}
        if r is None or r["seeds"] < want or far is None:
            status = "pending"
        elif d.get("outcome") == "better" and r["seeds"] >= 2:
            status = "confirmed"
        else:
            status = "did not hold"
        lo, hi = d.get("interval") or (None, None)
        level = f"at {100 * d['level']:.4g}%" if d.get("level") else "at 95%"
        if lo is None and far is not None:  # the stage decided nothing: its own interval
            lo, hi = far.get("lo"), far.get("hi")
        out["schedules"][name] = {
            "status": status,
            "outcome": d.get("outcome"),
            "mean": far["mean"] if far else None,
            "interval": [lo, hi],
            "seeds": r["seeds"] if r else 0,
        }
        if far is None:
            words.append(f"{name} {status}")
        else:
            outcome = d.get("outcome") or "no decision: the stage is underpowered"
            words.append(
                f"{name} {status} ({far['mean']:+.4f} [{_signed(lo)}, {_signed(hi)}] {level}, "
                f"{outcome})"
            )
    out["summary"] = (
        f"confirmation on fresh seeds {plan.get('seeds')} (selection-free): " + "; ".join(words)
    )
    if staged.controls.get("negative") and not staged.controls.get("discriminates"):
        out["summary"] += (
            f" (the stage's own control was not told apart: {staged.controls['summary']})"
        )
    return out


def _signed(x) -> str:
    """A signed number, or "?" when there is none."""
    return "?" if x is None else f"{x:+.4f}"


def stored_sweep(trials: list[Trial]) -> SweepSpec | None:
    """The sweep's spec as its records stored it: the first that parses (None when none
    does, e.g. records of an older version)."""
    return next((t.record.sweep for t in trials if t.record.sweep is not None), None)


def _reference_from_dir(trials: list[Trial]) -> str:
    sweep = stored_sweep(trials)
    return sweep.schedules.reference if sweep else "constant"


def write_summary(summary: Summary) -> Path:
    path = summary.sweep_dir / "summary.json"
    write_json_atomic(path, summary.to_dict())
    return path
