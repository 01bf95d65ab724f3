"""Command line of the context-length schedule sweep: run, resume, calibrate, confirm,
report, export, schedules (show, export), trial, dashboard.

Every bad input ends in one line naming the field and the value, exit status 2, and
nothing started: specs are validated and the corpus checked before Ray is imported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.config.spec import SpecError, check_paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweep",
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="`sweep COMMAND --help` for each command's arguments. Exit status: 0 done, "
        "1 a sweep ended without an answer (a trial failed, none finished, a rung not "
        "reached), 2 bad input (one line on stderr naming the field and the value).",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run a sweep (or a study: a file with arms) from a YAML spec",
    )  # fmt: skip
    run.add_argument("spec", help="the sweep or study spec (YAML), e.g. configs/local.yaml")
    run.add_argument("--results", default="results", help="results root (default ./results)")
    run.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)"
    )
    run.add_argument("--dry-run", action="store_true", help="list trials, start nothing")
    run.add_argument(
        "--overwrite", action="store_true", help="discard an existing sweep of this name"
    )
    res = sub.add_parser(
        "resume", help="continue a sweep or study: keep finished trials, run the rest",
    )  # fmt: skip
    res.add_argument("dir", help="a sweep's (or study's) results directory")
    res.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)"
    )
    cal = sub.add_parser(
        "calibrate",
        help="climb the spec's calibrate: ladder to the cheapest proxy that sees extrapolation",
    )
    cal.add_argument("spec", help="a sweep spec with a calibrate: section")
    cal.add_argument("--results", default="results", help="results root (default ./results)")
    cal.add_argument("--address", default=None, help="Ray cluster address")
    con = sub.add_parser(
        "confirm",
        help="retrain a sweep's picks (or candidates), reference and negative control on "
        "fresh seeds, as a selection-free stage in DIR/confirm/",
    )
    con.add_argument("dir", help="the sweep's results directory")
    con.add_argument(
        "--seeds", type=int, default=2, help="fresh seeds (default 2, at least 2; a resumed "
        "stage keeps its own)",
    )  # fmt: skip
    con.add_argument("--address", default=None, help="Ray cluster address")
    rep = sub.add_parser("report", help="rebuild summary and report from a results directory")
    rep.add_argument("dir", help="a sweep's or a study's results directory")
    rep.add_argument(
        "--out", default=None, help="a study's document folder (default: the study's directory)"
    )
    sch = sub.add_parser("schedules", help="inspect schedules")
    sch_sub = sch.add_subparsers(dest="action", required=True)
    show = sch_sub.add_parser("show", help="trial count and a PNG of length versus tokens")
    show.add_argument("spec", help="a sweep spec, or a study file (its main arm)")
    show.add_argument("--out", default=None, help="PNG path (default <name>-schedules.png)")
    exp = sch_sub.add_parser("export", help="step tables, DeepSpeed configs, target-unit specs")
    exp.add_argument("spec", help="a sweep spec: every schedule in it is exported")
    exp.add_argument("--out", default=None, help="folder (default <name>-schedules/)")
    _target_args(exp)
    ex = sub.add_parser(
        "export", help="write the picks of a sweep as plans for the scale-up run",
    )  # fmt: skip
    ex.add_argument("dir", help="the sweep's results directory")
    ex.add_argument(
        "--schedule",
        action="append",
        default=None,
        help="export this schedule instead of the picks (repeatable)",
    )
    ex.add_argument("--out", default=None, help="folder (default DIR/export/)")
    _target_args(ex)
    one = sub.add_parser("trial", help="run one trial of a spec in this process, without Ray")
    one.add_argument("spec", help="the sweep spec (YAML)")
    one.add_argument("--trial", required=True, help="trial id, as `sweep run --dry-run` lists")
    one.add_argument("--results", default="results", help="results root (default ./results)")
    dash = sub.add_parser("dashboard", help="save the sweep's W&B workspace (needs W&B online)")
    dash.add_argument("--project", required=True, help="the W&B project the trials logged to")
    dash.add_argument("--entity", default=None, help="default: your W&B default entity")
    dash.add_argument("--sweep", default=None, help="only this sweep's runs (its W&B group)")
    return p


def _one_trial(args: argparse.Namespace) -> int:
    """A trial exactly as a sweep runs it, minus Ray: for debugging and baselines."""
    from sweep.analysis.records import read_record, record_path
    from sweep.config import spec
    from sweep.run import orchestrate
    from sweep.train.sessions import local_session
    from sweep.train.trial import train

    sw = spec.load(args.spec)
    trials = {t.trial_id: t for t in sw.trials()}
    if args.trial not in trials:
        raise SpecError("--trial", args.trial, f"not in this sweep ({', '.join(trials)})")
    sweep_dir = orchestrate.sweep_dir_for(sw, Path(args.results))
    train({"trial": trials[args.trial].to_dict(), "sweep_dir": str(sweep_dir)}, local_session())
    rec = read_record(record_path(sweep_dir, args.trial))
    print(
        f"{args.trial}: {rec['status']}, id_loss {rec['metrics']['id_loss']:.4f}, "
        f"far_loss {rec['metrics']['far_loss']:.4f}, ctx_gain {rec['metrics']['ctx_gain']:+.4f}, "
        f"{rec['wall_s']:.1f}s"
    )
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import os

    if not os.environ.get("WANDB_API_KEY"):
        raise SpecError(
            "WANDB_API_KEY", None, "is not set: saving a W&B workspace needs W&B online"
        )
    import wandb

    from dashboards.workspace import build

    entity = args.entity or wandb.Api().default_entity
    ws = build(entity, args.project, args.sweep).save()
    print(f"workspace saved: {ws.url}")
    return 0


def _target_args(p: argparse.ArgumentParser) -> None:
    from sweep.export import Target

    d = Target()
    p.add_argument(
        "--target-l-max", type=int, default=d.l_max,
        help=f"the full run's longest context length, in its tokens (default {d.l_max:,})",
    )  # fmt: skip
    p.add_argument(
        "--target-tokens", type=float, default=d.tokens,
        help=f"the full run's training tokens (default {d.tokens:.4g}, BTLM-3B-8K's)",
    )  # fmt: skip
    p.add_argument(
        "--target-tokens-per-step", type=int, default=d.tokens_per_step,
        help="the full run's tokens per optimizer step, a multiple of --target-l-max "
        f"(default {d.tokens_per_step:,})",
    )  # fmt: skip


def _target(args: argparse.Namespace):
    from sweep.export import Target

    t = Target(args.target_l_max, int(args.target_tokens), args.target_tokens_per_step)
    if t.l_max <= 0 or t.tokens <= 0 or t.tokens_per_step <= 0:
        raise SpecError("--target-*", (t.l_max, t.tokens, t.tokens_per_step), "must be positive")
    said = "the default, BTLM-3B-8K's; set --target-*" if t == Target() else "from --target-*"
    print(
        f"target: l_max {t.l_max:,} tokens, {t.tokens:.4g} training tokens, "
        f"{t.tokens_per_step:,} tokens a step ({said})"
    )
    if t.tokens_per_step % t.l_max:
        raise SpecError(
            "--target-tokens-per-step",
            t.tokens_per_step,
            f"is not a multiple of --target-l-max {t.l_max}",
        )
    return t


def _export(args: argparse.Namespace) -> int:
    from sweep import export
    from sweep.analysis import aggregate
    from sweep.run import orchestrate

    sweep_dir = Path(args.dir)
    spec = orchestrate.load_sweep_dir(sweep_dir)
    wanted = args.schedule
    if not wanted:
        summary = aggregate.aggregate(sweep_dir)
        wanted = [p["schedule"] for p in summary.picks]
        if not wanted:
            print(f"nothing to export: {summary.verdict} (name one with --schedule)")
            return 1
    trials = {t.schedule.label: t for t in spec.trials()}
    for name in wanted:
        if name not in trials:
            raise SpecError("--schedule", name, f"not in this sweep ({', '.join(trials)})")
    out = Path(args.out or sweep_dir / "export")
    for name in wanted:
        paths = export.export_schedule(trials[name], out / name, _target(args))
        print(f"{name}: " + ", ".join(str(p) for p in paths))
    return 0


def _report(sweep_dir: Path) -> int:
    from sweep.report.sweep_report import report_sweep

    return report_sweep(sweep_dir)


def _run(spec, sweep_dir: Path, address: str | None) -> int:
    from sweep.run import orchestrate

    orchestrate.run_sweep(spec, sweep_dir, address)
    code = _report(sweep_dir)
    _mirror(spec, sweep_dir)
    if spec.decision.confirm_seeds and code == 0:
        return _confirm(sweep_dir, spec.decision.confirm_seeds, address, quiet=True)
    return code


def _mirror(spec, sweep_dir: Path) -> None:
    """The sweep's summary as a W&B run of its group (a mirror: never decides anything)."""
    import json

    from sweep.train.tracking import mirror_summary

    path = sweep_dir / "summary.json"
    if path.is_file():
        w = spec.wandb
        summary = json.loads(path.read_text())
        mirror_summary(summary, w.mode, w.project, w.entity, spec.name, sweep_dir / "wandb")


