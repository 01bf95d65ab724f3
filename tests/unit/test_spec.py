"""The spec model: one declarative, validated schema; its round trips; the fields a
transformers architecture cannot use; no import cycle with schedules; and a fuzz of the
validation path the CLI runs before Ray (spec.parse, preflight, then orchestrate.check_cluster)."""

import copy
import dataclasses
import inspect
import math
import os
import subprocess
import sys
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ROOT

from sweep.config import schedules, spec
from sweep.run import orchestrate
from sweep.run.preflight import preflight

_ALL = sorted((ROOT / "configs").glob("*.yaml"))
STUDIES = [p for p in _ALL if "arms" in (yaml.safe_load(p.read_text()) or {})]
CONFIGS = [p for p in _ALL if p not in STUDIES]
MAIN_JOB = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
LLAMA = {"arch": "llama", "d_model": 32, "n_layers": 1, "n_heads": 2}


def main_job(**sections) -> dict:
    raw = copy.deepcopy(MAIN_JOB)
    raw.update(sections)
    return raw


def error_of(raw: dict) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as e:
        preflight(spec.parse(raw))
    return e.value


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("module", ["sweep.config.spec", "sweep.config.schedules"])
def test_spec_and_schedules_import_alone_and_schedules_never_imports_spec(module):
    code = f"import sys, {module}; print('sweep.config.spec' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == str(module == "sweep.config.spec")


def test_schedule_spec_stays_a_frozen_hashable_dataclass():
    s = spec.ScheduleSpec("linear", 32, 256, ramp_rate=0.5)
    w = dataclasses.replace(s, mode="window")
    assert w.label == "linear-r0.5-window" and hash(w) != hash(s)
    assert spec.ScheduleSpec(**{**s.__dict__, "shape": "cosine"}).shape == "cosine"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.l_min = 8  # type: ignore[misc]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_configs_round_trip_through_dict_and_yaml(path):
    sw = spec.load(path)
    assert spec.parse(sw.to_dict()) == sw
    assert spec.parse(yaml.safe_load(yaml.safe_dump(sw.to_dict()))) == sw
    for t in sw.trials():
        assert spec.TrialSpec.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_arms_round_trip_through_dict(path):
    from sweep.config import study_spec

    st = study_spec.load(path)
    main = st.arm_spec(st.main, [])
    ramps = [study_spec.ramp_entry(main, r) for r in study_spec.ramp_labels(main)]
    for arm in st.arm_names:
        sw = st.arm_spec(arm, ramps)
        assert spec.parse(sw.to_dict()) == sw


def test_trial_plan_is_the_schedules_plan():
    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    b = sw.budget
    for t in sw.trials():
        want = schedules.plan(t.schedule, b.tokens, b.tokens_per_step, t.seed)
        got = t.plan()
        assert got.total_tokens == want.total_tokens == b.tokens
        assert (got.lengths == want.lengths).all() and (got.context == want.context).all()


# ----------------------------------------------------------------------------- model fields


def test_new_model_fields_default_to_what_the_model_used():
    from sweep.train.model import BtlmProxyConfig, rope_tables

    m = spec.ModelSpec()
    cfg = inspect.signature(BtlmProxyConfig.__init__).parameters
    assert m.mup_output_alpha == 1.0 and m.rope_base == 10000.0
    assert m.rope_base == inspect.signature(rope_tables).parameters["base"].default
    for key in spec.PROXY_ONLY:  # a spec that leaves them out trains the config's model
        assert getattr(m, key) == cfg[key].default, key


def test_new_model_fields_parse_and_round_trip():
    sw = spec.parse(
        main_job(model={**MAIN_JOB["model"], "position": "rope", "rope_base": 5e5})
        | {"name": "rope"}
    )
    assert sw.model.rope_base == 500000.0 and sw.model.mup_output_alpha == 1.0
    sw = spec.parse(main_job(model={**MAIN_JOB["model"], "mup_output_alpha": 2}))
    assert sw.model.mup_output_alpha == 2.0 and spec.parse(sw.to_dict()) == sw


@pytest.mark.parametrize(
    "key,value",
    [
        ("position", "rope"),
        ("ffn_mult", 4.0),
        ("mup_base_width", 64),
        ("init_std", 0.01),
        ("embeddings_scale", 1.0),
        ("attention", "sdpa"),
        ("mup_output_alpha", 2.0),
        ("rope_base", 5e5),
    ],
)
def test_proxy_only_fields_are_refused_for_a_transformers_arch(key, value):
    assert key in spec.PROXY_ONLY
    e = error_of(main_job(model={**LLAMA, key: value}))
    assert e.field == f"model.{key}" and e.value == value and "btlm-proxy" in e.why
    # at their defaults they are fine (a stored spec writes every field)
    default = getattr(spec.ModelSpec(), key)
    assert spec.parse(main_job(model={**LLAMA, key: default})).model.arch == "llama"


