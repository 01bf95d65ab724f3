"""Four one-core trials as a Ray Tune sweep (two at a time on a 2-core machine) against
the same four trials run one after another as plain processes (`sweep trial`, no Ray).

    python bench/sweep_vs_serial.py [--tokens 655360]

Prints both wall times and their ratio, Ray's start-up time, and each trial's scheduling
overhead in the sweep (driver start to first training step) against the plain process's
(process start to first training step)."""

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=655360)
    a = ap.parse_args()
    spec = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    spec["name"] = "bench"
    spec["budget"]["tokens"] = a.tokens
    spec["schedules"]["shapes"] = ["constant", "two_stage", "linear", "geometric"]
    spec["schedules"]["ramp_rates"] = [0.5]
    spec["wandb"]["mode"] = "disabled"
    spec["resources"].update(cpus_per_worker=1, workers_per_trial=1, max_concurrent_trials=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(spec))
        ids = ["constant-s0", "two_stage-s0", "linear-r0.5-s0", "geometric-r0.5-s0"]

        t0 = time.perf_counter()
        for tid in ids:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sweep",
                    "trial",
                    str(path),
                    "--trial",
                    tid,
                    "--results",
                    f"{tmp}/serial",
                ],
                check=True,
                capture_output=True,
            )
        serial = time.perf_counter() - t0

        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "sweep", "run", str(path), "--results", f"{tmp}/sweep"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        swept = time.perf_counter() - t0
        ray_start = float(re.search(r"started Ray locally in ([\d.]+)s", out).group(1))

        def setup(kind: str) -> list[float]:
            recs = [
                json.loads(p.read_text())
                for p in Path(tmp, kind, "bench", "trials").glob("*/record.json")
            ]
            return [r["timings"]["train_start"] for r in recs]

        sweep_setup, serial_setup = setup("sweep"), setup("serial")
    print(f"4 trials x {a.tokens} tokens, one core each")
    print(
        f"serial plain processes: {serial:.1f}s; Ray Tune sweep (2 at a time): {swept:.1f}s; "
        f"ratio {swept / serial:.2f}"
    )
    print(
        f"Ray start {ray_start:.1f}s; per-trial set-up to first step: sweep median "
        f"{statistics.median(sweep_setup):.1f}s vs plain process "
        f"{statistics.median(serial_setup):.1f}s (imports, corpus, DeepSpeed, W&B)"
    )


if __name__ == "__main__":
    main()
