"""The W&B workspace builds offline, shows the verdict's numbers, and names only keys the
trials log."""

import re

import numpy as np
from support import run_sweep, smoke_spec

from dashboards.workspace import build
from sweep.analysis import metrics


def _panels(w):
    return [p for s in w.sections for p in s.panels]


def test_workspace_panels():
    w = build("someone", "ctx-schedules", "local")
    titles = [p.title for p in _panels(w) if getattr(p, "title", None)]
    for want in (
        "far_loss per schedule (the objective; lower is better)",
        "far bands per schedule",
        "the controls and the reference: far_loss by role",
        "context_use (gain from context between l_max/8 and l_max)",
        "ctx_gain (context used past l_max)",
        "far_loss versus tokens at l_max",
        "shape, ramp rate and mode to far_loss",
        "far_loss during training, by shape",
        "sequence length versus tokens",
    ):
        assert want in titles, want
    assert len(titles) == len(set(titles))  # no panel twice
    assert "Metric('Group') == 'local'" == w.runset_settings.filters
    assert "delta" not in w._to_model().model_dump_json()  # a descriptor, not the objective


def _logged_keys() -> set[str]:
    """Every key a trial logs (sweep/train/trial.py, sweep/train/tracking.py) for the smoke
    spec: its config flattened, its train/* and eval/* history, its final/* summary."""
    sw = smoke_spec()
    t = sw.trials()[0]
    config = {**t.to_dict(), "label": t.schedule.label, "role": t.role}

    def flat(d, pre=""):
        out = set()
        for k, v in d.items():
            out |= flat(v, f"{pre}{k}.") if isinstance(v, dict) else {f"{pre}{k}"}
        return out

    L, E = sw.schedules.l_max, sw.eval.length(sw.schedules.l_max)
    result = metrics.all_metrics(np.ones(E), L)
    final = {f"final/{k}" for k in result} | {
        f"final/{k}"
        for k in ("flops", "exposure_far", "context_use", "ctx_gain", "tokens_at_l_max")
    }
    train = {f"train/{k}" for k in ("step", "loss", "seq_len", "lr", "tokens_per_s")}
    evals = {f"eval/{k}" for k in result}
    return flat(config) | final | train | evals | {"tokens"}


def test_the_workspace_names_only_keys_the_trials_log():
    spec = build("someone", "ctx-schedules", "local")._to_model().model_dump_json()
    # metrics appear as "final/x", "summary:final/x" or "summary_metrics.final/x"; config
    # keys as "config:schedule.value.shape" or, grouped by, "schedule.value.shape"
    metric = r'"(?:summary:|summary_metrics\.)?((?:final|train|eval)/[A-Za-z0-9_]+)"'
    named = set(re.findall(metric, spec))
    config = r'"(?:config:)?([A-Za-z0-9_]+)\.value((?:\.[A-Za-z0-9_]+)*)"'
    named |= {a + b for a, b in re.findall(config, spec)}
    logged = _logged_keys()
    want = {"final/far_loss", "final/tokens_at_l_max", "train/seq_len", "label", "role"}
    assert want | {"schedule.mode", "final/context_use"} <= named
    assert named <= logged, named - logged


def test_dashboard_without_key_is_a_clear_error():
    env = {"PATH": "/usr/bin:/bin"}
    r = run_sweep("dashboard", "--project", "p", env=env, timeout=120)
    assert r.returncode == 2 and "WANDB_API_KEY" in r.stderr
