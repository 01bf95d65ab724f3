"""Four one-core trials as a Ray Tune sweep (two at a time on a 2-core machine) against
the same four trials run one after another as plain processes (`sweep trial`, no Ray),
each side ending with the same aggregation and report.

    python bench/sweep_vs_serial.py [--tokens 655360] [--repeats 1]

Prints both wall times and their ratio (median over repeats), Ray's start-up time, each
trial's set-up to its first step in both modes, where the sweep's time went, and the
training speed of a trial alone against two sharing the machine."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IDS = ["constant-s0", "two_stage-s0", "linear-r0.5-s0", "geometric-r0.5-s0"]


def sweep_cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "sweep", *args], check=True, capture_output=True, text=True
    ).stdout


def records(d: Path) -> list[dict]:
    return [
        json.loads(p.read_text()) | {"ended": p.stat().st_mtime}
        for p in d.glob("trials/*/record.json")
    ]


def once(spec: Path, tmp: Path) -> dict:
    t0 = time.time()
    for tid in IDS:
        sweep_cli("trial", str(spec), "--trial", tid, "--results", f"{tmp}/serial")
    sweep_cli("report", f"{tmp}/serial/bench")
    serial = time.time() - t0

    t0 = time.time()
    out = sweep_cli("run", str(spec), "--results", f"{tmp}/sweep")
    swept = time.time() - t0
    ser, swp = records(tmp / "serial" / "bench"), records(tmp / "sweep" / "bench")
    assert len(ser) == len(swp) == 4 and all(r["status"] == "finished" for r in ser + swp)
    return {
        "serial": serial,
        "sweep": swept,
        "ray_start": float(re.search(r"started Ray locally in ([\d.]+)s", out).group(1)),
        "trials_done": max(r["ended"] for r in swp) - t0,
        "setup_sweep": [r["timings"]["train_start"] for r in swp],
        "setup_serial": [r["timings"]["train_start"] for r in ser],
        "tps_alone": [r["tokens_per_s"] for r in ser],
        "tps_shared": [r["tokens_per_s"] for r in swp],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=655360)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    spec = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    spec["name"] = "bench"
    spec["budget"]["tokens"] = a.tokens
    spec["schedules"]["shapes"] = ["constant", "two_stage", "linear", "geometric"]
    spec["schedules"]["ramp_rates"] = [0.5]
    spec["wandb"]["mode"] = "disabled"
    spec["resources"].update(cpus_per_worker=1, workers_per_trial=1, max_concurrent_trials=2)
    runs = []
    for i in range(a.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(yaml.safe_dump(spec))
            r = once(path, Path(tmp))
        runs.append(r)
        print(
            f"run {i + 1}: serial {r['serial']:.1f}s, sweep {r['sweep']:.1f}s, "
            f"ratio {r['sweep'] / r['serial']:.3f}",
            flush=True,
        )
    med = statistics.median

    def pooled(key: str) -> float:
        return med([v for r in runs for v in r[key]])

    serial, swept = med([r["serial"] for r in runs]), med([r["sweep"] for r in runs])
    print(f"4 trials x {a.tokens} tokens, one core each; medians of {a.repeats} run(s)")
    print(
        f"serial plain processes + report: {serial:.1f}s; Ray Tune sweep (2 at a time) + "
        f"report: {swept:.1f}s; ratio {med([r['sweep'] / r['serial'] for r in runs]):.3f}"
    )
    print(
        f"sweep: Ray start {med([r['ray_start'] for r in runs]):.1f}s, last trial done at "
        f"{med([r['trials_done'] for r in runs]):.1f}s, then aggregation, report and Ray "
        f"shutdown {med([r['sweep'] - r['trials_done'] for r in runs]):.1f}s"
    )
    print(
        f"per-trial set-up to first step: sweep {pooled('setup_sweep'):.1f}s vs plain "
        f"process {pooled('setup_serial'):.1f}s (medians; a reused Tune actor skips imports)"
    )
    alone, shared = pooled("tps_alone"), pooled("tps_shared")
    print(
        f"training tokens/s: alone {alone:,.0f}, two sharing the machine {shared:,.0f} "
        f"({shared / alone:.2f}x)"
    )


if __name__ == "__main__":
    main()
