"""The W&B workspace builds offline and has the panels the issue asks for."""

from support import run_sweep

from dashboards.workspace import build


def test_workspace_panels():
    w = build("someone", "ctx-schedules", "local")
    titles = [p.title for s in w.sections for p in s.panels if getattr(p, "title", None)]
    for want in (
        "far_loss during training, by shape",
        "far_loss versus ramp rate",
        "sequence length versus tokens",
        "training loss, by shape",
    ):
        assert want in titles
    grouped = [p for s in w.sections for p in s.panels if getattr(p, "groupby", None)]
    assert all(p.groupby.name == "schedule.shape" for p in grouped) and len(grouped) >= 3
    assert "Metric('Group') == 'local'" == w.runset_settings.filters
    spec = w._to_model().model_dump_json()  # the view W&B would store, built offline
    assert "final/far_loss" in spec and "train/seq_len" in spec


def test_dashboard_without_key_is_a_clear_error():
    env = {"PATH": "/usr/bin:/bin"}
    r = run_sweep("dashboard", "--project", "p", env=env, timeout=120)
    assert r.returncode == 2 and "WANDB_API_KEY" in r.stderr
