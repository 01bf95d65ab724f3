"""Pure parts of orchestration: the order trials are handed to Tune and the per-trial
resources it asks for."""

import pytest
import yaml
from support import ROOT

from sweep.config import spec
from sweep.run import cost, orchestrate


def local_spec(**resources) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    raw["resources"].update(resources)
    return spec.parse(raw)


def test_longest_first_orders_by_training_flops():
    sw = local_spec()
    order = cost.longest_first(sw.trials())
    assert sorted(t.trial_id for t in order) == sorted(t.trial_id for t in sw.trials())

    def attention_tokens(t) -> float:
        p = t.plan()
        return float((p.tokens * p.lengths).sum())

    costs = [attention_tokens(t) for t in order]
    assert costs == sorted(costs, reverse=True)
    # constant trains every token at l_max: the dearest
    assert order[0].trial_id == "constant-s0"


def test_one_worker_trials_hold_their_cpus_in_tune():
    assert orchestrate.trial_resources(local_spec(cpus_per_worker=2)) == {"cpu": 2}
    assert orchestrate.trial_resources(local_spec(gpus_per_worker=1)) == {"cpu": 1, "gpu": 1}
    # a worker group's Tune function only drives it: no CPU taken from the workers
    group = orchestrate.trial_resources(local_spec(workers_per_trial=2))
    assert group.get("cpu", 0) == 0


@pytest.mark.parametrize(
    "model",
    [
        {},
        {"d_model": 96, "n_layers": 3, "n_heads": 3, "ffn_mult": 3.5},
        {"d_model": 64, "n_layers": 1, "n_heads": 2, "position": "rope"},
    ],
)
def test_flops_params_match_the_built_model(model):
    from sweep.train.model import build
    from sweep.train.model import non_embedding_params as built_params

    raw = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    raw["model"].update(model)
    m = spec.parse(raw).model
    assert cost.non_embedding_params_of_config(m) == built_params(build(m, 257))


def test_dry_run_eval_estimate_scales_with_the_eval_windows():
    import dataclasses

    from sweep.train.model import build

    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    model = build(sw.model, 257)
    few = cost.measure_eval_seconds(sw, model)
    many = dataclasses.replace(sw, eval=dataclasses.replace(sw.eval, sequences=64))
    assert cost.measure_eval_seconds(many, model) > 3 * few > 0


def test_adding_seeds_keeps_the_finished_trials(tmp_path):
    """A spec that only adds seeds claims the directory, rewrites its spec.yaml, and its
    finished trials stand; any other change, removing a seed among them, is refused."""
    from support import fake_records, smoke_spec

    two = smoke_spec(seeds=(0, 1))
    d = tmp_path / "smoke"
    orchestrate.prepare(two, d)
    fake_records(d, two)
    three = smoke_spec(seeds=(0, 1, 2))
    assert orchestrate.adds_seeds(two, three) and not orchestrate.adds_seeds(three, two)
    orchestrate.prepare(three, d)  # accepted
    assert yaml.safe_load((d / "spec.yaml").read_text())["seeds"] == [0, 1, 2]
    trials = list(three.trials())
    done = orchestrate.finished_ids(trials, d)
    assert done == {t.trial_id for t in trials if t.seed in (0, 1)}
    assert len(done) == len(trials) * 2 // 3
    # anything else changed is another sweep: refused, and its trials do not stand
    other = smoke_spec(seeds=(0, 1, 2, 3))
    other = type(other)(**{**other.__dict__, "optim": type(other.optim)(lr=0.5)})
    with pytest.raises(spec.SpecError, match="different spec"):
        orchestrate.prepare(other, d)
    assert orchestrate.finished_ids(list(other.trials()), d) == set()
    with pytest.raises(spec.SpecError, match="different spec"):  # seeds removed
        orchestrate.prepare(smoke_spec(seeds=(0,)), d)


def test_a_study_file_that_adds_seeds_is_the_same_study():
    from sweep.config.study_spec import adds_seeds

    raw = yaml.safe_load((ROOT / "configs" / "study-smoke.yaml").read_text())
    more = yaml.safe_load((ROOT / "configs" / "study-smoke.yaml").read_text())
    more["base"]["seeds"] = [*raw["base"]["seeds"], 99]
    assert adds_seeds(raw, raw) and adds_seeds(raw, more)
    assert not adds_seeds(more, raw)  # a seed removed
    more["base"]["eval"] = {**more["base"]["eval"], "sequences": 3}
    assert not adds_seeds(raw, more)  # something else changed
    assert not adds_seeds(None, raw)
