"""`sweep confirm`: a selection-free stage on fresh seeds, kept apart from the selection
stage, resumable, and the verdict it changes."""

import json

import pytest
from support import fake_sweep, run_sweep, smoke_spec

from sweep.analysis import aggregate
from sweep.run import orchestrate


def selection_stage(d):
    """A sweep whose records (known curves, seeds 0 and 1) pick linear-r0.5 by 0.1 nats:
    an effect the real proxy at smoke size does not have."""
    orchestrate.prepare(smoke_spec(seeds=(0, 1)), d)
    fake_sweep(d, {"linear-r0.5": -0.1}, seeds=(0, 1))
    s = aggregate.aggregate(d)
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]
    return s


def test_confirm_refuses_one_seed_and_a_sweep_with_nothing_chosen(tmp_path):
    selection_stage(tmp_path / "a")
    r = run_sweep("confirm", tmp_path / "a", "--seeds", "1")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--seeds=1: must be at least 2" in r.stderr
    assert not (tmp_path / "a" / "confirm").exists()  # nothing half-written
    orchestrate.prepare(smoke_spec(seeds=(0, 1)), tmp_path / "b")
    fake_sweep(tmp_path / "b", {"linear-r0.5": 0.1, "geometric-r0.5": 0.1}, seeds=(0, 1))
    r = run_sweep("confirm", tmp_path / "b")
    assert r.returncode == 2 and "has no pick or candidate to confirm" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "sees " in r.stderr  # one line, the verdict


@pytest.mark.e2e
def test_confirm_trains_only_fresh_seeds_and_flips_a_pick_that_does_not_replicate(tmp_path):
    d = tmp_path / "smoke"
    selection_stage(d)
    before = {p: p.read_bytes() for p in d.glob("trials/*/record.json")}
    r = run_sweep("confirm", d, "--seeds", "2", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "confirm: linear-r0.5, constant, short_only on fresh seeds [2, 3]" in r.stdout
    # the selection stage is untouched, byte for byte, and gained no record
    assert {p: p.read_bytes() for p in d.glob("trials/*/record.json")} == before
    stage = sorted(p.parent.name for p in (d / "confirm").glob("trials/*/record.json"))
    assert stage == [
        "constant-s2", "constant-s3", "linear-r0.5-s2", "linear-r0.5-s3",
        "short_only-s2", "short_only-s3",
    ]  # fmt: skip
    summary = json.loads((d / "summary.json").read_text())
    held = summary["confirmation"]["schedules"]["linear-r0.5"]
    assert held["status"] == "did not hold" and held["seeds"] == 2
    assert held["outcome"] != "better"
    assert "linear-r0.5 did not hold" in summary["verdict"]
    assert "linear-r0.5 did not hold" in (d / "report.md").read_text()
    assert (d / "confirm" / "report.html").is_file()
    # resumable: a second run trains nothing
    again = run_sweep("confirm", d, timeout=600)
    assert again.returncode == 0 and "nothing to resume: all 6 trials have ended" in again.stdout