def _confirm(sweep_dir: Path, seeds: int, address: str | None, quiet: bool = False) -> int:
    """``sweep confirm``; run after a sweep (``decision.confirm_seeds``), a sweep with
    nothing to confirm says so and is not an error."""
    from sweep.run import confirm

    try:
        return confirm.run(sweep_dir, seeds, address)
    except SpecError as e:
        if quiet and e.field == "DIR":
            print(f"confirm: nothing to confirm ({e.why})")
            return 0
        raise


def _yaml(path: str) -> object:
    """The spec file's YAML, or None when it cannot be read (spec.load then says why)."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def _run_study(args: argparse.Namespace) -> int:
    """A study file (one with ``arms``): every arm in turn, then the study document."""
    from sweep.run import orchestrate, study
    from sweep.train import data

    st = study.load(args.spec)
    study_dir = orchestrate.sweep_dir_for_name(st.name, Path(args.results))
    main = st.arm_spec(st.main, [])
    check_paths(main)
    orchestrate.preflight(main, args.address)
    data.check_eval_feasible(main.data, main.eval, main.schedules.l_max)
    study.prepare(st, study_dir, args.overwrite, check_only=True)
    if args.dry_run:
        study.dry_run(st)
        return 0
    study.prepare(st, study_dir, args.overwrite)
    return _study_and_document(st, study_dir, args.address)


def _study_and_document(st, study_dir: Path, address: str | None) -> int:
    """Every arm of a study, then its document (sweep.analysis.findings)."""
    from sweep.analysis.findings import write_study
    from sweep.run import study

    code = study.run(st, study_dir, address)
    print(f"study document: {write_study(study_dir, study_dir)}")
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "run":
            from sweep.config import spec
            from sweep.run import orchestrate, study

            if study.is_study(_yaml(args.spec)):
                return _run_study(args)
            sw = spec.load(args.spec)
            sweep_dir = orchestrate.sweep_dir_for(sw, Path(args.results))
            orchestrate.preflight_run(sw, sweep_dir, args.address, args.overwrite, sys.stdout)
            if args.dry_run:
                orchestrate.dry_run(sw)
                return 0
            orchestrate.prepare(sw, sweep_dir, args.overwrite)
            return _run(sw, sweep_dir, args.address)
        if args.cmd == "resume":
            from sweep.run import orchestrate, study

            if study.is_study_dir(Path(args.dir)):
                st_dir = Path(args.dir).resolve()
                st = study.load_dir(st_dir)
                check_paths(st.arm_spec(st.main, []))
                orchestrate.preflight(st.arm_spec(st.main, []), args.address)
                return _study_and_document(st, st_dir, args.address)
            sweep_dir = Path(args.dir).resolve()
            if (sweep_dir / "confirm.yaml").is_file():  # a confirmation stage: its own plan
                return _confirm(sweep_dir.parent, 0, args.address)
            sw = orchestrate.load_sweep_dir(sweep_dir)
            check_paths(sw)  # training needs the corpus; reading the results did not
            orchestrate.preflight(sw, args.address)
            return _run(sw, sweep_dir, args.address)
        if args.cmd == "report":
            from sweep.analysis.aggregate import EmptyResults
            from sweep.run import study

            try:
                if study.is_study_dir(Path(args.dir)):
                    from sweep.analysis.findings import write_study

                    print(f"study document: {write_study(Path(args.dir), args.out)}")
                    return 0
                if args.out:
                    raise SpecError("--out", args.out, "is for a study's results directory")
                return _report(Path(args.dir))
            except EmptyResults as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        if args.cmd == "calibrate":
            from sweep.config import spec
            from sweep.run import calibrate, orchestrate

            sw = spec.load(args.spec)
            if sw.calibrate is None:
                raise SpecError("calibrate", None, "the spec has no calibrate: section")
            orchestrate.preflight(sw, args.address)
            return calibrate.run(sw, Path(args.results), args.address)
        if args.cmd == "confirm":
            return _confirm(Path(args.dir), args.seeds, args.address)
        if args.cmd == "export":
            return _export(args)
        if args.cmd == "dashboard":
            return _dashboard(args)
        if args.cmd == "trial":
            return _one_trial(args)
        if args.cmd == "schedules" and args.action == "export":
            from sweep import export
            from sweep.config import spec

            sw = spec.load(args.spec)
            out = Path(args.out or f"{sw.name}-schedules")
            for name, paths in export.export_spec(sw, out, _target(args)).items():
                print(f"{name}: " + ", ".join(str(p) for p in paths))
            return 0
        if args.cmd == "schedules":
            from sweep.config import spec
            from sweep.report.figures import plot_schedule_specs
            from sweep.run import study

            if study.is_study(_yaml(args.spec)):  # a study: its main arm's schedules
                st = study.load(args.spec)
                sw = st.arm_spec(st.main, [])
            else:
                sw = spec.load(args.spec)
            out = Path(args.out or f"{sw.name}-schedules.png")
            plot_schedule_specs(sw, out)
            print(
                f"{len(sw.trials())} trials ({len(sw.seeds)} seed(s)); schedules plotted to {out}"
            )
            return 0
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
