"""Divergence is a result, not a crash: the rule that ends a trial, and (e2e) a sweep at
lr 1e30 whose trials all diverge: one line each, rows of the ranking and the report, no
traceback, no pick, and a non-zero exit."""

import json
import math

import pytest
import yaml
from support import ROOT, run_sweep

from sweep.train.trial import diverged, divergence_bound


def test_the_bound_is_twice_the_uniform_guess():
    assert divergence_bound(256) == pytest.approx(2 * math.log(256))
    assert divergence_bound(4096) == pytest.approx(16.635532, abs=1e-6)


@pytest.mark.parametrize(
    "loss, why",
    [
        (math.nan, "loss became nan at step 3 (6144 tokens)"),
        (math.inf, "loss became inf at step 3 (6144 tokens)"),
        (11.2, "loss 11.200 at step 3 (6144 tokens) is past 11.090"),
    ],
)
def test_a_loss_that_is_not_finite_or_past_the_bound_ends_the_trial(loss, why):
    assert diverged(loss, divergence_bound(256), 3, 6144).startswith(why)


def test_a_bad_but_bounded_loss_trains_on():
    bound = divergence_bound(256)
    assert diverged(bound, bound, 3, 6144) is None  # at the bound, not past it
    assert diverged(9.0, bound, 3, 6144) is None
    assert diverged(-0.0, bound, 0, 0) is None


@pytest.mark.e2e
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
