import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT, run_sweep

from sweep import aggregate, metrics, spec
from sweep.records import write_record
from sweep.report import write_report


def smoke_spec(controls=("short_only",), seeds=(0,)) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["controls"] = list(controls)
    raw["seeds"] = list(seeds)
    return spec.parse(raw)


def fake_sweep(
    d: Path,
    far_shift: dict[str, float],
    near_shift: dict[str, float] | None = None,
    n_seq: int = 32,
    seeds=(0,),
    noise=0.05,
    own_noise=0.02,
    seed_noise=0.0,
    controls=("short_only",),
    gain: dict[str, float] | None = None,
    short_only_far=0.2,
):
    """Records with known curves: every schedule has the reference's per-sequence losses
    plus ``far_shift[label]`` nats past l_max (``near_shift`` on (l_max/2, l_max]), noise
    of its own, and a seed offset; the short_only control is worse by ``short_only_far``
    past l_max and has ``gain`` ctx_gain (0.05 lower than the others by default)."""
    sw = smoke_spec(controls, seeds)
    rng = np.random.default_rng(0)
    L = sw.schedules.l_max
    E = sw.eval.length(L)
    base = 3.0 + noise * rng.standard_normal((n_seq, E))
    near_shift = near_shift or {}
    gain = {"short_only": -0.05, **(gain or {})}
    docs = [f"doc{i}.py" for i in range(n_seq)]
    written = []
    for t in sw.trials():
        label = t.schedule.label
        losses = base + own_noise * rng.standard_normal((n_seq, E))
        losses += seed_noise * rng.standard_normal()
        losses[:, L:] += far_shift.get(label, short_only_far if label == "short_only" else 0.0)
        losses[:, L // 2 : L] += near_shift.get(label, 0.0)
        g = gain.get(label, 0.0) + 0.01 * rng.standard_normal(n_seq)
        curve = losses.mean(axis=0)
        write_record(
            d,
            t,
            "finished",
            tokens_trained=sw.budget.tokens,
            tokens_by_length={str(L): sw.budget.tokens},
            wall_s=1.0,
            curve=curve.tolist(),
            per_sequence={**metrics.per_sequence(losses, L), "ctx_gain": g.tolist()},
            eval_windows={"doc": docs, "source": ["natural"] * n_seq, "offset": [0] * n_seq},
            metrics={"flops": 1e9 if t.schedule.shape == "constant" else 0.9e9},
        )
        written.append(t.trial_id)
    return written


def row(s, name):
    return next(r for r in s.schedules if r["schedule"] == name)


def test_pick_when_a_schedule_has_clearly_lower_far_loss(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1, "geometric-r0.5": 0.0})
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is True
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]
    assert "paired 95% interval" in s.picks[0]["rationale"]
    assert s.schedules[0]["schedule"] == "linear-r0.5"  # ranked by far_loss, lowest first
    assert s.schedules[-1]["schedule"] == "short_only"  # controls last
    assert row(s, "linear-r0.5")["vs_ref"]["far_loss"]["mean"] == pytest.approx(-0.1, abs=0.01)


def test_raising_near_loss_alone_is_never_picked(tmp_path):
    """The old objective (delta = far - near) rewarded a schedule for getting worse just
    before l_max. This one is 0.016 nats worse on (l_max/2, l_max] and no better past l_max:
    its delta is clearly lower than the reference's, its id_loss cost within epsilon."""
    fake_sweep(
        tmp_path, {"geometric-r0.5": 0.01}, near_shift={"linear-r0.5": 0.016}, own_noise=0.002
    )
    s = aggregate.aggregate(tmp_path)
    gamer, ref = row(s, "linear-r0.5"), row(s, "constant")
    assert gamer["delta"] < ref["delta"] - 0.01  # it looks "flatter"
    assert gamer["id_loss"] - ref["id_loss"] < aggregate.EPSILON
    assert gamer["pareto"]  # cheaper than the reference: only the objective keeps it out
    assert s.picks == []


def test_no_pick_when_noise_exceeds_differences(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.0005}, n_seq=4, noise=0.5, own_noise=0.5)
    s = aggregate.aggregate(tmp_path)
    assert s.picks == [] and ("no pick" in s.verdict or "underpowered" in s.verdict)


def test_indistinguishable_negative_control_makes_the_verdict_underpowered(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1}, short_only_far=0.0, gain={"short_only": 0.0})
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is False and s.picks == []
    assert s.verdict.startswith("underpowered")
    assert "add long-range documents" in s.verdict or "eval sequences" in s.verdict


