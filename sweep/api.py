"""What the commands do, as functions: run, resume, report, calibrate, confirm, export,
schedules, trial, dashboard. Each owns its sequence, preflight -> claim -> Tune -> report,
so the command line (sweep/cli.py) is a dispatch table over this module, and a study runs
each of its arms through the same sequence as a sweep.

Every bad input raises ``SpecError`` (one line naming the field and the value) before
anything is written or any Ray process starts."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import yaml

from sweep import export as exporting
from sweep.analysis.aggregate import EmptyResults, aggregate
from sweep.analysis.records import read_record, record_path
from sweep.config import spec as spec_mod
from sweep.config import study_spec
from sweep.config.spec import SpecError, SweepSpec
from sweep.config.study_spec import Study
from sweep.export import Target
from sweep.report.figures_calibration import plot_ladder
from sweep.report.figures_schedules import plot_schedule_specs
from sweep.report.study_report import write_study
from sweep.report.sweep_report import report_sweep
from sweep.run import calibrate as calibrating
from sweep.run import confirm as confirming
from sweep.run import cost, orchestrate, study
from sweep.run.preflight import preflight
from sweep.run.progress import trial_line
from sweep.train.sessions import local_session
from sweep.train.tracking import mirror_summary
from sweep.train.trial import train


def run(spec_path: str, results: str, address: str | None, overwrite: bool, dry_run: bool) -> int:
    """``sweep run``: a sweep spec, or a study file (one with ``arms``)."""
    if study_spec.is_study(_yaml(spec_path)):
        return _run_study(spec_path, results, address, overwrite, dry_run)
    sw = spec_mod.load(spec_path)
    preflight(sw)  # it trains: the files and architecture it names, here
    sweep_dir = orchestrate.sweep_dir_for(sw, Path(results))
    orchestrate.preflight_run(sw, sweep_dir, address, overwrite, sys.stdout)
    if dry_run:
        cost.dry_run(sw)
        return 0
    orchestrate.prepare(sw, sweep_dir, overwrite)
    return _sweep(sw, sweep_dir, address)


def resume(directory: str, address: str | None) -> int:
    """``sweep resume``: keep the finished trials of a sweep, study or confirmation stage,
    run the rest."""
    if study_spec.is_study_dir(Path(directory)):
        st_dir = Path(directory).resolve()
        st = study_spec.load_dir(st_dir)
        main = st.arm_spec(st.main, [])
        preflight(main)
        orchestrate.check_cluster(main, address)
        return _study(st, st_dir, address)
    sweep_dir = Path(directory).resolve()
    if (sweep_dir / confirming.PLAN).is_file():  # a confirmation stage: its own plan
        return confirm(str(sweep_dir.parent), 0, address)
    sw = orchestrate.load_sweep_dir(sweep_dir)
    preflight(sw)  # training needs the corpus; reading the results did not
    orchestrate.check_cluster(sw, address)
    return _sweep(sw, sweep_dir, address)


def report(directory: str, out: str | None) -> int:
    """``sweep report``: rebuild a sweep's summary and report, or a study's document."""
    try:
        if study_spec.is_study_dir(Path(directory)):
            print(f"study document: {write_study(Path(directory), out)}")
            return 0
        if out:
            raise SpecError("--out", out, "is for a study's results directory")
        return report_sweep(Path(directory))
    except EmptyResults as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def calibrate(spec_path: str, results: str, address: str | None) -> int:
    """``sweep calibrate``: climb the spec's ladder to the cheapest proxy that sees
    extrapolation."""
    sw = spec_mod.load(spec_path)
    preflight(sw)  # it trains: the files and architecture it names, here
    if sw.calibrate is None:
        raise SpecError("calibrate", None, "the spec has no calibrate: section")
    for k in range(1, sw.calibrate.rungs):  # a rung may name other files (a tokenizer axis)
        preflight(calibrating.rung_spec(sw, k))
    orchestrate.check_cluster(sw, address)
    return calibrating.run(sw, Path(results), address, plot=plot_ladder)


def confirm(directory: str, seeds: int, address: str | None, quiet: bool = False) -> int:
    """``sweep confirm``; run after a sweep (``decision.confirm_seeds``), a sweep with
    nothing to confirm says so and is not an error."""
    try:
        return confirming.run(Path(directory), seeds, address, report=report_sweep)
    except SpecError as e:
        if quiet and e.field == "DIR":
            print(f"confirm: nothing to confirm ({e.why})")
            return 0
        raise


def export(
    directory: str, schedules: list[str] | None, out: str | None, target: Callable[[], Target]
) -> int:
    """``sweep export``: the picks (or the named schedules) as plans for the full run
    (``target()`` reads and announces the full run's size, once per schedule)."""
    sweep_dir = Path(directory)
    sw = orchestrate.load_sweep_dir(sweep_dir)
    wanted = schedules
    if not wanted:
        summary = aggregate(sweep_dir)
        wanted = [p["schedule"] for p in summary.picks]
        if not wanted:
            print(f"nothing to export: {summary.verdict} (name one with --schedule)")
            return 1
    trials = {t.schedule.label: t for t in sw.trials()}
    for name in wanted:
        if name not in trials:
            raise SpecError("--schedule", name, f"not in this sweep ({', '.join(trials)})")
    folder = Path(out or sweep_dir / "export")
    for name in wanted:
        paths = exporting.export_schedule(trials[name], folder / name, target())
        print(f"{name}: " + ", ".join(str(p) for p in paths))
    return 0


def export_schedules(spec_path: str, out: str | None, target: Callable[[], Target]) -> int:
    """``sweep schedules export``: every schedule of a spec, without training."""
    sw = spec_mod.load(spec_path)
    folder = Path(out or f"{sw.name}-schedules")
    for name, paths in exporting.export_spec(sw, folder, target()).items():
        print(f"{name}: " + ", ".join(str(p) for p in paths))
    return 0


def show_schedules(spec_path: str, out: str | None) -> int:
    """``sweep schedules show``: the trial count and a figure of length against tokens."""
    if study_spec.is_study(_yaml(spec_path)):  # a study: its main arm's schedules
        st = study_spec.load(spec_path)
        sw = st.arm_spec(st.main, [])
    else:
        sw = spec_mod.load(spec_path)
    path = Path(out or f"{sw.name}-schedules.png")
    plot_schedule_specs(sw, path)
    print(f"{len(sw.trials())} trials ({len(sw.seeds)} seed(s)); schedules plotted to {path}")
    return 0


def one_trial(spec_path: str, trial_id: str, results: str) -> int:
    """``sweep trial``: a trial exactly as a sweep runs it, minus Ray (debugging, baselines)."""
    sw = spec_mod.load(spec_path)
    preflight(sw)  # it trains: the files and architecture it names, here
    trials = {t.trial_id: t for t in sw.trials()}
    if trial_id not in trials:
        raise SpecError("--trial", trial_id, f"not in this sweep ({', '.join(trials)})")
    sweep_dir = orchestrate.sweep_dir_for(sw, Path(results))
    train({"trial": trials[trial_id].to_dict(), "sweep_dir": str(sweep_dir)}, local_session())
    rec = read_record(record_path(sweep_dir, trial_id))
    m = (rec and rec.metrics) or {}
    if rec is None or rec.status != "finished" or "far_loss" not in m:
        print(trial_line(trial_id, rec))  # a diverged trial has no losses: say why
        return 0 if rec and rec.status == "diverged" else 1
    print(
        f"{trial_id}: {rec.status}, id_loss {m['id_loss']:.4f}, "
        f"far_loss {m['far_loss']:.4f}, ctx_gain {m['ctx_gain']:+.4f}, "
        f"{rec.wall_s:.1f}s"
    )
    return 0


def dashboard(project: str, entity: str | None, sweep: str | None) -> int:
    """``sweep dashboard``: save the sweep's W&B workspace (needs W&B online)."""
    if not os.environ.get("WANDB_API_KEY"):
        raise SpecError(
            "WANDB_API_KEY", None, "is not set: saving a W&B workspace needs W&B online"
        )
    import wandb  # deferred: W&B's API costs a second to import; only this command uses it

    from dashboards.workspace import build as build_workspace  # deferred: as wandb

    ws = build_workspace(entity or wandb.Api().default_entity, project, sweep).save()
    print(f"workspace saved: {ws.url}")
    return 0


def _sweep(sw: SweepSpec, sweep_dir: Path, address: str | None) -> int:
    """Tune -> report -> W&B mirror -> confirmation, on a claimed results directory."""
    orchestrate.run_sweep(sw, sweep_dir, address)
    code = report_sweep(sweep_dir)
    _mirror(sw, sweep_dir)
    if sw.decision.confirm_seeds and code == 0:
        return confirm(str(sweep_dir), sw.decision.confirm_seeds, address, quiet=True)
    return code


def _mirror(sw: SweepSpec, sweep_dir: Path) -> None:
    """The sweep's summary as a W&B run of its group (a mirror: never decides anything)."""
    path = sweep_dir / "summary.json"
    if path.is_file():
        w = sw.wandb
        summary = json.loads(path.read_text())
        mirror_summary(summary, w.mode, w.project, w.entity, sw.name, sweep_dir / "wandb")


def _run_study(
    spec_path: str, results: str, address: str | None, overwrite: bool, dry_run: bool
) -> int:
    """A study file: preflight (every arm, later arms with the main arm's ramps standing
    in for its best), claim its directory, every arm in turn, then the study document."""
    st = study_spec.load(spec_path)
    study_dir = orchestrate.sweep_dir_for_name(st.name, Path(results))
    specs = study.standin_specs(st)
    for arm_spec in specs.values():
        preflight(arm_spec)
    main = specs[st.main]
    orchestrate.check_cluster(main, address)
    # deferred: data imports datasets at its top; the commands that never train must not
    from sweep.train import data

    data.check_eval_feasible(main.data, main.eval, main.schedules.l_max)
    study.prepare(st, study_dir, overwrite, check_only=True)
    if dry_run:
        study.dry_run(st)
        return 0
    study.prepare(st, study_dir, overwrite)
    return _study(st, study_dir, address)


def _study(st: Study, study_dir: Path, address: str | None, out: TextIO | None = None) -> int:
    """Every arm through the sweep's sequence (claim -> Tune -> report; finished trials are
    never rerun), then the study document (sweep/report/study_report.py)."""
    out = out or sys.stdout
    t0 = time.time()
    codes = []
    for arm, sw in study.arms_in_order(st, study_dir, out):
        if sw is None:  # the main arm has too few finished ramps for this arm
            codes.append(1)
            continue
        arm_dir = study_dir / arm
        orchestrate.prepare(sw, arm_dir)
        orchestrate.run_sweep(sw, arm_dir, address, out)
        codes.append(report_sweep(arm_dir))
    study.log_run(st, study_dir, t0, out)
    print(f"study document: {write_study(study_dir, study_dir)}")
    return max(codes, default=0)


def _yaml(path: str) -> object:
    """The spec file's YAML, or None when it cannot be read (spec.load then says why)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
