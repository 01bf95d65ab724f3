"""A real search (Ray Tune + Optuna + DeepSpeed at smoke scale): the samples, the report,
a non-dominated front, and `sweep resume` after the driver is killed."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from support import ROOT, kill_sweep, run_sweep

from sweep import aggregate

pytestmark = pytest.mark.e2e
SPEC = ROOT / "configs" / "search-smoke.yaml"


def samples(d):
    out = {}
    for p in sorted(d.glob("trials/q*/record.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def test_search_runs_samples_and_reports_a_non_dominated_front(tmp_path):
    r = run_sweep("run", str(SPEC), "--results", str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = tmp_path / "search-smoke"
    got = samples(d)
    assert len(got) == 6 and all(v["status"] in ("finished", "stopped") for v in got.values())
    assert sorted(k[:4] for k in got) == [f"q{i:03d}" for i in range(6)]
    summary = aggregate.aggregate(d)
    keys = ("far_loss", "id_loss")
    rows = [r for r in summary.schedules if all(k in r for k in keys)]
    front = set(aggregate.pareto_front(rows, keys))

    def dominates(a, b):
        return all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)

    by = {r["schedule"]: r for r in rows}
    for name in front:  # nothing beats a front member on both
        assert not any(dominates(o, by[name]) for o in rows)
    for name in set(by) - front:  # everything else is beaten by a front member
        assert any(dominates(by[f], by[name]) for f in front)
    md = (d / "report.md").read_text()
    assert "Search: 6 sampled schedules" in md and "Non-dominated on far_loss and id_loss" in md
    assert (d / "figures" / "search_path.png").is_file()


def test_search_resume_after_the_driver_is_killed_repeats_no_finished_sample(tmp_path):
    raw = yaml.safe_load(SPEC.read_text())
    raw["name"] = "sk"
    raw["search"]["early_stop"]["enabled"] = False
    spec = tmp_path / "sk.yaml"
    spec.write_text(yaml.safe_dump(raw))
    d = tmp_path / "res" / "sk"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", str(spec), "--results", str(tmp_path / "res")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 400
    while time.time() < deadline:
        time.sleep(0.2)
        fin = {k: v for k, v in samples(d).items() if v.get("status") == "finished"}
        if len(fin) >= 2:
            break
    assert len(fin) >= 2, "no two samples finished"
    kill_sweep(proc)  # the driver, the Ray it started and Ray's workers die at once
    fin = {k: v for k, v in samples(d).items() if v.get("status") == "finished"}
    kept = {k: (d / "trials" / k / "record.json").read_bytes() for k in fin}
    r = run_sweep("resume", str(d), timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"({len(fin)} already done)" in r.stdout
    after = samples(d)
    for k, content in kept.items():
        assert (d / "trials" / k / "record.json").read_bytes() == content  # not rerun
    done = [v for v in after.values() if v["status"] == "finished"]
    assert len(done) == raw["search"]["num_samples"]
    labels = [v["schedule"] for v in done]
    assert len(set(labels)) == len(labels)  # no finished sample was asked again