def test_control_separated_on_far_loss_but_not_ctx_gain_is_underpowered(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1}, gain={"short_only": 0.0})
    s = aggregate.aggregate(tmp_path)
    assert s.controls["far_separated"] and not s.controls["ctx_gain_separated"]
    assert s.picks == [] and s.verdict.startswith("underpowered")


def test_without_a_negative_control_the_power_is_untested(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1}, controls=())
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is None and "untested" in s.verdict
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]


@pytest.mark.parametrize("cost,picked", [(0.005, True), (0.03, False)])
def test_id_loss_limit(tmp_path, cost, picked):
    # the whole in-distribution region gets `cost` nats worse, far gets 0.1 better
    fake_sweep(tmp_path, {"linear-r0.5": -0.1 - cost}, own_noise=0.002)
    sched = {"linear-r0.5": cost}
    for f in tmp_path.glob("trials/linear-r0.5-s0/record.json"):
        rec = json.loads(f.read_text())
        L = rec["l_max"]
        per = rec["per_sequence"]
        per["id_loss"] = [v + sched["linear-r0.5"] for v in per["id_loss"]]
        rec["curve"] = [v + cost if i < L else v + cost for i, v in enumerate(rec["curve"])]
        f.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    assert row(s, "linear-r0.5")["id_loss"] - row(s, "constant")["id_loss"] == pytest.approx(
        cost, abs=1e-3
    )
    assert ("linear-r0.5" in [p["schedule"] for p in s.picks]) is picked
    if not picked:
        assert "lose more than 0.01 nats of id_loss" in s.verdict


def test_pareto_front_needs_a_strict_improvement():
    rows = [
        {"schedule": "a", "id_loss": 1.0, "far_loss": 2.0, "flops": 1.0},
        {"schedule": "b", "id_loss": 1.1, "far_loss": 1.9, "flops": 1.0},
        {"schedule": "c", "id_loss": 1.2, "far_loss": 2.1, "flops": 1.0},  # dominated by a
        {"schedule": "d", "id_loss": 1.0, "far_loss": 2.0, "flops": 1.0},  # a's twin
        {"schedule": "e", "id_loss": 1.0, "far_loss": 2.0, "flops": 1.1},  # a, dearer
    ]
    assert aggregate.pareto_front(rows) == ["a", "b", "d"]


def test_corrupt_records_are_skipped_not_fatal(tmp_path):
    fake_sweep(tmp_path, {})
    bad = tmp_path / "trials" / "broken" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"trial_id": "broken", "status": "finis')  # half-written
    s = aggregate.aggregate(tmp_path)
    assert any("broken" in k["path"] for k in s.skipped)
    assert len(s.finished) == 4
    md, html = write_report(s)
    assert "broken" in md.read_text() and html.exists()


def test_seeds_use_t_quantiles_and_the_shared_sequence_noise(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.05}, seeds=(0, 1, 2), seed_noise=0.01)
    s = aggregate.aggregate(tmp_path)
    r = row(s, "linear-r0.5")
    assert r["seeds"] == 3
    far = r["vs_ref"]["far_loss"]
    assert "Satterthwaite" in far["method"] and far["df"] < 64
    # the shift the fake records carry, recovered by the paired difference and covered
    assert far["mean"] == pytest.approx(-0.05, abs=0.01) and far["lo"] < -0.05 < far["hi"]
    assert 0 < far["half"] < 0.05
    assert "one seed" not in s.verdict


def test_one_seed_verdict_says_seed_noise_is_unmeasured(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    assert "one seed" in s.verdict
    assert "1 seed" in row(s, "linear-r0.5")["vs_ref"]["far_loss"]["method"]


def test_windows_of_one_document_are_one_unit(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1}, n_seq=8)
    for f in tmp_path.glob("trials/*/record.json"):
        rec = json.loads(f.read_text())
        rec["eval_windows"]["doc"] = ["a.py"] * 4 + ["b.py"] * 4
        f.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    far = row(s, "linear-r0.5")["vs_ref"]["far_loss"]
    assert far["df"] == 1  # two documents, not eight windows


def test_summary_json_is_strict_json(tmp_path):
    fake_sweep(tmp_path, {"linear-r0.5": -0.1}, n_seq=1)  # one sequence: no intervals
    s = aggregate.aggregate(tmp_path)
    path = aggregate.write_summary(s)

    def refuse(name):
        raise AssertionError(f"non-JSON constant {name} in summary.json")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["objective"] == "far_loss"
    assert data["ranking"][0]["vs_ref"]["far_loss"]["lo"] is None


def test_failed_trials_in_table(tmp_path):
    fake_sweep(tmp_path, {})
    sw = smoke_spec()
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
