"""`sweep calibrate`: the ladder's rungs, where it stops, what it writes, its projection, and
its resumption after a kill (tests/e2e/test_calibrate_e2e.py)."""

import json

import pytest
import yaml
from support import calibration_ladder, fake_records

from sweep.config import spec
from sweep.report.figures_calibration import plot_ladder
from sweep.run import calibrate


def test_rung_k_doubles_the_tokens_and_takes_each_axis_kth_value():
    sw = calibration_ladder(n_layers=[1, 2], repeat_share=[0.0, 0.25, 0.5])
    rungs = [calibrate.rung_spec(sw, k) for k in range(3)]
    assert [r.budget.tokens for r in rungs] == [40960, 81920, 163840]
    assert [r.model.n_layers for r in rungs] == [1, 2, 2]  # the last value past the end
    assert [r.data.repeat_share for r in rungs] == [0.0, 0.25, 0.5]
    assert [r.model.d_model for r in rungs] == [32, 32, 32]  # not listed: the spec's
    r = rungs[2]
    assert [t.trial_id for t in r.trials()] == [
        "constant-s0", "constant-s1", "short_only-s0", "short_only-s1",
    ]  # fmt: skip
    assert r.calibrate is None and r.search is None and r.name == "smoke-rung2"
    # a ratio that is not a whole number of steps rounds to whole steps
    odd = calibrate.rung_spec(calibration_ladder(token_factor=1.5), 1)
    assert odd.budget.tokens % odd.budget.tokens_per_step == 0


def test_a_rung_that_does_not_validate_is_refused_before_anything_trains(tmp_path):
    sw = calibration_ladder(l_max=[64, 8])  # l_max 8 is below multiple_of 16
    calls = []
    with pytest.raises(spec.SpecError):
        calibrate.run(sw, tmp_path, run_rung=lambda rs, rd: calls.append(rs), plot=plot_ladder)
    assert calls == [] and not any(tmp_path.iterdir())


def fake_rungs(sees_from: int, calls: list):
    """A rung runner that writes records with known effects: the control's deficit grows
    past its own length from rung ``sees_from`` on."""

    def run(rs, rd):
        k = int(rs.name.rsplit("rung", 1)[1])
        calls.append(k)
        fake_records(rd, rs, own_rise=0.1 if k >= sees_from else 0.0)

    return run


def test_stops_at_the_first_rung_that_sees_extrapolation_and_writes_its_spec(tmp_path):
    sw = calibration_ladder(n_layers=[1, 2, 3])
    calls = []
    out = tmp_path / "out.txt"
    with out.open("w") as f:
        code = calibrate.run(sw, tmp_path, out=f, run_rung=fake_rungs(1, calls), plot=plot_ladder)
    assert code == 0 and calls == [0, 1]  # rung 2 never trains
    text = out.read_text()
    assert "rung 0: 0.04M tokens, n_layers 1: reference context_use +0.05" in text
    assert "control own_excess -0.0007 [-0.0158, +0.0145] (NOT > 0)" in text
    assert "rung 1 sees extrapolation" in text
    d = tmp_path / "smoke-calibrate"
    written = spec.parse(yaml.safe_load((d / "calibrated.yaml").read_text()))
    assert written.budget.tokens == 81920 and written.model.n_layers == 2
    assert written.schedules.shapes == sw.schedules.shapes  # the whole sweep, not the pair
    assert written.calibrate is None and written.name == "smoke-calibrated"
    result = json.loads((d / "calibration.json").read_text())
    assert result["reached"] == 1 and len(result["rungs"]) == 2
    assert (d / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    # run again: every rung is already measured, nothing trains
    calls.clear()
    assert (
        calibrate.run(
            sw,
            tmp_path,
            out=open(tmp_path / "o2", "w"),
            run_rung=fake_rungs(1, calls),
            plot=plot_ladder,
        )
        == 0
    )
    assert calls == []


def test_without_a_rung_that_sees_it_projects_the_compute_that_would(tmp_path):
    rows = [
        {"flops": 1e12, "minutes": 1.0, "context_use": {"lo": 0.01}, "own_excess": {"lo": -0.03}},
        {"flops": 2e12, "minutes": 2.0, "context_use": {"lo": 0.02}, "own_excess": {"lo": -0.02}},
    ]
    p = calibrate.project(rows)
    # the lower bound rises 0.01 a doubling: it crosses zero two doublings past 2e12
    assert p["flops"]["own_excess"] == pytest.approx(8e12)
    assert p["flops"]["context_use"] == pytest.approx(2e12)  # already holds at the last rung
    assert p["needed_flops"] == pytest.approx(8e12) and p["needed_minutes"] == pytest.approx(8.0)
    falling = [rows[0], {**rows[1], "own_excess": {"lo": -0.05}}]
    assert calibrate.project(falling)["needed_flops"] is None
    calls = []
    with (tmp_path / "out.txt").open("w") as f:
        sw = calibration_ladder(rungs=2)
        code = calibrate.run(sw, tmp_path, out=f, run_rung=fake_rungs(9, calls), plot=plot_ladder)
    assert code == 1 and calls == [0, 1]
    assert "no rung sees extrapolation within 2 rung(s)" in (tmp_path / "out.txt").read_text()
    assert not (tmp_path / "smoke-calibrate" / "calibrated.yaml").exists()
