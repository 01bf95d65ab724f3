"""Search beyond the grid, the pure parts: the spec's ``search:`` section, what a sample
is, and the rung rule that decides when a sampled trial may be stopped."""

import pytest
import yaml
from support import ROOT, fake_records

from sweep.analysis.records import TrialRecord
from sweep.config import schedules, spec
from sweep.run import search, tune_search


def search_spec(**over) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["eval"]["every_fraction"] = 0.125
    raw["search"] = {"num_samples": 8, **over}
    return spec.parse(raw)


def test_search_section_round_trips_and_defaults():
    sw = search_spec(space={"l_min": [16, 32]}, early_stop={"enabled": True})
    assert spec.parse(sw.to_dict()) == sw
    assert sw.search.objectives == ("far_loss", "id_loss")
    assert sw.search.space.l_min == (16, 32)
    assert spec.parse(yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())).search is None


@pytest.mark.parametrize(
    "over,field",
    [
        ({"space": {"ramp_rate": [0.9, 0.2]}}, "search.space.ramp_rate"),
        ({"space": {"shapes": ["constant"]}}, "search.space.shapes"),
        ({"space": {"l_min": [8, 32]}}, "search.space.l_min"),
        ({"sampler": "cmaes"}, "search.sampler"),
        ({"objectives": ["id_loss", "far_loss"]}, "search.objectives"),
        ({"early_stop": {"enabled": True, "rungs": [0.05]}}, "search.early_stop.rungs"),
        ({"num_samples": 0}, "search.num_samples"),
        ({"budget": 3}, "search.budget"),
    ],
)
def test_bad_search_sections_name_their_field(over, field):
    with pytest.raises(spec.SpecError, match=field.replace(".", r"\.")):
        search_spec(**over)


def test_early_stop_needs_intermediate_evaluations():
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["eval"]["every_fraction"] = 0.0
    raw["search"] = {"early_stop": {"enabled": True}}
    with pytest.raises(spec.SpecError, match=r"search\.early_stop\.enabled"):
        spec.parse(raw)


def test_a_sample_is_the_schedule_its_label_names():
    sw = search_spec(space={"l_min": [16, 48], "shapes": ["root", "two_stage"]})
    root = search.schedule_of(
        {"shape": "root", "ramp_rate": 0.43219, "l_min": 29, "degree": 2.7182}, sw
    )
    assert (root.ramp_rate, root.l_min, root.degree) == (0.432, 32, 2.72)
    assert root.label == "root-lm32-d2.72-r0.432"
    two = search.schedule_of({"shape": "two_stage", "switch": 0.61234, "l_short": 44}, sw)
    assert (two.switch, two.l_short) == (0.612, 48) and two.label == "two_stage-sw0.612-ls48"
    assert set(search.space_params(sw.search.space, sw)) == {
        "shape", "ramp_rate", "l_min", "degree", "switch"  # l_short fixed at l_max / 4
    }  # fmt: skip


def _plan(shape: str, rate: float, sw) -> schedules.Plan:
    s = spec.ScheduleSpec(shape, sw.schedules.l_min, sw.schedules.l_max, ramp_rate=rate)
    return schedules.plan(s, sw.budget.tokens, sw.budget.tokens_per_step)


