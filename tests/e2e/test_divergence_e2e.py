"""Divergence end to end: a sweep at lr 1e30 whose trials all diverge: one line each, rows
of the ranking and the report, no traceback, no pick, and a non-zero exit (the rule that
ends a trial: tests/unit/test_divergence.py)."""

import json

import yaml
from support import ROOT, run_sweep

from sweep.train.trial import divergence_bound


def test_a_sweep_whose_trials_diverge_reports_them_and_exits_1(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["optim"] = {"lr": 1e30}
    raw["schedules"]["shapes"] = ["constant", "linear"]
    spec = tmp_path / "diverge.yaml"
    spec.write_text(yaml.safe_dump(raw))
    got = run_sweep("run", spec, "--results", tmp_path / "results", timeout=300)
    log = got.stdout + got.stderr
    assert got.returncode == 1, log
    assert "Traceback" not in log and "TypeError" not in log
    recs = [
        json.loads(p.read_text())
        for p in sorted((tmp_path / "results" / "smoke").glob("trials/*/record.json"))
    ]
    assert len(recs) == 3  # constant, linear-r0.5, short_only
    for rec in recs:
        assert rec["status"] == "diverged", rec.get("error")
        at = rec["diverged_at"]
        assert at["step"] < rec["steps"] and rec["tokens_trained"] < rec["tokens_budget"]
        assert at["loss"] is None or at["loss"] > divergence_bound(256)
        assert rec["metrics"] == {} and "curve" not in rec  # nothing evaluated
        # one progress line each, naming the step
        lines = [x for x in log.splitlines() if f"{rec['trial_id']} diverged:" in x]
        assert len(lines) == 1 and f"at step {at['step']}" in lines[0]
    # a row of the ranking (printed) and of the report, never a pick
    assert "no pick: no finished trial" in got.stdout
    report = (tmp_path / "results" / "smoke" / "report.md").read_text()
    for rec in recs:
        assert f"{rec['trial_id']} diverged: loss" in got.stdout
        assert f"| {rec['trial_id']} | diverged |" in report
    assert "PICK" not in got.stdout
