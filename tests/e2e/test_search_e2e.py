"""A real search (Ray Tune + Optuna + DeepSpeed at smoke scale): the samples, the report,
a non-dominated front, and `sweep resume` after the driver is killed."""

import json
import time

import pytest
import yaml
from support import ROOT, kill_sweep, run_sweep, start_sweep

from sweep.analysis import aggregate, pareto
from sweep.run import search

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
    front = set(pareto.pareto_front(rows, keys))

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
    proc = start_sweep(spec, tmp_path / "res")
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


def test_a_dominated_sample_is_stopped_at_a_rung_in_a_real_search(tmp_path):
    """Tune acts on the stopper's decision in a real run: the stopped sample trained only
    to its rung, its schedule had reached l_max there, the sample that dominated it is
    better on both objectives at that rung, the sweep does not count it a failure, and the
    report and the printed table give its reason. Samples run one at a time (the seeded
    sampler and the bit-deterministic trials then give the same run every time), ramps
    reach l_max before the first rung, and the noise margin is small enough to act on the
    proxy's tiny differences."""
    from sweep.config import schedules, spec

    raw = yaml.safe_load(SPEC.read_text())
    raw["name"] = "st"
    raw["resources"]["max_concurrent_trials"] = 1
    raw["search"]["max_concurrent"] = 1
    space = {"shapes": ["linear", "root"], "ramp_rate": [0.2, 0.4], "l_min": [16, 48]}
    raw["search"]["space"] = space
    raw["search"]["early_stop"]["noise_z"] = 0.01
    f = tmp_path / "st.yaml"
    f.write_text(yaml.safe_dump(raw))
    r = run_sweep("run", f, "--results", tmp_path / "res", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = tmp_path / "res" / "st"
    got = samples(d)
    stopped = {k: v for k, v in got.items() if v["status"] == "stopped"}
    assert stopped and len(got) == raw["search"]["num_samples"]
    budget, l_max = raw["budget"]["tokens"], raw["schedules"]["l_max"]
    es = raw["search"]["early_stop"]
    for k, rec in stopped.items():
        rung = rec["rung"]
        seen = int(rung * budget)
        assert rung in es["rungs"] and rec["tokens_trained"] == seen
        t = spec.TrialSpec.from_dict(rec["config"])
        plan = t.plan()
        assert schedules.length(t.schedule, 0) < l_max  # a ramp, judged once it got there
        assert search.judgeable(plan, seen, l_max, budget, es["min_at_l_max"])
        winner = rec["reason"].split(" by ")[1].split(":")[0]
        w = next(e for e in got[winner]["evals"] if e["tokens"] == seen)
        m = rec["metrics"]
        assert w["far_loss"] < m["far_loss"] and w["id_loss"] < m["id_loss"]
        row = next(ln for ln in (d / "report.md").read_text().splitlines() if f"| {k} |" in ln)
        assert "| stopped |" in row and f"dominated at rung {rung:g}" in row
        assert f"{k} stopped: dominated at rung {rung:g}" in " ".join(r.stdout.split())
    md = (d / "report.md").read_text()
    assert f"{len(stopped)} stopped at a rung" in md
