import json

import pytest
from support import fake_records, row, run_sweep, smoke_spec

from sweep.analysis import aggregate, paired, pareto, pick
from sweep.analysis.records import TrialRecord, write_record
from sweep.config import spec
from sweep.report import console
from sweep.report.sweep_report import write_report


def test_pick_when_a_schedule_has_clearly_lower_far_loss(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1, "geometric-r0.5": 0.0})
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is True
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]
    assert "at 97.5% (family-wise 95%" in s.picks[0]["rationale"]  # 2 comparisons
    assert "1 pick(s) worth scaling: linear-r0.5" in s.verdict
    assert s.schedules[0]["schedule"] == "linear-r0.5"  # ranked by far_loss, lowest first
    assert s.schedules[-1]["schedule"] == "short_only"  # controls last
    assert row(s, "linear-r0.5")["vs_ref"]["far_loss"]["mean"] == pytest.approx(-0.1, abs=0.01)


def test_raising_near_loss_alone_is_never_picked(tmp_path):
    """The old objective (delta = far - near) rewarded a schedule for getting worse just
    before l_max. This one is 0.016 nats worse on (l_max/2, l_max] and no better past l_max:
    its delta is clearly lower than the reference's, its id_loss cost within epsilon."""
    fake_records(
        tmp_path,
        smoke_spec(seeds=(0, 1)),
        {"geometric-r0.5": 0.01},
        near_shift={"linear-r0.5": 0.016},
        own_noise=0.002,
    )
    s = aggregate.aggregate(tmp_path)
    gamer, ref = row(s, "linear-r0.5"), row(s, "constant")
    assert gamer["delta"] < ref["delta"] - 0.01  # it looks "flatter"
    assert gamer["id_loss"] - ref["id_loss"] < pick.EPSILON
    assert gamer["pareto"]  # cheaper than the reference: only the objective keeps it out
    assert s.picks == []


def test_no_pick_when_noise_exceeds_differences(tmp_path):
    fake_records(
        tmp_path,
        smoke_spec(seeds=(0, 1)),
        {"linear-r0.5": -0.0005},
        n_seq=4,
        noise=0.5,
        own_noise=0.5,
    )
    s = aggregate.aggregate(tmp_path)
    assert s.picks == [] and ("no pick" in s.verdict or "underpowered" in s.verdict)


def test_indistinguishable_negative_control_makes_the_verdict_underpowered(tmp_path):
    fake_records(
        tmp_path,
        smoke_spec(seeds=(0, 1)),
        {"linear-r0.5": -0.1},
        own_rise=0.0,
        gain={"short_only": 0},
        control_far=0.0,
    )
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is False and s.picks == []
    assert s.controls["sees"] == "nothing"
    first, second = s.verdict.split("\n")
    assert first.startswith("sees nothing") and second.startswith("underpowered")
    assert "add long-range documents" in s.verdict or "eval sequences" in s.verdict


def test_ctx_gain_is_reported_never_required(tmp_path):
    fake_records(
        tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1}, gain={"short_only": 0.0}
    )
    s = aggregate.aggregate(tmp_path)
    assert s.controls["far_separated"] and s.controls["discriminates"]
    assert (
        "ctx_gain" in s.controls["summary"] and "(reported, not required)" in s.controls["summary"]
    )
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]


def test_a_uniformly_worse_control_is_seen_on_level_only(tmp_path):
    """Worse everywhere past its own length by the same amount: far_loss tells it apart,
    its own_excess does not; the verdict's first line says the sweep sees level only."""
    fake_records(
        tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.2}, own_rise=0.0, control_far=0.1
    )
    s = aggregate.aggregate(tmp_path)
    c = s.controls
    assert c["far_separated"] and c["excess_key"] == "own_excess"
    assert c["excess_separated"] is False and c["context_used"] is True
    assert c["sees"] == "level only" and s.to_dict()["sees"] == "level only"
    assert s.verdict.startswith("sees level only:")
    assert "on level (far_loss), not on extrapolation" in s.verdict.split("\n")[0]
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]  # picks, labelled as on level


def test_a_reference_that_uses_no_context_is_seen_on_level_only(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.2}, context_use=0.0)
    s = aggregate.aggregate(tmp_path)
    assert s.controls["excess_separated"] is True and s.controls["context_used"] is False
    assert s.controls["sees"] == "level only"


def test_a_control_whose_deficit_grows_is_seen_as_extrapolation(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.2}, own_rise=0.1)
    s = aggregate.aggregate(tmp_path)
    ctl = row(s, "short_only")
    assert ctl["own_length"] == 16 and ctl["own_excess"]["mean"] == pytest.approx(0.1, abs=0.01)
    assert ctl["own_excess"]["lo"] > 0
    assert s.controls["sees"] == "extrapolation"
    assert s.verdict.startswith("sees extrapolation:")


