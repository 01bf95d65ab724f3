"""The shape registry (sweep/config/shapes.py) is the one place a shape is defined: a shape
added there alone appears in a parsed spec's grid, the search space, the dry run and the
export; every entry's label and parameters survive a parse; and parse checks the spec
alone, so a stored spec whose corpus is gone still parses (preflight refuses it)."""

import copy
import io
import math

import numpy as np
import pytest
import yaml
from support import ROOT

from sweep import export
from sweep.config import schedules, shapes, spec
from sweep.config.fields import SpecError, plain
from sweep.run import cost, search
from sweep.run.preflight import preflight

SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
NEW = "sigmoid"  # a made-up shape, added to the registry and nowhere else


def _sigmoid(s, f: float, u: float, rng) -> float:
    lo, hi = s.l_min, s.l_max
    return lo + (hi - lo) / (1 + math.exp(-12 * (u - 0.5)))


@pytest.fixture
def sigmoid(monkeypatch):
    entry = shapes.Shape(_sigmoid, ramp=True, search=shapes.RAMP_SEARCH)
    monkeypatch.setitem(shapes.SHAPES, NEW, entry)
    return entry


def smoke(**schedules_kw) -> dict:
    raw = copy.deepcopy(SMOKE)
    raw["schedules"] = {**raw["schedules"], **schedules_kw}
    return raw


def test_a_shape_added_to_the_registry_alone_is_in_the_grid(sigmoid):
    sw = spec.parse(smoke(shapes=["constant", NEW], ramp_rates=[0.5, 1.0]))
    labels = [t.schedule.label for t in sw.trials()]
    assert f"{NEW}-r0.5" in labels and f"{NEW}-r1" in labels
    plan = next(t for t in sw.trials() if t.schedule.label == f"{NEW}-r0.5").plan()
    assert plan.total_tokens == sw.budget.tokens
    assert plan.context[0] < sw.schedules.l_max == plan.context[-1]  # it ramps up
    assert spec.parse(sw.to_dict()) == sw
    # reverse may mirror it: it is a ramp
    rev = spec.parse(smoke(shapes=["constant", {"shape": "reverse", "reverse_of": NEW}]))
    assert [t for t in rev.trials() if t.schedule.reverse_of == NEW]


def test_without_the_entry_the_shape_is_refused_in_the_registrys_words():
    with pytest.raises(SpecError) as e:
        spec.parse(smoke(shapes=["constant", NEW]))
    assert e.value.field == "schedules.shapes" and e.value.value == NEW
    assert e.value.why == "must be one of " + ", ".join(list(shapes.SHAPES)[:-1]) + (
        f" or {list(shapes.SHAPES)[-1]}"
    )


def test_a_shape_added_to_the_registry_alone_is_in_the_search_space(sigmoid):
    raw = smoke(shapes=["constant"], ramp_rates=[1.0])
    raw["search"] = {"num_samples": 2, "space": {"shapes": ["linear", NEW]}}
    sw = spec.parse(raw)
    space = search.space_params(sw.search.space, sw)
    assert space["shape"] == ("cat", ("linear", NEW)) and "ramp_rate" in space
    params = {"shape": NEW, "ramp_rate": 0.5}  # l_min: fixed at schedules.l_min
    sched = search.schedule_of(params, sw)
    assert sched.shape == NEW and sched.label == f"{NEW}-lm16-r0.5"
    assert search.params_of(sched, sw) == params


def test_a_shape_added_to_the_registry_alone_is_in_the_dry_run(sigmoid):
    sw = spec.parse(smoke(shapes=["constant", NEW], ramp_rates=[0.5]))
    out = io.StringIO()
    rows = cost.dry_run(sw, out, measure=False)
    assert f"{NEW}-r0.5" in out.getvalue()
    assert len(rows) == len(sw.trials())


