"""Analysis at scale: aggregate + summary + report of 200, 600 and 2,000 trial records,
each size in a fresh process (for its peak memory), against reading the same records
alone (the floor any aggregator pays).

    python bench/aggregate_scale.py [--sizes 200 600 2000] [--repeats 1]

Records carry the full schema a trial writes (curve and its SE, per-sequence regions and
bands, position bins, the probes, history), built by the same metric functions from
synthetic losses, at the study's shape: l_max 256, E = 16 x l_max = 4,096, 128 eval
windows, two seeds per schedule, a reference and a short-only control. Prints per size:
records, MiB on disk, median seconds (analysis, reading alone), seconds per 1,000
records, peak RSS; then the growth from the smallest to the largest size against linear.
Target: 2,000 records in <= 30 s and < 2 GB, time growing at most linearly."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
L, E, N_SEQ, SEEDS = 256, 4096, 128, 2
SHAPES = ["linear", "root", "geometric", "exponential", "cosine", "reverse"]


def schedules(n_records: int) -> list[tuple[str, float]]:
    """(shape, ramp_rate) of the reference, the control, BTLM's two stages and enough
    ramps for n records."""
    n = max(1, n_records // SEEDS - 3)
    rates = np.round(np.linspace(0.1, 1.0, -(-n // len(SHAPES))), 4)
    ramps = [(s, float(r)) for r in rates for s in SHAPES][:n]
    return [("constant", 1.0), ("short_only", 1.0), ("two_stage", 1.0), *ramps]


def make_records(d: Path, n_records: int) -> None:
    from sweep.analysis import metrics
    from sweep.analysis.records import TrialRecord, write_record
    from sweep.config import spec

    base = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())["base"]
    base["schedules"] |= {"shapes": ["constant", "two_stage", *SHAPES], "controls": ["short_only"]}
    sw = spec.parse(base | {"name": "scale", "seeds": list(range(SEEDS))})
    rng = np.random.default_rng(0)
    pos = np.arange(1, E + 1)
    text = 0.3 * rng.standard_normal(E)  # the windows' text: shared by every model
    edges = metrics.position_edges(E, L, (L // 8, L))
    for shape, rate in schedules(n_records):
        sched = spec.ScheduleSpec(
            shape, 32, L, ramp_rate=rate, multiple_of=32, control=shape == "short_only"
        )
        level = 2.0 + 0.01 * rng.standard_normal()
        for seed in range(SEEDS):
            t = spec.TrialSpec(f"{sched.label}-s{seed}", seed, sched, sw)
            losses = (
                level + 0.5 / np.log2(pos + 1) + text
                + 0.2 * rng.standard_normal((N_SEQ, E))
            ).astype(np.float32)  # fmt: skip
            curve = losses.mean(0)
            per_seq = metrics.per_sequence(losses, L)
            write_record(d, TrialRecord.of(
                t, "finished",
                tokens_trained=sw.budget.tokens, tokens_budget=sw.budget.tokens,
                mode="reshape", token_equal=True, wall_s=600.0, train_wall_s=550.0,
                eval_wall_s=30.0, probe_wall_s=8.0, tokens_per_s=19000.0,
                n_params=400_000, n_eval_sequences=N_SEQ,
                tokens_by_length={str(L): sw.budget.tokens},
                exposure={"edges": metrics.exposure_edges(L), "counts": [1.0] * 4},
                curve=[round(float(v), 5) for v in curve],
                curve_se=[round(float(v), 5) for v in metrics.position_se(losses)],
                per_sequence={
                    **per_seq,
                    "ctx_gain": np.round(0.01 * rng.standard_normal(32), 6).tolist(),
                    "copy": np.round(0.01 * rng.standard_normal((32, 5)), 6).tolist(),
                    "context_use": np.round(0.01 + 0.01 * rng.standard_normal(N_SEQ), 6).tolist(),
                },
                position_bins={
                    "edges": edges,
                    "values": np.round(metrics.bin_means(losses, edges), 6).tolist(),
                },
                own_length=L,
                ctx_gain_curve=[round(float(v), 5) for v in 0.01 * rng.standard_normal(E - L)],
                metrics={
                    **metrics.all_metrics(curve, L),
                    "context_use": 0.01, "ctx_gain": 0.0, "flops": 3e13, "exposure_far": 0.5,
                },
                history=[
                    {"step": s, "tokens": 2048 * (s + 1), "loss": 5.0 - s / 1000, "seq_len": L}
                    for s in range(0, 5120, 20)
                ],
            ))  # fmt: skip


def measure(d: Path, repeats: int) -> dict:
    """In this process: median seconds of reading alone and of the whole analysis."""
    from sweep.analysis import aggregate
    from sweep.analysis.records import read_record
    from sweep.report.sweep_report import write_report

    full, read = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in d.glob("trials/*/record.json"):
            read_record(p)
        read.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s = aggregate.aggregate(d)
        aggregate.write_summary(s)
        write_report(s)
        full.append(time.perf_counter() - t0)
    return {
        "analysis_s": statistics.median(full),
        "read_s": statistics.median(read),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 600, 2000])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # DIR REPEATS: measure only
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(Path(a.child[0]), int(a.child[1]))))
        return 0
    rows = []
    for n in a.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "scale"
            make_records(d, n)
            files = list(d.glob("trials/*/record.json"))
            mib = sum(p.stat().st_size for p in files) / 2**20
            cmd = [sys.executable, __file__, "--child", str(d), str(a.repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            m = json.loads(out.strip().splitlines()[-1]) | {"records": len(files), "mib": mib}
        rows.append(m)
        print(
            f"{m['records']:>6} records {mib:>6.0f} MiB: analysis {m['analysis_s']:>6.1f} s "
            f"({1000 * m['analysis_s'] / m['records']:.1f} s per 1,000), reading alone "
            f"{m['read_s']:.1f} s, peak RSS {m['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        growth = hi["analysis_s"] / lo["analysis_s"]
        print(
            f"{lo['records']} -> {hi['records']} records ({hi['records'] / lo['records']:.1f}x): "
            f"time {growth:.1f}x, per record {growth * lo['records'] / hi['records']:.2f}x "
            "(<= 1 is at most linear)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
