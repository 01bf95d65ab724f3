"""Aggregating a large sweep: 200 trial records (E = 4,096, 64 eval sequences each)
through ``aggregate`` + ``write_summary`` + ``write_report``, against reading the same
records alone (the floor any aggregator pays).

    python bench/aggregate_200.py [--trials 200] [--repeats 3]

Prints the median seconds of each and their ratio."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sweep import aggregate, spec
from sweep.records import read_record, write_record
from sweep.report import write_report

ROOT = Path(__file__).resolve().parents[1]


def make_records(d: Path, n: int) -> None:
    base = spec.load(ROOT / "configs" / "smoke.yaml").to_dict()
    base["schedules"].update(l_max=1024, l_min=128, multiple_of=128, ramp_rates=[1.0])
    base["budget"]["tokens_per_step"] = 8192
    sw = spec.parse(base)
    rng = np.random.default_rng(0)
    L, E, n_seq = 1024, 4096, 64
    shapes = ["constant", "linear", "root", "geometric", "exponential", "cosine", "reverse"]
    for i in range(n):
        shape = shapes[i % len(shapes)]
        sched = spec.ScheduleSpec(
            shape, 128, 1024, ramp_rate=round(0.05 + (i // 7) * 0.03, 3), multiple_of=128
        )
        t = spec.TrialSpec(f"{sched.label}-s{i}", i, sched, sw)
        losses = 3.0 + 0.1 * rng.standard_normal((n_seq, E))
        write_record(
            d,
            t,
            "finished",
            tokens_trained=sw.budget.tokens,
            wall_s=1.0,
            curve=losses.mean(0).round(5).tolist(),
            per_sequence={
                "id_loss": losses[:, :L].mean(1).tolist(),
                "near_loss": losses[:, L // 2 : L].mean(1).tolist(),
                "far_loss": losses[:, L:].mean(1).tolist(),
            },
            metrics={"flops": 1e12 * (1 + 0.01 * i)},
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_records(d, a.trials)
        full, read = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for p in d.glob("trials/*/record.json"):
                read_record(p)
            read.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            s = aggregate.aggregate(d)
            aggregate.write_summary(s)
            write_report(s)
            full.append(time.perf_counter() - t0)
        size = sum(p.stat().st_size for p in d.glob("trials/*/record.json")) / 2**20
    mf, mr = statistics.median(full), statistics.median(read)
    print(
        f"{a.trials} records ({size:.0f} MiB): aggregate+summary+report median {mf:.2f}s, "
        f"reading the records alone {mr:.2f}s, ratio {mf / mr:.1f}x"
    )
    print(json.dumps({"trials": a.trials, "aggregate_s": mf, "read_s": mr}))


if __name__ == "__main__":
    main()
