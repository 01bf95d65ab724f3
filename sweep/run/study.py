"""Running a study: its directory, its arms in order (the main arm first: later arms repeat
its best ramps), and its dry run. The sequence for each arm (claim -> Tune -> report) and
the study document after the last are sweep.api's; the study file itself is
sweep/config/study_spec.py, its findings sweep/analysis/findings.py."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import yaml

from sweep.analysis.arms import best_ramps, main_summary
from sweep.config.spec import SweepSpec
from sweep.config.study_spec import (
    RUNS_FILE,
    STUDY_FILE,
    Study,
    adds_seeds,
    ramp_entry,
    ramp_labels,
)
from sweep.run import cost
from sweep.run.orchestrate import claim_dir


def prepare(study: Study, study_dir: Path, overwrite: bool, check_only: bool = False) -> None:
    """Create the study's directory, or check an existing one holds this very study
    (``check_only``: the checks alone, for the dry run)."""

    def same(text: str) -> bool:  # this study, or it with seeds added or new words
        return adds_seeds(yaml.safe_load(text), study.raw)

    claim_dir(study_dir, STUDY_FILE, study.raw, same, "study", overwrite, check_only)


def arms_in_order(
    study: Study, study_dir: Path, out: TextIO
) -> Iterator[tuple[str, SweepSpec | None]]:
    """Each arm's name and spec in order, the main arm first; an arm that repeats the main
    arm's best ramps is resolved when its turn comes (after the main arm has trained), and
    comes as None when the main arm has too few finished ramps."""
    main = study.arm_spec(study.main, [])
    best: list[str] | None = None  # resolved once, after the main arm: it no longer changes
    for i, arm in enumerate(study.arm_names):
        if not (i and study.placeholders(arm)):
            yield arm, main if i == 0 else study.arm_spec(arm, [])
            continue
        if best is None:
            best = best_ramps(main_summary(study_dir / study.main, main), main)
        if len(best) < max(study.placeholders(arm)):
            print(f"arm {arm}: skipped, the main arm has {len(best)} finished ramps", file=out)
            yield arm, None
            continue
        named = sorted(set(study.placeholders(arm)))
        print(
            f"arm {arm}: best ramps of {study.main}: "
            + ", ".join(f"best_ramp:{k} = {best[k - 1]}" for k in named),
            file=out,
            flush=True,
        )
        yield arm, study.arm_spec(arm, [ramp_entry(main, r) for r in best])


def log_run(study: Study, study_dir: Path, t0: float, out: TextIO) -> None:
    """Append this run's wall time to the study's ``runs.jsonl`` (its cost, in the document)."""
    wall = time.time() - t0
    with open(study_dir / RUNS_FILE, "a") as f:
        f.write(json.dumps({"started": t0, "wall_s": round(wall, 1)}) + "\n")
    print(f"study {study.name}: {wall / 60:.1f} min this run", file=out)


def standin_specs(study: Study) -> dict[str, SweepSpec]:
    """Every arm's spec before the main arm has results: ``best_ramp:k`` stood in for by the
    main arm's k-th increasing ramp in grid order (what the dry run and the preflight see)."""
    main = study.arm_spec(study.main, [])
    ramps = [ramp_entry(main, r) for r in ramp_labels(main)]
    return {
        arm: main if i == 0 else study.arm_spec(arm, ramps) for i, arm in enumerate(study.arm_names)
    }


def dry_run(study: Study, out: TextIO | None = None, measure: bool = True) -> None:
    out = out or sys.stdout

    total = flops = 0.0
    for arm, sw in standin_specs(study).items():
        note = ""
        if study.placeholders(arm):
            note = " (best_ramp:k stood in for by the main arm's k-th ramp in grid order)"
        print(f"\n== arm {arm}: {sw.name}{note}", file=out)
        rows = cost.dry_run(sw, out, measure)
        slots = min(sw.resources.max_concurrent_trials, len(rows))
        total += sum(r["est_s"] for r in rows) / slots
        flops += sum(r["flops"] for r in rows)
    when = f"estimated {total / 60:.0f} min here" if total == total else "time not estimated here"
    print(
        f"\nstudy {study.name}: {len(study.arm_names)} arms, {flops / 1e15:,.1f} PFLOPs of "
        f"training; {when}; nothing started (--dry-run)",
        file=out,
    )
