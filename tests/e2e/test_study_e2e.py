"""The smoke study through the command line: every arm trained through Ray Tune, its
findings, a resume that trains nothing, and the report rebuilt elsewhere (the study's
logic on fake records: tests/unit/test_study.py)."""

import json

from support import ROOT, run_sweep

SMOKE = ROOT / "configs" / "study-smoke.yaml"


def test_smoke_study_end_to_end(tmp_path):
    res = run_sweep("run", str(SMOKE), "--results", str(tmp_path), timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    d = tmp_path / "study-smoke"
    for arm, n in (("alibi", 10), ("window", 4), ("rope", 6), ("wide", 10)):
        recs = list((d / arm / "trials").glob("*/record.json"))
        assert len(recs) == n, arm
        assert all(json.loads(p.read_text())["status"] == "finished" for p in recs)
        assert (d / arm / "report.md").is_file()
    best = json.loads((d / "findings.json").read_text())["best_ramps"][0]
    rope_labels = {json.loads(p.read_text())["schedule"] for p in (d / "rope").glob("trials/*/*")}
    assert best in rope_labels
    md = (d / "study-smoke.md").read_text()
    again = run_sweep("resume", str(d), timeout=600)
    assert again.returncode == 0
    assert "nothing to resume: all 10 trials have ended" in again.stdout
    assert "nothing to resume: all 6 trials have ended" in again.stdout
    assert (d / "study-smoke.md").read_text().split("## What it cost")[0] == md.split(
        "## What it cost"
    )[0]
    out = tmp_path / "docs"
    rep = run_sweep("report", str(d), "--out", str(out))
    assert rep.returncode == 0 and (out / "study-smoke.md").is_file()
