"""Bad input: one clear line naming the field and value, exit 2, no Ray process started
(the processes the command starts are watched: /tmp/ray/session_latest moves whenever any
other Ray on the machine starts)."""

import subprocess

import pytest
import yaml
from support import RAY_PROCESSES, ROOT, run_sweep, run_watched


def smoke() -> dict:
    return yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


def run_cli(args, cwd) -> subprocess.CompletedProcess:
    return run_sweep(*args, cwd=cwd, timeout=120)


def run_cli_watched(args, cwd) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The command's result and the Ray processes it started (none, we hope)."""
    rc, out, err, started = run_watched(args, cwd)
    ray = [p for p in started if any(name in p for name in RAY_PROCESSES)]
    return subprocess.CompletedProcess(args, rc, out, err), ray


CASES = [
    (
        "unknown shape",
        ("schedules", "shapes"),
        ["constant", "zigzag"],
        "schedules.shapes",
        "zigzag",
    ),
    ("negative length", ("schedules", "l_min"), -32, "schedules.l_min", "-32"),
    ("l_min > l_max", ("schedules", "l_min"), 128, "schedules.l_min", "128"),
    ("ramp rate > 1", ("schedules", "ramp_rates"), [0.5, 1.5], "schedules.ramp_rates", "1.5"),
    ("ramp rate 0", ("schedules", "ramp_rates"), [0], "schedules.ramp_rates", "0"),
    ("E too long", ("eval", "multiple"), 100000, "eval.multiple", "100000"),
    ("multiple_of > l_min", ("schedules", "multiple_of"), 32, "schedules.multiple_of", "32"),
    (
        "tokens_per_step vs l_max",
        ("budget", "tokens_per_step"),
        2000,
        "budget.tokens_per_step",
        "2000",
    ),
    ("budget < one step", ("budget", "tokens"), 1000, "budget.tokens", "1000"),
    ("unknown position", ("model", "position"), "sinusoid", "model.position", "sinusoid"),
    ("width vs heads", ("model", "d_model"), 33, "model.d_model", "33"),
    ("unknown architecture", ("model", "arch"), "gpt-9000", "model.arch", "gpt-9000"),
    (
        "stages not increasing",
        ("schedules", "shapes"),
        [{"shape": "multi_stage", "stages": [[0.6, 32], [0.4, 48], [1.0, 64]]}],
        "schedules.stages",
        "[0.6, 0.4, 1.0]",
    ),
    (
        "stages not ending at 1",
        ("schedules", "shapes"),
        [{"shape": "multi_stage", "stages": [[0.5, 32], [0.9, 64]]}],
        "schedules.stages",
        "[0.5, 0.9]",
    ),
    (
        "mixture probabilities",
        ("schedules", "shapes"),
        [{"shape": "mixture", "mixture_lengths": [16, 64], "mixture_start": [0.5, 0.6]}],
        "schedules.mixture_start",
        "[0.5, 0.6]",
    ),
    ("unknown batching", ("budget", "batching"), "pack", "budget.batching", "pack"),
    ("zero stage", ("deepspeed", "zero_stage"), 4, "deepspeed.zero_stage", "4"),
]


@pytest.mark.parametrize("why,path,value,field,shown", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_with_one_line(tmp_path, why, path, value, field, shown):
    spec = smoke()
    spec[path[0]][path[1]] = value
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(spec))
    r, ray = run_cli_watched(["run", str(f), "--results", str(tmp_path / "res")], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert field in lines[0] and shown in lines[0]
    assert ray == []  # no Ray started
    assert not (tmp_path / "res").exists()  # nothing half-written


@pytest.mark.parametrize("lr", [".nan", ".inf", "0"])
def test_dry_run_refuses_a_learning_rate_that_cannot_train(tmp_path, lr):
    text = (ROOT / "configs" / "local.yaml").read_text()
    f = tmp_path / "lr.yaml"
    f.write_text(text.replace("lr: 0.003", f"lr: {lr}"))
    r = run_cli(["run", str(f), "--dry-run"], tmp_path)
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip().startswith("spec error: optim.lr=") and "\n" not in r.stderr.strip()


def test_missing_spec_file(tmp_path):
    r = run_cli(["run", str(tmp_path / "nope.yaml")], tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.yaml" in r.stderr and "not found" in r.stderr


@pytest.mark.parametrize("cmd", ["resume", "export", "confirm"])
def test_a_missing_results_directory_is_a_usage_error(tmp_path, cmd):
    r = run_cli([cmd, str(tmp_path / "nowhere")], tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.startswith("usage error: DIR=") and line.endswith(": does not exist"), line


def test_report_on_empty_dir_exits_2(tmp_path):
    r = run_cli(["report", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and "no trial records" in r.stderr


def test_dry_run_lists_trials_and_starts_nothing(tmp_path):
    r, ray = run_cli_watched(["run", str(ROOT / "configs" / "local.yaml"), "--dry-run"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "linear-r0.25-s0" in r.stdout and "14 trials" in r.stdout and "estimated" in r.stdout
    assert ray == [] and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "config, said",
    [("local.yaml", "14 trials (2 seed(s))"), ("study.yaml", "30 trials (6 seed(s))")],
    ids=["sweep", "study-file"],
)
def test_schedules_show_writes_png(tmp_path, config, said):
    out = tmp_path / "s.png"
    r = run_cli(["schedules", "show", str(ROOT / "configs" / config), "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert said in r.stdout and out.read_bytes()[:4] == b"\x89PNG"


def test_help_names_every_command_and_every_argument():
    from sweep.cli import _parser

    p = _parser()
    top = p.format_help()
    subs = p._subparsers._group_actions[0].choices
    for name in subs:
        assert name in top
    assert "``" not in top and "sweep run | resume" not in top
    for name, sp in subs.items():
        for action in sp._actions:
            if action.dest != "help" and not isinstance(
                action, type(p._subparsers._group_actions[0])
            ):
                assert action.help, (name, action.dest)
