"""Training throughput of the btlm-proxy against transformers' Falcon with ``alibi=True``
and SDPA attention at the same width, depth, heads and batch (fp32, CPU threads as given),
and model FLOPs utilisation of the local preset against this machine's measured matmul
peak (fp32 and bf16).

    python bench/throughput.py [--threads 1] [--lengths 256,1024] [--tokens 8192]

Each configuration: 2 warm-up steps, then the median of --repeats timed optimizer steps.
Prints tokens/s of each model and their ratio per sequence length."""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import FalconConfig, FalconForCausalLM

from sweep.config import schedules, spec
from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM, non_embedding_params


def step_seconds(model, rows: int, L: int, repeats: int, dtype=torch.float32) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 256, (rows, L))
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(dtype, n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lengths", default="256,1024")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, nl, nh = a.d_model, a.n_layers, a.n_heads
    proxy = BtlmProxyForCausalLM(
        BtlmProxyConfig(vocab_size=264, d_model=d, n_layers=nl, n_heads=nh, mup_base_width=d)
    )
    falcon = FalconForCausalLM(
        FalconConfig(
            vocab_size=264,
            hidden_size=d,
            num_hidden_layers=nl,
            num_attention_heads=nh,
            alibi=True,
            bias=False,
            new_decoder_architecture=False,
            parallel_attn=False,
            attn_implementation="sdpa",
        )
    )
    print(f"width {d}, depth {nl}, heads {nh}, {a.tokens} tokens/step, {a.threads} thread(s)")
    print(f"{'L':>6} {'btlm-proxy tok/s':>17} {'falcon-alibi tok/s':>19} {'ratio':>6}")
    for L in (int(x) for x in a.lengths.split(",")):
        rows = max(1, a.tokens // L)
        tp = rows * L / step_seconds(proxy, rows, L, a.repeats)
        tf = rows * L / step_seconds(falcon, rows, L, a.repeats)
        print(f"{L:>6} {tp:>17.0f} {tf:>19.0f} {tp / tf:>6.2f}")

    # MFU of the local preset's model: achieved FLOP/s (Kaplan, attention included) over the
    # matmul peak measured here, in fp32 and bf16 (autocast).
    local = spec.load("configs/local.yaml")
    m = BtlmProxyForCausalLM(
        BtlmProxyConfig(
            vocab_size=264,
            d_model=local.model.d_model,
            n_layers=local.model.n_layers,
            n_heads=local.model.n_heads,
            mup_base_width=local.model.mup_base_width,
        )
    )
    L = local.schedules.l_max
    rows = local.budget.tokens_per_step // L
    const = schedules.ScheduleSpec("constant", L, L)
    plan = schedules.plan(const, rows * L, rows * L)
    flops = plan.flops(non_embedding_params(m), local.model.n_layers, local.model.d_model)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        achieved = flops / step_seconds(m, rows, L, a.repeats, dtype)
        peak = matmul_peak(dtype)
        print(
            f"local preset {name}: {achieved / 1e9:.1f} GFLOP/s achieved, matmul peak "
            f"{peak / 1e9:.1f} GFLOP/s, MFU {100 * achieved / peak:.1f}%"
        )


if __name__ == "__main__":
    main()
