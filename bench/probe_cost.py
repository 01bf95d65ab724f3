"""What the context-use probes (sliding-window ctx_gain and the copy probe) cost against
the whole trial, from the timings every trial record carries.

    python bench/probe_cost.py [results/local]

Without a results directory of finished trials it runs the main job's reference trial
(`sweep trial configs/local.yaml --trial constant-s0`) into a temporary directory first.
Prints, per trial, the probe time, the per-position evaluation time and the trial's wall
time, the probe share of the wall time, and the median share (target: <= 25%)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def records(d: Path) -> list[dict]:
    out = []
    for p in sorted(d.glob("trials/*/record.json")):
        rec = json.loads(p.read_text())
        if rec.get("status") == "finished" and "probe_wall_s" in rec:
            out.append(rec)
    return out


def main() -> int:
    d = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "local"
    recs = records(d) if d.is_dir() else []
    if not recs:
        tmp = Path(tempfile.mkdtemp(prefix="probe-cost-"))
        cmd = [sys.executable, "-m", "sweep", "trial", str(ROOT / "configs" / "local.yaml")]
        subprocess.run([*cmd, "--trial", "constant-s0", "--results", str(tmp)], check=True)
        recs = records(tmp / "local")
    shares = []
    print(f"{'trial':<24} {'probes s':>9} {'eval s':>7} {'train s':>8} {'wall s':>7} {'share':>6}")
    for r in recs:
        share = r["probe_wall_s"] / r["wall_s"]
        shares.append(share)
        print(
            f"{r['trial_id']:<24} {r['probe_wall_s']:>9.1f} {r['eval_wall_s']:>7.1f} "
            f"{r['train_wall_s']:>8.1f} {r['wall_s']:>7.1f} {share:>6.1%}"
        )
    print(f"median probe share of a trial's wall time: {statistics.median(shares):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
