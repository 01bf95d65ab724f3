"""Pure parts of orchestration: the order trials are handed to Tune and the per-trial
resources it asks for."""

from pathlib import Path

import pytest
import yaml

from sweep import orchestrate, spec

ROOT = Path(__file__).resolve().parents[1]


def local_spec(**resources) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    raw["resources"].update(resources)
    return spec.parse(raw)


def test_longest_first_orders_by_training_flops():
    sw = local_spec()
    order = orchestrate.longest_first(sw.trials())
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
    from sweep.model import build
    from sweep.model import non_embedding_params as built_params

    raw = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    raw["model"].update(model)
    m = spec.parse(raw).model
    assert orchestrate.non_embedding_params(m) == built_params(build(m, 257))


def test_dry_run_eval_estimate_scales_with_the_eval_windows():
    import dataclasses

    from sweep.model import build

    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    model = build(sw.model, 257)
    few = orchestrate.measure_eval_seconds(sw, model)
    many = dataclasses.replace(sw, eval=dataclasses.replace(sw.eval, sequences=64))
    assert orchestrate.measure_eval_seconds(many, model) > 3 * few > 0
