import json

import yaml
from deepspeed.runtime.data_pipeline.curriculum_scheduler import CurriculumScheduler
from support import ROOT, run_sweep

from sweep import export, schedules, spec


def test_schedules_export_writes_tables_deepspeed_and_target_specs(tmp_path):
    target = [
        "--target-l-max",
        "2048",
        "--target-tokens",
        "1e9",
        "--target-tokens-per-step",
        "1048576",
    ]
    r = run_sweep(
        "schedules",
        "export",
        ROOT / "configs" / "local.yaml",
        "--out",
        tmp_path,
        *target,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    sw = spec.load(ROOT / "configs" / "local.yaml")
    for t in sw.trials():
        d = tmp_path / t.schedule.label
        rows = (d / "proxy_steps.csv").read_text().splitlines()
        assert len(rows) == 1 + sw.budget.tokens // sw.budget.tokens_per_step
        tspec = spec.parse(yaml.safe_load((d / "target_spec.yaml").read_text()))
        assert tspec.schedules.l_max == 2048 and tspec.budget.tokens == 1_000_000_000
        (scaled,) = tspec.trials()
        assert scaled.schedule.label == t.schedule.label  # same schedule, target units
        ds = json.loads((d / "deepspeed.json").read_text())["curriculum_learning"]
        ours = schedules.plan(scaled.schedule, 10**9, 1048576).lengths
        sched = CurriculumScheduler(ds)
        assert [sched.get_difficulty(k) for k in range(len(ours))] == list(ours)


def test_target_lengths_scale_and_fractions_hold():
    sw = spec.load(ROOT / "configs" / "local.yaml")
    two = next(t for t in sw.trials() if t.schedule.shape == "two_stage")
    d = export.target_spec(two, export.Target(l_max=8192))
    (t,) = spec.parse(d).trials()
    assert schedules.length(t.schedule, 0.5) == 2048 and schedules.length(t.schedule, 0.8) == 8192