def test_hf_config_is_checked_against_the_architecture():
    ok = spec.parse(main_job(model={**LLAMA, "hf_config": {"num_key_value_heads": 1}}))
    assert ok.model.hf_config == {"num_key_value_heads": 1}
    for hf, field in [
        ({"rope_theta": 1e5}, "model.hf_config.rope_theta"),  # LlamaConfig ignores it
        ({"hidden_size": 64}, "model.hf_config.hidden_size"),  # model.d_model sets it
        ({"bogus": 1}, "model.hf_config.bogus"),
    ]:
        assert error_of(main_job(model={**LLAMA, "hf_config": hf})).field == field
    gpt2 = {"arch": "gpt2", "d_model": 32, "n_layers": 1, "n_heads": 2}
    assert error_of(main_job(model={**gpt2, "hf_config": {"n_embd": 64}})).field == (
        "model.hf_config.n_embd"  # gpt2's name for hidden_size
    )
    proxy = error_of(main_job(model={**MAIN_JOB["model"], "hf_config": {"alibi": True}}))
    assert proxy.field == "model.hf_config"


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "section,key,value,field,shown",
    [
        ("optim", "lr", math.nan, "optim.lr", "nan"),
        ("optim", "lr", math.inf, "optim.lr", "inf"),
        ("optim", "lr", 0, "optim.lr", "0"),
        ("optim", "warmup_fraction", math.nan, "optim.warmup_fraction", "nan"),
        ("optim", "min_lr_ratio", math.nan, "optim.min_lr_ratio", "nan"),
        ("optim", "weight_decay", math.nan, "optim.weight_decay", "nan"),
        ("resources", "gpus_per_worker", math.nan, "resources.gpus_per_worker", "nan"),
        ("resources", "gpus_per_worker", 1.5, "resources.gpus_per_worker", "1.5"),
        ("schedules", "ramp_rates", [[0.5], 1.0], "schedules.ramp_rates", "[0.5]"),
        ("schedules", "ramp_rates", [0.25, [1.0, 0.5]], "schedules.ramp_rates", "[1.0, 0.5]"),
        ("budget", "tokens", True, "budget.tokens", "True"),
        ("model", "d_model", "128", "model.d_model", "'128'"),
        ("model", "n_heads", [4], "model.n_heads", "[4]"),
        ("data", "doc_mask", "yes", "data.doc_mask", "'yes'"),
        ("data", "held_out_fraction", None, "data.held_out_fraction", "None"),
        ("wandb", "entity", 7, "wandb.entity", "7"),
        ("eval", "seed", -1, "eval.seed", "-1"),
        ("schedules", "modes", "squash", "schedules.modes", "'squash'"),
        ("model", "hf_config", {1: "x"}, "model.hf_config", "1"),
        ("deepspeed", "zero_stage", True, "deepspeed.zero_stage", "True"),
    ],
)
def test_bad_values_name_field_and_value(section, key, value, field, shown):
    raw = main_job()
    raw[section] = {**raw[section], key: value}
    e = error_of(raw)
    assert e.field == field, e
    assert str(e).startswith(f"spec error: {field}={shown}") and "\n" not in str(e)


def test_whole_floats_are_integers_and_integers_floats():
    raw = main_job()
    raw["budget"] = {"tokens": 6.5536e5, "tokens_per_step": 2048}
    raw["optim"] = {**raw["optim"], "lr": 1}
    sw = spec.parse(raw)
    assert sw.budget.tokens == 655360 and type(sw.budget.tokens) is int
    assert sw.optim.lr == 1.0 and type(sw.optim.lr) is float


def test_empty_sections_take_their_defaults():
    raw = main_job(optim=None, wandb=None)
    sw = spec.parse(raw)
    assert sw.optim == spec.OptimSpec() and sw.wandb == spec.WandbSpec()


@pytest.mark.parametrize(
    "schedules_kw,field,value",
    [
        ({"shapes": ["constant", "linear", "linear"]}, "schedules.shapes", "linear-r0.25"),
        (
            {"shapes": ["constant", {"shape": "linear", "ramp_rates": [1.0]}, "linear"]},
            "schedules.shapes",
            "linear-r1",
        ),
        ({"shapes": ["constant", {"shape": "linear", "degree": 3}]}, None, None),
        ({"degree": 3}, "schedules.degree", [3.0]),  # no root or reverse shape listed
        ({"shapes": ["constant", "two_stage"], "ramp_rates": [0.5]}, "schedules.ramp_rates", None),
        ({"controls": ["constant"]}, "schedules.controls", "constant"),
        ({"switch": []}, "schedules.switch", []),
        ({"switch": [0.5, 0.5]}, "schedules.switch", [0.5, 0.5]),
        ({"shapes": [{"ramp_rates": [0.5]}]}, "schedules.shapes", {"ramp_rates": [0.5]}),
    ],
)
def test_grid_refusals(schedules_kw, field, value):
    raw = main_job()
    raw["schedules"] = {**raw["schedules"], **schedules_kw}
    e = error_of(raw)
    if field is None:
        field = "schedules.shapes[linear].degree"
    assert e.field == field, e
    if value is not None:
        assert e.value == value, e


