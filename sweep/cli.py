"""Command line of the context-length schedule sweep: run, resume, calibrate, confirm,
report, export, schedules (show, export), trial, dashboard.

Every bad input ends in one line naming the field and the value, exit status 2, and
nothing started: specs are validated and the corpus checked before Ray is imported."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sweep import api
from sweep.config.spec import SpecError
from sweep.export import Target


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweep",
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="`sweep COMMAND --help` for each command's arguments. Exit status: 0 done, "
        "1 a sweep ended without an answer (a trial failed, none finished, a rung not "
        "reached), 2 bad input (one line on stderr naming the field and the value).",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _run_args(sub)
    _resume_calibrate_confirm(sub)
    _report_schedules_export(sub)
    _trial_dashboard(sub)
    return p


def _run_args(sub: argparse._SubParsersAction) -> None:
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


def _resume_calibrate_confirm(sub: argparse._SubParsersAction) -> None:
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


def _report_schedules_export(sub: argparse._SubParsersAction) -> None:
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


def _trial_dashboard(sub: argparse._SubParsersAction) -> None:
    one = sub.add_parser("trial", help="run one trial of a spec in this process, without Ray")
    one.add_argument("spec", help="the sweep spec (YAML)")
    one.add_argument("--trial", required=True, help="trial id, as `sweep run --dry-run` lists")
    one.add_argument("--results", default="results", help="results root (default ./results)")
    dash = sub.add_parser("dashboard", help="save the sweep's W&B workspace (needs W&B online)")
    dash.add_argument("--project", required=True, help="the W&B project the trials logged to")
    dash.add_argument("--entity", default=None, help="default: your W&B default entity")
    dash.add_argument("--sweep", default=None, help="only this sweep's runs (its W&B group)")


def _target_args(p: argparse.ArgumentParser) -> None:
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


def _target(args: argparse.Namespace) -> Target:
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": lambda a: api.run(a.spec, a.results, a.address, a.overwrite, a.dry_run),
    "resume": lambda a: api.resume(a.dir, a.address),
    "report": lambda a: api.report(a.dir, a.out),
    "calibrate": lambda a: api.calibrate(a.spec, a.results, a.address),
    "confirm": lambda a: api.confirm(a.dir, a.seeds, a.address),
    "export": lambda a: api.export(a.dir, a.schedule, a.out, lambda: _target(a)),
    "schedules show": lambda a: api.show_schedules(a.spec, a.out),
    "schedules export": lambda a: api.export_schedules(a.spec, a.out, lambda: _target(a)),
    "trial": lambda a: api.one_trial(a.spec, a.trial, a.results),
    "dashboard": lambda a: api.dashboard(a.project, a.entity, a.sweep),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = f"{args.cmd} {args.action}" if args.cmd == "schedules" else args.cmd
    try:
        return COMMANDS[command](args)
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
