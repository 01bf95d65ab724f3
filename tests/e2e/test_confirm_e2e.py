"""`sweep confirm` end to end: fresh seeds trained through Ray Tune, kept apart from the
selection stage, resumable, and the verdict they change (its refusals:
tests/unit/test_confirm.py)."""

import json

from support import run_sweep, selection_stage


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