def test_without_a_negative_control_the_power_is_untested(tmp_path):
    fake_records(tmp_path, smoke_spec((), seeds=(0, 1)), {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is None and "untested" in s.verdict
    assert s.verdict.startswith("sight untested")
    assert s.decision.margin == pick.DEFAULT_MARGIN  # no control to derive it from
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"]


@pytest.mark.parametrize("cost,picked", [(0.005, True), (0.03, False)])
def test_id_loss_limit(tmp_path, cost, picked):
    # the whole in-distribution region gets `cost` nats worse, far gets 0.1 better
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1 - cost}, own_noise=0.002)
    sched = {"linear-r0.5": cost}
    for f in tmp_path.glob("trials/linear-r0.5-s*/record.json"):
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
    assert pareto.pareto_front(rows) == ["a", "b", "d"]


def test_corrupt_records_are_skipped_not_fatal(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    bad = tmp_path / "trials" / "broken" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"trial_id": "broken", "status": "finis')  # half-written
    s = aggregate.aggregate(tmp_path)
    assert any("broken" in k["path"] for k in s.skipped)
    assert len(s.finished) == 8  # 4 schedules x 2 seeds
    md, html = write_report(s)
    assert "broken" in md.read_text() and html.exists()


def test_seeds_use_t_quantiles_and_the_shared_sequence_noise(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1, 2)), {"linear-r0.5": -0.05}, seed_noise=0.01)
    s = aggregate.aggregate(tmp_path)
    r = row(s, "linear-r0.5")
    assert r["seeds"] == 3
    far = r["vs_ref"]["far_loss"]
    assert "Satterthwaite" in far["method"] and far["df"] < 64
    # the shift the fake records carry, recovered by the paired difference and covered
    assert far["mean"] == pytest.approx(-0.05, abs=0.01) and far["lo"] < -0.05 < far["hi"]
    assert 0 < far["half"] < 0.05
    assert "one seed" not in s.verdict


def test_one_seed_never_picks(tmp_path):
    """What two seeds pick, one seed only lists as a candidate to confirm."""
    fake_records(tmp_path, smoke_spec(seeds=(0,)), {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    assert s.picks == [] and s.to_dict()["picks"] == []
    assert [c["schedule"] for c in s.candidates] == ["linear-r0.5"]
    assert s.candidates[0]["outcome"] == "better"
    assert "retrain on at least 2 fresh seeds" in s.candidates[0]["to_confirm"]
    assert "one seed: candidates to confirm: linear-r0.5" in s.verdict
    assert "pick" not in s.verdict.replace("no pick", "")
    assert "1 seed" in row(s, "linear-r0.5")["vs_ref"]["far_loss"]["method"]
    cells = {r[1]: r[-1] for r in console.table_rows(s)}
    assert cells["linear-r0.5"] == "cand better" and "PICK" not in console.format_table(s)


def test_windows_of_one_document_are_one_unit(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0,)), {"linear-r0.5": -0.1}, n_seq=8)
    for f in tmp_path.glob("trials/*/record.json"):
        rec = json.loads(f.read_text())
        rec["eval_windows"]["doc"] = ["a.py"] * 4 + ["b.py"] * 4
        f.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    far = row(s, "linear-r0.5")["vs_ref"]["far_loss"]
    assert far["df"] == 1  # two documents, not eight windows


def test_summary_json_is_strict_json(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0,)), {"linear-r0.5": -0.1}, n_seq=1)  # no intervals
    s = aggregate.aggregate(tmp_path)
    path = aggregate.write_summary(s)

    def refuse(name):
        raise AssertionError(f"non-JSON constant {name} in summary.json")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["objective"] == "far_loss"
    assert data["ranking"][0]["vs_ref"]["far_loss"]["lo"] is None


