"""A tiny sweep through real Ray Tune, real Ray Train and real DeepSpeed (CPU, gloo)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT, run_sweep

pytestmark = pytest.mark.e2e
SECRET = "ctxsweep0test0secret0key0abcdef0123456789"  # a stand-in W&B key: must leak nowhere


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    res = tmp_path_factory.mktemp("results")
    r = run_sweep(
        "run",
        ROOT / "configs" / "smoke.yaml",
        "--results",
        res,
        timeout=900,
        env={**os.environ, "WANDB_API_KEY": SECRET},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return res / "smoke", r


def records(d: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(d.glob("trials/*/record.json"))]


def test_every_trial_finished_on_equal_tokens(smoke_sweep):
    d, _ = smoke_sweep
    recs = records(d)
    assert len(recs) >= 3
    assert {r["status"] for r in recs} == {"finished"}
    assert len({r["tokens_trained"] for r in recs}) == 1
    assert recs[0]["tokens_trained"] == recs[0]["config"]["sweep"]["budget"]["tokens"]
    for r in recs:
        assert sum(r["tokens_by_length"].values()) == r["tokens_trained"]
        assert r["versions"]["deepspeed"] and r["workers"] == 1


def test_curves_have_E_points_and_metrics(smoke_sweep):
    d, _ = smoke_sweep
    for r in records(d):
        E = r["config"]["sweep"]["eval"]["multiple"] * r["l_max"]
        assert len(r["curve"]) == E == r["eval_length"]
        m = r["metrics"]
        assert m["delta"] == pytest.approx(m["far_loss"] - m["near_loss"])
        assert 0 < m["id_loss"] < 6 and m["flops"] > 0
        assert {"ctx_gain", "far_x2", "far_x4", "copy_d32", "copy_d64"} <= set(m)
        assert len(r["ctx_gain_curve"]) == E - r["l_max"] and len(r["curve_se"]) == E
        assert r["held_out_removed"]["exact"] > 0
        assert max(r["eval_windows"]["offset"]) > 0
    # schedules differ, so their curves do
    curves = [tuple(r["curve"]) for r in records(d)]
    assert len(set(curves)) == len(curves)


def test_report_summary_and_progress(smoke_sweep):
    d, r = smoke_sweep
    assert (d / "report.html").stat().st_size > 10_000
    assert "l_max = 64" in (d / "report.md").read_text()
    for fig in ("curves", "tradeoff", "ramp", "training", "schedules"):
        assert (d / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((d / "summary.json").read_text())
    assert len(summary["ranking"]) == 4 and summary["verdict"]
    assert summary["objective"] == "far_loss" and summary["controls"]["negative"] == "short_only"
    assert "4/4 done" in r.stdout and str(d / "report.html") in r.stdout
    assert "overlap the train split" in r.stdout  # held-out documents removed, counted


def test_wandb_offline_run_per_trial_named_by_sweep(smoke_sweep):
    d, _ = smoke_sweep
    runs = sorted((d / "wandb").glob("wandb/offline-run-*"))
    # one run per trial, its id the sweep (the W&B group) and the trial, and the summary's
    ids = sorted(p.name.split("-", 3)[-1] for p in runs)
    want = [f"smoke-{r['trial_id']}".replace(".", "_") for r in records(d)] + ["smoke-summary"]
    assert ids == sorted(want)
    for run in runs:
        (log,) = run.glob("*.wandb")
        assert log.stat().st_size > 1000  # the run's history, not an empty file
    (summary,) = [p for p in runs if p.name.endswith("smoke-summary")]
    (log,) = summary.glob("*.wandb")
    data = log.read_bytes()
    assert b"summary/ranking" in data and b"summary/sees" in data
    (table,) = summary.glob("files/media/table/summary/ranking_*.table.json")
    ranking = json.loads(table.read_text())
    assert {"far_excess", "own_excess", "context_use", "outcome"} <= set(ranking["columns"])
    assert len(ranking["data"]) == len(records(d))  # one row per schedule (one seed here)


def test_report_rebuilds_from_directory_alone(smoke_sweep):
    d, _ = smoke_sweep
    (d / "report.html").unlink()
    (d / "summary.json").unlink()
    r = run_sweep("report", d, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (d / "report.html").exists() and (d / "summary.json").exists()
    assert "constant" in r.stdout


def test_rerun_keeps_finished_trials(smoke_sweep, tmp_path):
    d = shutil.copytree(smoke_sweep[0], tmp_path / "smoke")  # the fixture stays as it was
    before = {p: p.stat().st_mtime for p in d.glob("trials/*/record.json")}
    r = run_sweep("run", ROOT / "configs" / "smoke.yaml", "--results", tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "nothing to resume: all 4 trials have ended" in r.stdout
    assert {p: p.stat().st_mtime for p in d.glob("trials/*/record.json")} == before


def test_reused_tune_actor_trains_as_a_fresh_process(smoke_sweep, tmp_path):
    """Tune hands a finished one-worker trial's process to the next trial (max 2 at a time,
    3 trials): that trial must train exactly as it does alone in a fresh process."""
    d, _ = smoke_sweep
    recs = records(d)
    pids = [r["pid"] for r in recs]
    reused = [r for r in recs if pids.count(r["pid"]) > 1]
    assert reused, f"no process ran two trials: {pids}"
    later = max(reused, key=lambda r: r["started_at"])  # the process's second trial
    r = run_sweep(
        "trial",
        ROOT / "configs" / "smoke.yaml",
        "--trial",
        later["trial_id"],
        "--results",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    fresh = json.loads(
        (tmp_path / "smoke" / "trials" / later["trial_id"] / "record.json").read_text()
    )
    assert fresh["pid"] != later["pid"]
    assert [h["loss"] for h in fresh["history"]] == pytest.approx(
        [h["loss"] for h in later["history"]], abs=1e-6
    )
    assert fresh["curve"] == pytest.approx(later["curve"], abs=1e-5)


def test_intermediate_evaluations_recorded(smoke_sweep):
    d, _ = smoke_sweep
    for r in records(d):
        (mid,) = r["evals"]  # every_fraction 0.5: one evaluation halfway
        assert mid["tokens"] < r["tokens_trained"] and "far_loss" in mid
    assert (d / "figures" / "evolution.png").exists()


def test_wandb_key_never_written(smoke_sweep):
    d, r = smoke_sweep
    assert SECRET not in r.stdout + r.stderr
    for path in d.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_report_renders_in_headless_chromium(smoke_sweep, tmp_path):
    d, _ = smoke_sweep
    url = (d / "report.html").as_uri()
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=3000",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot = tmp_path / "report.png"
    r = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,4000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    figures = dom.stdout.count("<img ")
    assert figures >= 6  # curves, trade-off, ramp, evolution, training, schedules
    assert f'data-images-loaded="{figures}"' in dom.stdout  # every figure decoded
    assert dom.stdout.count("<tr>") >= 1 + 3 and 'id="trials"' in dom.stdout
    console_errors = [
        ln
        for ln in (r.stderr + dom.stderr).splitlines()
        if "CONSOLE" in ln and ("Error" in ln or "Uncaught" in ln)
    ]
    assert console_errors == []