def test_a_shape_added_to_the_registry_alone_is_in_the_export(sigmoid, tmp_path):
    sw = spec.parse(smoke(shapes=["constant", NEW], ramp_rates=[0.5]))
    # a small target: the default (BTLM's 150k steps) takes seconds and proves nothing more
    target = export.Target(l_max=256, tokens=256 * 8 * 400, tokens_per_step=256 * 8)
    done = export.export_spec(sw, tmp_path, target, echo=None)
    label = f"{NEW}-r0.5"
    assert label in done and (tmp_path / label / "target_steps.csv").is_file()
    restated = yaml.safe_load((tmp_path / label / "schedule_at_target.yaml").read_text())
    (scaled,) = spec.parse(restated).trials()
    assert scaled.schedule.shape == NEW and scaled.schedule.label == label


# Values other than the defaults for every parameter a shape reads.
PARAMS = {
    "switch": 0.5,
    "l_short": 32,
    "degree": 3.0,
    "cycles": 2,
    "reverse_of": "root",
    "stages": [[0.5, 32], [1.0, 64]],
    "mixture_lengths": [32, 64],
    "mixture_start": [0.75, 0.25],
    "mixture_end": [0.25, 0.75],
}


@pytest.mark.parametrize("name", list(shapes.SHAPES))
def test_every_shape_label_and_parameters_round_trip_through_parse(name):
    entry = shapes.SHAPES[name]
    own = {k: PARAMS[k] for k in entry.params}
    rates = {"ramp_rates": [0.5]} if entry.reads_rate else {}
    sw = spec.parse(
        smoke(
            shapes=[{"shape": name, **own, **rates}], reference=name, controls=[], ramp_rates=[1.0]
        )
    )
    (sched,) = {t.schedule for t in sw.trials()}
    assert sched.label == entry.label(sched) and sched.label.startswith(name)
    assert sched.label.endswith("-r0.5") == entry.reads_rate
    for key, value in own.items():
        assert plain(getattr(sched, key)) == value, key
        if shapes.SCALAR_PARAMS.get(key):
            assert f"-{shapes.SCALAR_PARAMS[key]}" in sched.label, key
    assert spec.parse(sw.to_dict()) == sw
    assert spec.TrialSpec.from_dict(sw.trials()[0].to_dict()) == sw.trials()[0]
    plan = schedules.plan(sched, sw.budget.tokens, sw.budget.tokens_per_step)
    assert plan.total_tokens == sw.budget.tokens and np.all(plan.context >= sched.l_min)


def test_the_views_of_the_registry_agree_with_it():
    assert shapes.RAMPS == tuple(n for n, s in shapes.SHAPES.items() if s.ramp)
    assert set(shapes.RATE_FREE_SHAPES) == {n for n, s in shapes.SHAPES.items() if not s.reads_rate}
    assert shapes.NEGATIVE_CONTROL in shapes.SHAPES
    assert all(set(s.search) <= set(search.TAGS) for s in shapes.SHAPES.values())


def test_parse_checks_the_spec_alone_and_preflight_what_it_names(tmp_path):
    """A stored spec whose files: corpus is gone still parses (a copied results directory
    reports, its Schedules figure included); a run's preflight refuses it, naming it."""
    raw = copy.deepcopy(SMOKE)
    raw["data"]["corpus"] = f"files:{tmp_path / 'gone'}"
    sw = spec.parse(raw)
    t = sw.trials()[0]
    assert spec.TrialSpec.from_dict(t.to_dict()).plan().total_tokens == sw.budget.tokens
    with pytest.raises(SpecError) as e:
        preflight(sw)
    assert (
        str(e.value) == f"spec error: data.corpus='files:{tmp_path / 'gone'}': path does not exist"
    )
    raw["data"]["corpus"] = "stdlib"
    raw["model"] = {**raw["model"], "arch": "no-such-arch"}
    for key in ("position", "mup_base_width"):
        raw["model"].pop(key, None)
    arch = spec.parse(raw)  # transformers is not asked here
    with pytest.raises(SpecError) as e:
        preflight(arch)
    assert e.value.field == "model.arch"
