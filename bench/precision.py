"""bf16 against fp32 training on the CPU, DeepSpeed in the loop: the same trial (the
sweep's own `sweep trial` path: Ray aside, everything a sweep runs) at
`deepspeed.precision: fp32` and `bf16` (DeepSpeed's torch_autocast: bf16 matmuls, fp32
weights, optimizer and loss), for several seeds, the order alternating per seed.

    python bench/precision.py [--spec configs/local.yaml] [--schedule constant] [--seeds 0 1 2]

Prints training tokens/s of each (median over seeds) and their ratio, then whether the
curves agree within seed noise: for each metric the bf16 - fp32 difference at the same
seed against the spread of fp32 over seeds, and the training-loss curves' RMS difference
(same seed, other precision) against the RMS difference between two fp32 seeds."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml


def run_trial(spec_path: Path, trial: str, results: Path) -> dict:
    cmd = [sys.executable, "-m", "sweep", "trial", str(spec_path), "--trial", trial]
    subprocess.run([*cmd, "--results", str(results)], check=True, capture_output=True)
    name = yaml.safe_load(spec_path.read_text())["name"]
    return json.loads((results / name / "trials" / trial / "record.json").read_text())


def rms(a, b) -> float:
    n = min(len(a), len(b))
    return float(np.sqrt(np.mean((np.asarray(a[:n]) - np.asarray(b[:n])) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="configs/local.yaml")
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()
    base = yaml.safe_load(Path(a.spec).read_text())
    recs: dict[str, dict[int, dict]] = {"fp32": {}, "bf16": {}}
    with tempfile.TemporaryDirectory() as tmp:
        specs = {}
        for prec in recs:
            s = dict(base, name=f"prec-{prec}", seeds=a.seeds)
            s["deepspeed"] = {**base.get("deepspeed", {}), "precision": prec}
            specs[prec] = Path(tmp) / f"{prec}.yaml"
            specs[prec].write_text(yaml.safe_dump(s))
        for i, seed in enumerate(a.seeds):
            order = ["fp32", "bf16"] if i % 2 == 0 else ["bf16", "fp32"]
            for prec in order:
                r = run_trial(specs[prec], f"{a.schedule}-s{seed}", Path(tmp) / "results")
                recs[prec][seed] = r
                m = r["metrics"]
                print(
                    f"{prec} seed {seed}: {r['tokens_trained'] / r['train_wall_s']:,.0f} "
                    f"tokens/s, id_loss {m['id_loss']:.4f}, far_loss {m['far_loss']:.4f}",
                    flush=True,
                )
    tps = {
        p: statistics.median(r["tokens_trained"] / r["train_wall_s"] for r in rs.values())
        for p, rs in recs.items()
    }
    print(
        f"\ntraining tokens/s (median of {len(a.seeds)}): fp32 {tps['fp32']:,.0f}, "
        f"bf16 {tps['bf16']:,.0f}, ratio bf16/fp32 {tps['bf16'] / tps['fp32']:.2f}"
    )
    agree = True
    for key in ("id_loss", "near_loss", "far_loss"):
        fp = np.array([recs["fp32"][s]["metrics"][key] for s in a.seeds])
        bf = np.array([recs["bf16"][s]["metrics"][key] for s in a.seeds])
        diff = bf - fp
        noise = float(np.std(fp, ddof=1)) if len(fp) > 1 else float("nan")
        ok = bool(np.all(np.abs(diff) <= noise))
        agree &= ok
        print(
            f"{key}: bf16 - fp32 per seed {', '.join(f'{d:+.4f}' for d in diff)}; "
            f"fp32 seed sd {noise:.4f} -> {'within' if ok else 'OUTSIDE'} seed noise"
        )
    loss = {
        p: {s: [h["loss"] for h in r["history"]] for s, r in rs.items()} for p, rs in recs.items()
    }
    same_seed = statistics.median(rms(loss["bf16"][s], loss["fp32"][s]) for s in a.seeds)
    seeds = a.seeds
    other_seed = statistics.median(
        rms(loss["fp32"][x], loss["fp32"][y]) for i, x in enumerate(seeds) for y in seeds[i + 1 :]
    )
    curve = {p: {s: r["curve"] for s, r in rs.items()} for p, rs in recs.items()}
    c_same = statistics.median(rms(curve["bf16"][s], curve["fp32"][s]) for s in seeds)
    c_other = statistics.median(
        rms(curve["fp32"][x], curve["fp32"][y]) for i, x in enumerate(seeds) for y in seeds[i + 1 :]
    )
    print(
        f"training loss curve RMS difference: bf16 vs fp32 same seed {same_seed:.4f}, "
        f"fp32 seed vs seed {other_seed:.4f} (ratio {same_seed / other_seed:.2f})"
    )
    print(
        f"per-position eval curve RMS difference: bf16 vs fp32 same seed {c_same:.4f}, "
        f"fp32 seed vs seed {c_other:.4f} (ratio {c_same / c_other:.2f})"
    )
    agree &= same_seed <= other_seed and c_same <= c_other
    print("verdict: bf16 " + ("agrees with fp32 within seed noise" if agree else "DIFFERS"))


if __name__ == "__main__":
    main()
