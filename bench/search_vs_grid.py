"""The search against the grid on the same spec and corpus: does the searcher (Optuna's
multi-objective TPE with schedule-aware early stopping) reach a schedule as good as the
grid's best while training fewer tokens?

    python bench/search_vs_grid.py [--spec configs/search.yaml] [--results /tmp/svg]

The grid crosses the search space's shapes with a grid over its parameters (ramp rates
0.25 / 0.5 / 0.75 / 1 for the ramps, root degree 1.5 / 2 / 3 / 4, switch 0.5 / 0.75 / 0.9
for two stages; l_min is the spec's, a grid cannot vary it per schedule); both run the
spec's reference and controls. Prints the grid's
best far_loss with its 95% interval, the search's best, and the training tokens each
spent (every trial, fixed ones included), and the ratio."""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sweep.analysis.aggregate import aggregate
from sweep.analysis.paired import paired_difference


def grid_of(raw: dict) -> dict:
    g = copy.deepcopy(raw)
    space = g.pop("search")["space"]
    ramps = [s for s in space.get("shapes", []) if s not in ("two_stage", "root")]
    shapes: list = [g["schedules"]["reference"], *ramps]
    if "root" in space.get("shapes", []):
        shapes.append({"shape": "root", "degree": [1.5, 2.0, 3.0, 4.0]})
    if "two_stage" in space.get("shapes", []):
        shapes.append({"shape": "two_stage", "switch": [0.5, 0.75, 0.9]})
    g["schedules"]["shapes"] = shapes
    g["schedules"]["ramp_rates"] = [0.25, 0.5, 0.75, 1.0]
    g["name"] = raw["name"] + "-grid"
    return g


def run(raw: dict, results: Path) -> tuple[float, Path]:
    path = results / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(path), "--results", str(results)],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return time.time() - t0, results / raw["name"]


def spent(summary) -> int:
    return sum(t.record.tokens_trained or 0 for t in summary.trials)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="configs/search.yaml")
    ap.add_argument("--results", default="/tmp/search-vs-grid")
    ap.add_argument("--analyse", action="store_true", help="read --results, run nothing")
    a = ap.parse_args()
    raw = yaml.safe_load(Path(a.spec).read_text())
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    if a.analyse:
        wall_g = wall_s = float("nan")
        gdir, sdir = results / grid_of(raw)["name"], results / raw["name"]
    else:
        wall_g, gdir = run(grid_of(raw), results)
        wall_s, sdir = run(raw, results)
    g, s = aggregate(gdir), aggregate(sdir)
    cands = [r for r in g.schedules if r["role"] == "candidate" and "far_loss" in r]
    best = min(cands, key=lambda r: r["far_loss"])
    ci = best.get("far_loss_ci") or {}
    samples = [
        r
        for r in s.schedules
        if r["role"] == "candidate" and "far_loss" in r and r["trial_ids"][0].startswith("q")
    ]
    sbest = min(samples, key=lambda r: r["far_loss"])
    within = ci.get("hi") is not None and sbest["far_loss"] <= ci["hi"]
    tg, ts = spent(g), spent(s)
    stopped = sum(t.status == "stopped" for t in s.trials)
    print(f"grid:   {len(g.trials)} trials, {tg:,} tokens, {wall_g / 60:.1f} min")
    print(
        f"        best {best['schedule']} far_loss {best['far_loss']:.4f} "
        f"[{ci.get('lo', float('nan')):.4f}, {ci.get('hi', float('nan')):.4f}]"
    )
    print(
        f"search: {len(s.trials)} trials ({stopped} stopped at a rung), {ts:,} tokens, "
        f"{wall_s / 60:.1f} min"
    )
    print(f"        best {sbest['schedule']} far_loss {sbest['far_loss']:.4f}")
    # Both sweeps evaluate the same windows: the two bests compared paired, which is
    # stricter than the grid best's own interval (that one carries the windows' spread).
    by_id = {t.id: t for t in [*g.trials, *s.trials]}
    iv = paired_difference(
        [by_id[i] for i in sbest["trial_ids"]], [by_id[i] for i in best["trial_ids"]], "far_loss"
    )
    if iv is not None:
        print(
            f"        search best - grid best, paired on the same windows: {iv.mean:+.4f} "
            f"[{iv.lo:+.4f}, {iv.hi:+.4f}]"
        )
    print(
        f"tokens search/grid {ts / tg:.2f}; the search's best is "
        + ("within" if within else "NOT within")
        + " the grid best's interval"
    )


if __name__ == "__main__":
    main()
