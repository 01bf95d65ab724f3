"""Confirmation: retrain what a sweep chose (its picks, else its candidates to confirm), the
reference and the negative control on fresh seeds, as a selection-free stage of its own in
``<sweep>/confirm/``. The selection stage chose the schedules on its own trials, so its
estimates are optimistic for them; the fresh seeds' estimates are not. The stage's margin
is the selection stage's, fixed before any fresh seed trains."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import yaml

from sweep.analysis.aggregate import CONFIRM_DIR, aggregate
from sweep.analysis.records import write_text_atomic
from sweep.config.shapes import NEGATIVE_CONTROL
from sweep.config.spec import SpecError, SweepSpec
from sweep.run import orchestrate
from sweep.run.preflight import preflight

PLAN = "confirm.yaml"


def plan(sweep_dir: Path, n_seeds: int) -> tuple[SweepSpec, list[str]]:
    """The confirmation stage's spec (fresh seeds after the sweep's own, the selection
    stage's margin) and the schedules it trains. A stage already planned keeps its plan."""
    spec = orchestrate.load_sweep_dir(sweep_dir)
    preflight(spec)  # it trains
    stored = sweep_dir / CONFIRM_DIR / PLAN
    if stored.is_file():
        p = yaml.safe_load(stored.read_text())
        labels, seeds, margin = p["schedules"], tuple(p["seeds"]), p["margin"]
    else:
        if n_seeds < 2:
            raise SpecError("--seeds", n_seeds, "must be at least 2: a pick needs seed noise")
        summary = aggregate(sweep_dir)
        chosen = [p["schedule"] for p in summary.picks or summary.candidates]
        if not chosen:
            said = "; ".join(summary.verdict.splitlines())  # the error stays one line
            raise SpecError("DIR", str(sweep_dir), f"has no pick or candidate to confirm ({said})")
        controls = [
            r["schedule"]
            for r in summary.schedules
            if r["role"] == "control" and r["shape"] == NEGATIVE_CONTROL
        ]
        labels = [*chosen, summary.reference, *controls]
        first = max(spec.seeds) + 1
        seeds = tuple(range(first, first + n_seeds))
        margin = summary.decision.margin if summary.decision else None
    decision = dataclasses.replace(spec.decision, margin=margin, confirm_seeds=0)
    return dataclasses.replace(spec, seeds=seeds, decision=decision), labels


def run(
    sweep_dir: Path,
    n_seeds: int,
    address: str | None,
    report: Callable[[Path], int],
    out: TextIO = sys.stdout,
) -> int:
    """Plan (or resume) the confirmation stage, train what it lacks, and report both stages:
    the stage's own report in ``confirm/``, then the sweep's, whose verdict now says of
    each pick whether it held (``report``: the report writer, sweep.api passes it)."""
    sweep_dir = Path(sweep_dir).resolve()
    spec, labels = plan(sweep_dir, n_seeds)
    stage = sweep_dir / CONFIRM_DIR
    orchestrate.check_cluster(spec, address)
    orchestrate.prepare(spec, stage)
    plan_text = {"schedules": labels, "seeds": list(spec.seeds), "margin": spec.decision.margin}
    write_text_atomic(stage / PLAN, yaml.safe_dump(plan_text, sort_keys=False))
    print(
        f"confirm: {', '.join(labels)} on fresh seeds {list(spec.seeds)} in {stage} "
        f"(margin {spec.decision.margin} nats, fixed by the selection stage)",
        file=out,
        flush=True,
    )
    orchestrate.run_sweep(spec, stage, address, out, only=set(labels))
    report(stage)
    return report(sweep_dir)
