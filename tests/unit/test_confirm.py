"""`sweep confirm`: what it refuses before training anything (the stage itself, trained
on fresh seeds: tests/e2e/test_confirm_e2e.py)."""

from support import fake_records, run_sweep, selection_stage, smoke_spec

from sweep.run import orchestrate


def test_confirm_refuses_one_seed_and_a_sweep_with_nothing_chosen(tmp_path):
    selection_stage(tmp_path / "a")
    r = run_sweep("confirm", tmp_path / "a", "--seeds", "1")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--seeds=1: must be at least 2" in r.stderr
    assert not (tmp_path / "a" / "confirm").exists()  # nothing half-written
    orchestrate.prepare(smoke_spec(seeds=(0, 1)), tmp_path / "b")
    fake_records(
        tmp_path / "b", smoke_spec(seeds=(0, 1)), {"linear-r0.5": 0.1, "geometric-r0.5": 0.1}
    )
    r = run_sweep("confirm", tmp_path / "b")
    assert r.returncode == 2 and "has no pick or candidate to confirm" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "sees " in r.stderr  # one line, the verdict