def test_failed_trials_in_table(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    sw = smoke_spec()
    t = spec.TrialSpec("extra-s0", 0, sw.trials()[0].schedule, sw)
    write_record(tmp_path, TrialRecord.of(t, "failed", error="worker died: SIGKILL"))
    t2 = spec.TrialSpec("later-s0", 0, sw.trials()[0].schedule, sw)
    write_record(tmp_path, TrialRecord.of(t2, "running", started_at=0.0))  # still in progress
    s = aggregate.aggregate(tmp_path)
    table = console.format_table(s)
    assert "worker died" in table and "later-s0" in table and "running" in table
    md, _ = write_report(s)
    assert "later-s0 | running" in md.read_text()


def test_report_cli_on_empty_dir(tmp_path):
    r = run_sweep("report", tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_best_ramp_is_answered_against_the_reference_in_the_four_words(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1, "geometric-r0.5": -0.05})
    s = aggregate.aggregate(tmp_path)
    h = s.decision.head_to_head
    assert h["ramp"] == "linear-r0.5" and h["of"] == 2
    vs = h["versus"]["constant"]
    assert vs["mean"] == pytest.approx(-0.1, abs=0.01) and vs["outcome"] == "better"
    assert s.verdict.split("\n")[2].startswith(
        "best ramp linear-r0.5 (lowest far_loss of 2 ramps, chosen on these trials): "
        "against constant -0.1"
    )
    assert s.to_dict()["decision"]["head_to_head"]["versus"]["constant"]["outcome"] == "better"


def test_decision_stability_needs_four_seeds_and_tracks_the_signal(tmp_path):
    fake_records(tmp_path / "two", smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    assert aggregate.aggregate(tmp_path / "two").decision.stability is None  # 2 seeds
    seeds = (0, 1, 2, 3)
    fake_records(
        tmp_path / "clear", smoke_spec(seeds=seeds), {"linear-r0.5": -0.1, "geometric-r0.5": 0.1}
    )
    st = aggregate.aggregate(tmp_path / "clear").decision.stability
    assert st["accuracy"] == 1.0 and st["seeds"] == 4 and st["pairs"] == 3
    assert "short_only" not in st["schedules"]  # controls left out
    # no effects, seed noise dominating: the halves agree about as often as chance
    fake_records(tmp_path / "noise", smoke_spec(seeds=seeds), seed_noise=0.05, own_noise=0.001)
    st = aggregate.aggregate(tmp_path / "noise").decision.stability
    assert st["accuracy"] < 0.9


@pytest.mark.parametrize("kept, warned", [(30, True), (99, True), (100, False), (None, False)])
def test_few_held_out_documents_are_a_warning_in_the_verdict(tmp_path, kept, warned):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    for path in tmp_path.glob("trials/*/record.json"):
        rec = json.loads(path.read_text())
        if kept is not None:
            rec["held_out_removed"] = {"exact": 1, "near": 0, "kept": kept}
        path.write_text(json.dumps(rec))
    verdict = aggregate.aggregate(tmp_path).verdict
    line = f"warning: only {kept} held-out documents (fewer than 100)"
    assert (line in verdict) is warned, verdict


def test_a_one_time_build_is_reported_apart_from_trial_time(tmp_path):
    from sweep.report.sweep_report import one_time_setup

    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    paths = sorted(tmp_path.glob("trials/*/record.json"))
    for i, path in enumerate(paths):
        rec = json.loads(path.read_text())
        build = 31.0 if i == 0 else 0.0
        rec["timings"] = {"data_ready": 5.0, "engine_ready": 6.5 + build}
        path.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    first = json.loads(paths[0].read_text())["trial_id"]
    said = one_time_setup(s)
    assert said.startswith(f"One-time set-up in the wall time of {first} (32 s)")
    assert "a median of 2 s" in said
    md, _ = write_report(s)
    assert said in md.read_text()
    for path in paths:  # no trial stands out: nothing to say
        rec = json.loads(path.read_text())
        rec["timings"] = {"data_ready": 5.0, "engine_ready": 6.5}
        path.write_text(json.dumps(rec))
    assert one_time_setup(aggregate.aggregate(tmp_path)) == ""


def test_best_ramp_is_the_lowest_far_loss_ramp_in_any_order_never_a_control(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.05, "geometric-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    finished = s.finished
    rows = sorted(s.schedules, key=lambda r: -r["far_loss"])  # best last
    assert pick.best_ramp(finished, rows, "constant", 0.01)["ramp"] == "geometric-r0.5"
    # a control of a ramp's shape, lower still, is not a candidate ramp
    ctl = {**row(s, "linear-r0.5"), "schedule": "linear-ctl", "role": "control", "far_loss": 0.0}
    got = pick.best_ramp(finished, [ctl, *rows], "constant", 0.01)
    assert got["ramp"] == "geometric-r0.5" and got["of"] == 2
    assert pick.best_ramp(finished, rows, "constant", None) is None  # no margin


def test_the_margin_is_half_the_controls_gap_only_when_it_is_told_apart():
    far = {"mean": 0.03, "lo": 0.01, "hi": 0.05}
    told = {"far_separated": True, "far_loss": far}
    assert pick.decision_margin(None, told) == (
        pytest.approx(0.015),
        "half the negative control's far_loss gap +0.0300",
    )
    assert pick.decision_margin(0.02, told) == (0.02, "decision.margin")
    not_told = {"far_separated": False, "far_loss": far}
    assert pick.decision_margin(None, not_told)[0] == pick.DEFAULT_MARGIN
    wrong_way = {"far_separated": True, "far_loss": {"mean": -0.03, "lo": -0.05, "hi": -0.01}}
    assert pick.decision_margin(None, wrong_way)[0] == pick.DEFAULT_MARGIN


def test_best_ramp_is_compared_with_two_stages_then_the_reference(tmp_path):
    import yaml
    from support import ROOT

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["shapes"] = ["constant", "two_stage", "linear"]
    raw["seeds"] = [0, 1]
    sw = spec.parse(raw)
    fake_records(tmp_path, sw, {"linear-r0.5": -0.1, "two_stage": -0.02})
    s = aggregate.aggregate(tmp_path)
    h = s.decision.head_to_head
    assert list(h["versus"]) == ["two_stage", "constant"] and h["margin"] == s.decision.margin
    assert h["versus"]["two_stage"]["mean"] == pytest.approx(-0.08, abs=0.01)
    assert h["summary"].count("; against ") == 1 and "against two_stage -0.08" in h["summary"]


def test_best_ramp_skips_two_stage_controls_extra_two_stages_and_missing_trials(tmp_path):
    """Against the first two_stage that is not a control, then the reference: a control of
    the two_stage shape listed first, a second two_stage schedule and a two_stage with no
    trials (its interval undefined) change nothing, and never stop the reference's
    comparison."""
    import yaml
    from support import ROOT

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["shapes"] = ["constant", "two_stage", "linear"]
    raw["seeds"] = [0, 1]
    fake_records(tmp_path, spec.parse(raw), {"linear-r0.5": -0.1, "two_stage": -0.02})
    s = aggregate.aggregate(tmp_path)
    rows, finished = s.schedules, s.finished
    ts = row(s, "two_stage")
    as_control = {**row(s, "short_only"), "shape": "two_stage"}  # real trials, a control
    second = {**ts, "schedule": "short_only"}  # a second two_stage, with trials of its own
    for extra in ([as_control], [second]):
        rows2 = [r for r in rows if r["schedule"] != "two_stage"]
        rows2 = [*extra, ts, *rows2] if extra[0] is as_control else [ts, *extra, *rows2]
        got = pick.best_ramp(finished, rows2, "constant", 0.01)
        assert list(got["versus"]) == ["two_stage", "constant"], extra[0]["role"]
    # a two_stage schedule with no finished trials: undefined, skipped; the reference stays
    ghost = {**ts, "schedule": "two_stage-ghost"}
    got = pick.best_ramp(finished, [ghost, *rows], "constant", 0.01)
    assert list(got["versus"]) == ["constant"]
    assert got["summary"].count("against ") == 1
    # the best ramp is the reference itself: nothing to compare it with but two_stage
    got = pick.best_ramp(finished, rows, "linear-r0.5", 0.01)
    assert list(got["versus"]) == ["two_stage"]


def test_own_excess_only_below_l_max_and_never_without_an_own_length(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    s = aggregate.aggregate(tmp_path)
    ref = [t for t in s.finished if t.record.schedule == "constant"]
    ctl = [t for t in s.finished if t.record.schedule == "short_only"]
    l_max = int(ref[0].record.l_max)
    for own, expect in ((None, False), (l_max, False), (ctl[0].own_length, True)):
        for t in ctl:
            t.record.own_length = own
            if own is None:
                t.record.tokens_by_length = {}
        r = {"schedule": "short_only", "vs_ref": {}}
        paired._excess(r, ctl, ref)
        assert ("own_excess" in r) is expect, own
        assert r["own_length"] == own


def test_stability_needs_two_candidates_and_four_seeds(tmp_path):
    seeds = (0, 1, 2, 3)
    fake_records(tmp_path / "two", smoke_spec(seeds=seeds), {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path / "two")
    rows = [r for r in s.schedules if r["schedule"] in ("constant", "linear-r0.5", "short_only")]
    st = pick.stability(s.finished, rows)
    assert st is not None and st["pairs"] == 1 and st["schedules"] == ["linear-r0.5", "constant"]
    one = [r for r in rows if r["schedule"] != "linear-r0.5"]
    assert pick.stability(s.finished, one) is None  # one candidate: no pair
    controls = [r for r in rows if r["role"] == "control"]
    assert pick.stability(s.finished, controls) is None  # no candidate at all


def test_own_excess_carries_its_variance_components(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    own = row(aggregate.aggregate(tmp_path), "short_only")["own_excess"]
    comp = own["components"]
    assert comp["seeds"] == 2 and comp["sequences"] == 32
    assert all(comp[k] >= 0 for k in ("seed", "sequence", "residual"))
