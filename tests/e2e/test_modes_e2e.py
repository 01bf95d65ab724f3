"""A smoke sweep over all four modes through real Ray Tune and DeepSpeed: every mode but
truncate trains the budget, each record's exposure histogram sums to the tokens it
trained, and the summary judges each mode by its own control."""

import json

import pytest
import yaml
from support import ROOT, run_sweep

from sweep.config import schedules, spec

pytestmark = pytest.mark.e2e
MODES = ["reshape", "truncate", "window", "doc_buckets"]


@pytest.fixture(scope="module")
def modes_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modes")
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["name"] = "modes"
    raw["schedules"].update(shapes=["constant", "linear"], modes=MODES)
    path = tmp / "modes.yaml"
    path.write_text(yaml.safe_dump(raw))
    dry = run_sweep("run", path, "--dry-run", "--results", tmp / "res", timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    r = run_sweep("run", path, "--results", tmp / "res", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return spec.load(path), tmp / "res" / "modes", dry.stdout


def test_dry_run_shows_mode_tokens_and_flops(modes_sweep):
    sw, _, dry = modes_sweep
    lines = {ln.split()[0]: ln.split() for ln in dry.splitlines() if ln.endswith("k") or "k," in ln}
    for t in sw.trials():
        cells = lines[t.trial_id]
        assert cells[1] == t.schedule.mode
        p = schedules.plan(t.schedule, sw.budget.tokens, sw.budget.tokens_per_step)
        assert int(cells[3]) == p.total_tokens  # tokens per trial, truncate's fewer


def test_budgets_and_exposure(modes_sweep):
    sw, d, _ = modes_sweep
    recs = {t.trial_id: json.loads((d / "trials" / t.trial_id / "record.json").read_text())
            for t in sw.trials()}  # fmt: skip
    assert len(recs) == 10 and {r["status"] for r in recs.values()} == {"finished"}
    for t in sw.trials():
        r = recs[t.trial_id]
        assert r["mode"] == t.schedule.mode
        if t.schedule.mode == "truncate":
            assert r["tokens_trained"] < sw.budget.tokens and not r["token_equal"]
        else:
            assert r["tokens_trained"] == sw.budget.tokens and r["token_equal"]
        assert sum(r["exposure"]["counts"]) == r["tokens_trained"]
    # short_only in window mode keeps rows of l_max but never attends past its window
    far = recs["short_only-window-s0"]["exposure"]
    l_short = sw.schedules.l_min
    assert all(c == 0 for e, c in zip(far["edges"], far["counts"]) if e >= l_short)
    reshape = recs["linear-r0.5-s0"]["metrics"]
    window = recs["linear-r0.5-window-s0"]["metrics"]
    assert window["exposure_far"] > reshape["exposure_far"]  # full rows, windowed early


def test_summary_judges_each_mode_by_its_own_control(modes_sweep):
    _, d, _ = modes_sweep
    s = json.loads((d / "summary.json").read_text())
    assert set(s["controls"]["by_mode"]) == set(MODES)
    assert s["controls"]["negative"] == "short_only"
    rows = {r["schedule"]: r for r in s["ranking"]}
    assert rows["linear-r0.5-truncate"]["token_equal"] is False
    assert rows["linear-r0.5-window"]["mode"] == "window"
    assert "constant-window" not in rows and "constant-doc_buckets" in rows
    md = (d / "report.md").read_text()
    assert "token-unequal" in md
