"""Peak memory of per-position evaluation versus eval length E, chunked against the
plain full-sequence forward, each (model, E, mode) measured in a fresh process.

    python bench/eval_memory.py [--d-model 32 --n-layers 1 --n-heads 2]

Prints peak RSS growth over the process's baseline, the ratio per doubling of E, and the
chunked/full ratio. Linear growth means each doubling costs at most ~2x."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def measure(d_model: int, n_layers: int, n_heads: int, E: int, chunk: int | None) -> float:
    import numpy as np
    import torch

    from sweep.train.evaluate import per_position_losses
    from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

    torch.set_num_threads(1)
    model = BtlmProxyForCausalLM(
        BtlmProxyConfig(
            vocab_size=264,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            mup_base_width=d_model,
        )
    )
    seqs = np.random.default_rng(0).integers(0, 256, (1, E + 1))
    per_position_losses(model, seqs[:, :65], 1, "cpu", chunk=chunk)  # warm-up allocations
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_position_losses(model, seqs, 1, "cpu", chunk=chunk)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # MiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layers", type=int, default=1)
    ap.add_argument("--n-heads", type=int, default=2)
    ap.add_argument("--lengths", default="2048,4096,8192,16384")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        E, chunk = json.loads(a.child)
        print(measure(a.d_model, a.n_layers, a.n_heads, E, chunk))
        return
    lengths = [int(x) for x in a.lengths.split(",")]
    rows = {}
    for mode, chunk in (("chunked", 512), ("full", None)):
        for E in lengths:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--d-model",
                    str(a.d_model),
                    "--n-layers",
                    str(a.n_layers),
                    "--n-heads",
                    str(a.n_heads),
                    "--child",
                    json.dumps([E, chunk]),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows[mode, E] = float(out.stdout.strip().splitlines()[-1])
    print(f"model d_model={a.d_model} n_layers={a.n_layers} n_heads={a.n_heads}, one sequence")
    print(
        f"{'E':>7} {'chunked MiB':>12} {'x prev':>7} {'full MiB':>10} {'x prev':>7} "
        f"{'full/chunked':>13}"
    )
    for i, E in enumerate(lengths):
        c, f = rows["chunked", E], rows["full", E]
        pc = c / rows["chunked", lengths[i - 1]] if i else float("nan")
        pf = f / rows["full", lengths[i - 1]] if i else float("nan")
        print(f"{E:>7} {c:>12.1f} {pc:>7.2f} {f:>10.1f} {pf:>7.2f} {f / max(c, 1e-9):>13.1f}")


if __name__ == "__main__":
    main()
