"""Search beyond the grid, the pure parts: the spec's ``search:`` section, what a sample
is, and the rung rule that decides when a sampled trial may be stopped."""

from pathlib import Path

import pytest
import yaml

from sweep import schedules, search, spec

ROOT = Path(__file__).resolve().parents[1]


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
