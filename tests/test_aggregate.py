import json
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, run_sweep

from sweep import aggregate, spec
from sweep.report import write_report
from sweep.trial import write_record


def fake_sweep(
    d: Path, far_shift: dict[str, float], n_seq: int = 32, seeds=(0,), noise=0.05, own_noise=0.02
):
    """Records with known curves: every schedule has the reference's per-sequence losses
    plus ``far_shift[label]`` nats on positions past l_max, plus noise of its own."""
    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    rng = np.random.default_rng(0)
    L = sw.schedules.l_max
    E = sw.eval.length(L)
    base = 3.0 + noise * rng.standard_normal((n_seq, E))
    written = []
    for t in sw.trials():
        for seed in seeds:
            t = spec.TrialSpec(f"{t.schedule.label}-s{seed}", seed, t.schedule, sw)
            losses = base + own_noise * rng.standard_normal((n_seq, E))
            losses[:, L:] += far_shift.get(t.schedule.label, 0.0)
            curve = losses.mean(axis=0)
            write_record(
                d,
                t,
                "finished",
                tokens_trained=sw.budget.tokens,
                wall_s=1.0,
                curve=curve.tolist(),
                per_sequence={
                    "id_loss": losses[:, :L].mean(1).tolist(),
                    "near_loss": losses[:, L // 2 : L].mean(1).tolist(),
                    "far_loss": losses[:, L:].mean(1).tolist(),
                },
                metrics={"flops": 1e9 if t.schedule.shape == "constant" else 0.9e9},
            )
            written.append(t.trial_id)
    return written


def test_pick_when_a_schedule_is_clearly_flatter(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1, "geometric-r0.5": 0.0})
    s = aggregate.aggregate(tmp_path)
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]
    assert "paired bootstrap" in s.picks[0]["rationale"]
    assert s.schedules[0]["schedule"] == "linear-r0.5"  # ranked flattest first
    assert s.schedules[0]["delta"] == pytest.approx(-0.1, abs=0.01)


def test_no_pick_when_noise_exceeds_differences(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.0005}, n_seq=4, noise=0.5, own_noise=0.5)
    s = aggregate.aggregate(tmp_path)
    assert s.picks == [] and s.verdict.startswith("no pick")


def test_pareto_front():
    rows = [
        {"schedule": "a", "id_loss": 1.0, "delta": 0.0, "flops": 1.0},
        {"schedule": "b", "id_loss": 1.1, "delta": -0.1, "flops": 1.0},
        {"schedule": "c", "id_loss": 1.2, "delta": 0.1, "flops": 1.0},  # dominated by a
    ]
    assert aggregate.pareto_front(rows) == ["a", "b"]


def test_corrupt_records_are_skipped_not_fatal(tmp_path):
    fake_sweep(tmp_path, {})
    bad = tmp_path / "trials" / "broken" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"trial_id": "broken", "status": "finis')  # half-written
    s = aggregate.aggregate(tmp_path)
    assert any("broken" in k["path"] for k in s.skipped)
    assert len(s.finished) == 3
    md, html = write_report(s)
    assert "broken" in md.read_text() and html.exists()


def test_seeds_give_mean_and_interval(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.05}, seeds=(0, 1, 2))
    s = aggregate.aggregate(tmp_path)
    row = next(r for r in s.schedules if r["schedule"] == "linear-r0.5")
    assert row["seeds"] == 3
    lo, hi = row["delta_ci"]
    assert lo <= row["delta"] <= hi


def test_failed_trials_in_table(tmp_path):
    fake_sweep(tmp_path, {})
    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    t = spec.TrialSpec("extra-s0", 0, sw.trials()[0].schedule, sw)
    write_record(tmp_path, t, "failed", error="worker died: SIGKILL")
    t2 = spec.TrialSpec("later-s0", 0, sw.trials()[0].schedule, sw)
    write_record(tmp_path, t2, "running", started_at=0.0)  # a sweep still in progress
    s = aggregate.aggregate(tmp_path)
    table = aggregate.format_table(s)
    assert "worker died" in table and "later-s0" in table and "running" in table
    md, _ = write_report(s)
    assert "later-s0 | running" in md.read_text()


def test_report_cli_on_empty_dir(tmp_path):
    r = run_sweep("report", tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_summary_json_is_plain(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    path = aggregate.write_summary(s)
    d = json.loads(path.read_text())
    assert d["picks"][0]["schedule"] == "linear-r0.5" and len(d["ranking"]) == 3