def test_shape_parameters_reach_only_the_shapes_that_read_them():
    raw = main_job()
    raw["schedules"] = {**raw["schedules"], "switch": [0.5, 0.75]}
    labels = [t.schedule.label for t in spec.parse(raw).trials()]
    assert "two_stage-sw0.5" in labels and "two_stage-sw0.75" in labels
    assert "linear-r0.25" in labels and not [x for x in labels if "linear-sw" in x]


# ----------------------------------------------------------------------------- fuzz

ANY_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # NaN and infinities included
        st.text(max_size=6),
        st.sampled_from(["linear", "reshape", "rope", "llama", "files:/nope", "bpe", "1e3"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)


def key_paths(node, prefix=()) -> list[tuple]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, (dict, list)):
            out.extend(key_paths(value, (*prefix, key)))
    return out


@st.composite
def mutated_specs(draw) -> dict:
    """The main job's spec with 1-3 mutations: a key deleted, a value replaced by anything
    (None, bools, strings, nested lists, NaN, infinities, negative and huge numbers,
    mappings), or an unknown key added to a mapping."""
    raw = copy.deepcopy(MAIN_JOB)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(key_paths(raw)))
        node = raw
        for key in where[:-1]:
            node = node[key]
        op = draw(st.sampled_from(["delete", "set", "set", "add"]))
        if op == "delete" and isinstance(node, dict):
            del node[where[-1]]
        elif op == "add" and isinstance(node, dict):
            node[draw(st.text(min_size=1, max_size=6))] = draw(ANY_VALUE)
        else:
            node[where[-1]] = draw(ANY_VALUE)
    return raw


def cli_validation(raw: dict) -> spec.SweepSpec:
    """What ``sweep run`` checks before it starts Ray, minus the corpus (seconds each)."""
    sw = spec.parse(raw)
    preflight(sw)
    orchestrate.check_cluster(sw, None)
    return sw


@settings(max_examples=300, deadline=None)
@given(raw=mutated_specs())
def test_mutated_specs_are_accepted_whole_or_refused_in_one_line(raw):
    with mock.patch.dict(os.environ, clear=False) as env:
        env.pop("RAY_ADDRESS", None)
        try:
            sw = cli_validation(raw)
        except spec.SpecError as e:
            assert "\n" not in str(e) and e.field and str(e).startswith("spec error: ")
            return
    # accepted: it round-trips as results/<name>/spec.yaml stores it, and its grid plans
    assert spec.parse(yaml.safe_load(yaml.safe_dump(sw.to_dict()))) == sw
    trials = sw.trials()
    assert trials and len({t.trial_id for t in trials}) == len(trials)
    if sw.budget.tokens // sw.budget.tokens_per_step <= 2000:
        for t in trials:
            assert t.plan().total_tokens <= sw.budget.tokens


def test_a_key_with_a_newline_is_refused_in_one_line():
    """Found by the fuzz test: a YAML key holding a newline split the error in two."""
    raw = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    raw["\n"] = None
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw)
    assert "\n" not in str(err.value) and str(err.value).startswith("spec error: \\n=None")


@pytest.mark.parametrize(
    "text, why",
    [
        ("name: x\nbudget:\n  tokens: 5\n tokens_per_step: 3\n", "at line 4, column 2"),
        ("name: x\nbudget:\n\ttokens: 5\n", "a tab character (indent with spaces) at line 3"),
        ("name: x\nbudget: {tokens: 5\n", "at line 3, column 1"),
    ],
)
def test_yaml_errors_say_where(tmp_path, text, why):
    from sweep.config.spec import SpecError, load

    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SpecError, match="not valid YAML") as e:
        load(f)
    assert why in str(e.value)


def test_usage_errors_and_spec_errors_share_one_form():
    assert str(spec.SpecError("--results", "x", "why")).startswith("usage error: --results='x'")
    assert str(spec.SpecError("DIR", "d", "why")).startswith("usage error: DIR='d'")
    # a spec key in capitals is still a spec field (found by the fuzz test)
    assert str(spec.SpecError("A", None, "unknown")).startswith("spec error: A=None")
