"""A study's arms read from results: the main arm's aggregate and its best increasing
ramps, which later arms repeat (``best_ramp:k``), and every arm's spec with those resolved."""

from __future__ import annotations

from pathlib import Path

from sweep.analysis.aggregate import EmptyResults, aggregate
from sweep.config.spec import SweepSpec
from sweep.config.study_spec import Study, ramp_entry, ramp_labels


def main_summary(study_dir: Path, spec: SweepSpec):
    """The main arm's aggregate (``aggregate.Summary``), judged against its reference."""
    return aggregate(Path(study_dir), spec.schedules.reference)


def best_ramps(summary, spec: SweepSpec) -> list[str]:
    """The main arm's increasing ramps (``summary``: its aggregate), best (lowest
    seed-mean far_loss) first: the schedules later arms repeat. Ties go to lower id_loss."""
    allowed = set(ramp_labels(spec))
    rows = [r for r in summary.schedules if r["schedule"] in allowed and "far_loss" in r]
    rows.sort(key=lambda r: (r["far_loss"], r.get("id_loss", 0.0)))
    return [r["schedule"] for r in rows]


def resolved_specs(study: Study, study_dir: Path) -> dict[str, SweepSpec]:
    """Every arm's spec, placeholders resolved from the main arm's results (an arm whose
    placeholders cannot be resolved yet is left out)."""
    main = study.arm_spec(study.main, [])
    out = {study.main: main}
    best: list[str] | None = None
    for arm in study.arm_names[1:]:
        if study.placeholders(arm):
            if best is None:
                try:
                    best = best_ramps(main_summary(study_dir / study.main, main), main)
                except EmptyResults:  # the main arm has no records yet
                    best = []
            if max(study.placeholders(arm)) > len(best):
                continue
            out[arm] = study.arm_spec(arm, [ramp_entry(main, r) for r in best])
        else:
            out[arm] = study.arm_spec(arm, [])
    return out