@pytest.mark.parametrize("shape,rate", [("linear", 0.5), ("linear", 1.0), ("geometric", 0.75)])
def test_the_rung_rule_never_judges_before_l_max_plus_the_margin(shape, rate):
    sw = search_spec()
    p, L, B = _plan(shape, rate, sw), sw.schedules.l_max, sw.budget.tokens
    first_at_l_max = int(p.cumulative_tokens()[list(p.context).index(L)]) if L in p.context else B
    for seen in range(0, B + 1, sw.budget.tokens_per_step // 2):
        # ramps stay at l_max once there: judgeable exactly from first + 10% of the budget
        assert search.judgeable(p, seen, L, B, 0.1) == (seen >= first_at_l_max + 0.1 * B)
        assert search.tokens_at_l_max(p, seen) == max(0, min(seen, B) - first_at_l_max)


def test_a_schedule_that_never_reaches_l_max_is_never_judged():
    sw = search_spec()
    p = schedules.plan(
        spec.ScheduleSpec("short_only", 16, 64), sw.budget.tokens, sw.budget.tokens_per_step
    )
    assert not any(
        search.judgeable(p, s, 64, sw.budget.tokens, 0.01) for s in range(0, 40961, 1024)
    )


def test_dominance_must_clear_the_noise_on_both_objectives():
    me = {"far_loss": 3.0, "far_loss_se": 0.01, "id_loss": 3.2, "id_loss_se": 0.01}
    keys = ("far_loss", "id_loss")
    better_both = {"far_loss": 2.9, "far_loss_se": 0.01, "id_loss": 3.1, "id_loss_se": 0.01}
    within_noise = {**better_both, "id_loss": 3.19}
    better_one = {**better_both, "id_loss": 3.3}
    assert search.dominating(me, [better_one, within_noise], keys, 2.0) is None
    assert search.dominating(me, [better_one, better_both], keys, 2.0) is better_both
    # flops has no SE: strictly fewer is enough
    cheap = {"far_loss": 2.9, "far_loss_se": 0.01, "flops": 1e9}
    assert search.dominating({**me, "flops": 2e9}, [cheap], ("far_loss", "flops"), 2.0) is cheap
    assert search.dominating({**me, "flops": 1e9}, [cheap], ("far_loss", "flops"), 2.0) is None


# ----------------------------------------------------------------------------- the stopper


class FakeTrial:
    def __init__(self, tid: str, params: dict, number: int, sw):
        self.trial_id = tid
        self.config = {"params": params, "number": number, "sweep": sw.to_dict()}


def _eval(tokens: int, far: float, idl: float, se: float = 0.001) -> dict:
    return {
        "phase": "eval",
        "tokens": tokens,
        "far_loss": far,
        "id_loss": idl,
        "far_loss_se": se,
        "id_loss_se": se,
    }


def test_the_stopper_stops_only_judgeable_dominated_trials(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from sweep.analysis import aggregate, records
    from sweep.report import console
    from sweep.report.sweep_report import write_report

    sw = search_spec(early_stop={"enabled": True, "rungs": [0.5], "min_at_l_max": 0.1})
    stopper = tune_search.make_stopper(sw, tmp_path)
    B = sw.budget.tokens
    lin = {"shape": "linear", "ramp_rate": 0.2, "l_min": 16}
    good = FakeTrial("a", lin, 0, sw)
    worse = FakeTrial("b", {**lin, "ramp_rate": 0.3}, 1, sw)
    late = FakeTrial("c", {**lin, "ramp_rate": 1.0}, 2, sw)  # reaches l_max at the end
    close = FakeTrial("d", {**lin, "ramp_rate": 0.25}, 3, sw)
    half = B // 2
    assert stopper.on_trial_result(None, good, _eval(half, 4.0, 4.1)) == TrialScheduler.CONTINUE
    # far worse, but its schedule has not reached l_max: never judged
    assert stopper.on_trial_result(None, late, _eval(half, 5.0, 5.0)) == TrialScheduler.CONTINUE
    # worse on both, but by less than 2 SE of the difference on id_loss
    assert stopper.on_trial_result(None, close, _eval(half, 4.2, 4.1025)) == TrialScheduler.CONTINUE
    # training results never decide; a second eval at a judged rung is not judged again
    assert stopper.on_trial_result(None, worse, {"phase": "train", "tokens": half}) == "CONTINUE"
    assert stopper.on_trial_result(None, worse, _eval(half, 4.2, 4.3)) == TrialScheduler.STOP
    assert stopper.on_trial_result(None, worse, _eval(half + 1, 4.9, 4.9)) == "CONTINUE"
    t = search.sample_trial(worse.config["params"], 1, sw)
    rec = records.read_record(records.record_path(tmp_path, t.trial_id))
    assert rec.status == "stopped" and rec.rung == 0.5
    assert "q000-linear-lm16-r0.2-s0" in rec.reason and rec.tokens_trained == half
    # the stopped trial is a row of the report, with its reason, and not a failure
    from sweep.config.spec import TrialSpec

    ref = TrialSpec("constant-s0", 0, sw.trials()[0].schedule, sw)
    fake_records(tmp_path, sw, trials=[ref], n_seq=4, noise=0.01)
    summary = aggregate.aggregate(tmp_path)
    assert {tr.status for tr in summary.trials} == {"finished", "stopped"}
    md, _ = write_report(summary)
    row = next(ln for ln in md.read_text().splitlines() if t.trial_id in ln and "stopped" in ln)
    assert "dominated at rung 0.5" in row
    table = " ".join(console.format_table(summary).split())
    assert f"{t.trial_id} stopped: dominated at rung 0.5" in table


def test_a_resumed_searcher_is_told_finished_samples_and_asks_interrupted_ones_first():
    sw = search_spec(space={"shapes": ["linear", "two_stage"], "l_min": [16, 32]})
    done = []
    for n, (params, far) in enumerate(
        [
            ({"shape": "linear", "ramp_rate": 0.5, "l_min": 16}, 4.4),
            ({"shape": "two_stage", "switch": 0.7}, 4.5),
        ]
    ):
        t = search.sample_trial(params, n, sw)
        done.append(TrialRecord.of(t, "finished", metrics={"far_loss": far, "id_loss": 4.6}))
    stopped = search.sample_trial({"shape": "linear", "ramp_rate": 0.9, "l_min": 32}, 2, sw)
    done.append(TrialRecord.of(stopped, "stopped"))
    redo = [({"shape": "linear", "ramp_rate": 0.3, "l_min": 16}, 5)]  # q005 was interrupted
    searcher = tune_search.make_searcher(sw, done, redo)
    states = [t.state.name for t in searcher.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "WAITING"]
    assert searcher.study.trials[0].values == [4.4, 4.6]
    first = searcher.suggest("tune-1")
    assert first == {"params": redo[0][0], "number": 5}  # asked again under its own number
    nxt = searcher.suggest("tune-2")
    assert nxt["number"] == 6 and nxt["params"]["shape"] in ("linear", "two_stage")
    searcher.on_trial_complete("tune-1", {"phase": "done", "far_loss": 4.3, "id_loss": 4.5})
    searcher.on_trial_complete("tune-2", {"phase": "eval", "far_loss": 4.9, "id_loss": 4.9})
    assert [t.state.name for t in searcher.study.trials][3:] == ["COMPLETE", "PRUNED"]


def test_a_missing_standard_error_counts_as_none():
    keys = ("far_loss", "flops")
    me = {"far_loss": 3.0, "far_loss_se": 0.01, "flops": 1.5}
    other = {"far_loss": 2.9, "far_loss_se": 0.01, "flops": 1.0}  # no SE on either flops
    assert search.dominating(me, [other], keys, 2.0) is other
    assert search.dominating(other, [me], keys, 2.0) is None


def test_a_schedule_already_trained_is_never_proposed_again():
    # two possible schedules: l_min snaps to 16 or 32, everything else fixed
    sw = search_spec(space={"shapes": ["linear"], "ramp_rate": [0.5, 0.5], "l_min": [16, 32]})
    t16 = search.sample_trial({"shape": "linear", "l_min": 16}, 0, sw)
    done = [TrialRecord.of(t16, "finished", metrics={"far_loss": 4.0, "id_loss": 4.1})]
    searcher = tune_search.make_searcher(sw, done, [])
    got = searcher.suggest("tune-1")
    assert search.schedule_of(got["params"], sw).label == "linear-lm32-r0.5"
    assert got["number"] == 1
    # both schedules now trained or in flight: nothing new to propose
    assert searcher.suggest("tune-2") == "FINISHED"
    # a repeated proposal was told the record's values, not trained
    told = [t.values for t in searcher.study.trials if t.state.name == "COMPLETE"]
    assert told.count([4.0, 4.1]) >= 2
