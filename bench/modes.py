"""Training tokens/s of each way of making sequences short (schedules.modes) at the same
schedule, measured side by side: reshape, truncate, window and doc_buckets train the
same model on the same corpus through the trial's own step code (batcher, document rows,
window mask, loss), steps drawn evenly over the whole plan, the modes' order rotated
every repeat so that machine noise falls on all of them alike.

    python bench/modes.py [--spec configs/local.yaml] [--shape linear] [--rate 1]
                          [--steps 48] [--repeats 3] [--threads 1]

Prints, per mode, tokens per step, median tokens/s over the repeats and its ratio to
reshape. Training FLOPs per token are printed beside it: on CPU (SDPA with a mask) window
mode scores every key of its l_max rows, so it cannot be faster than reshape here; a
block-sparse kernel (FlexAttention on CUDA) is what lets a window save time."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from sweep.config import schedules, spec
from sweep.train import data
from sweep.train.model import build, non_embedding_params
from sweep.train.trial import token_loss_sum

MODES = ("reshape", "truncate", "window", "doc_buckets")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="configs/local.yaml")
    ap.add_argument("--shape", default="linear")
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=48, help="steps timed per mode and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sw = spec.load(a.spec)
    s, b = sw.schedules, sw.budget
    base = schedules.ScheduleSpec(
        a.shape, s.l_min, s.l_max, ramp_rate=a.rate, multiple_of=s.multiple_of
    )
    corpus = data.load_split(sw.data)
    tok = data.tokenizer_for(sw.data, corpus.train["text"])
    plans = {
        m: schedules.plan(dataclasses.replace(base, mode=m), b.tokens, b.tokens_per_step)
        for m in MODES
    }
    stream, _ = data.pack_train_stream(corpus.train, tok, 2 * b.tokens + 1, 0)
    pick = np.linspace(0, plans["reshape"].steps - 1, a.steps).round().astype(int)
    torch.manual_seed(0)
    model = build(sw.model, tok.vocab_size)
    n_params = non_embedding_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run(mode: str) -> tuple[int, float]:
        p = plans[mode]
        rows_of = (
            data.DocRows(stream, tok.eos_id) if mode == "doc_buckets" else data.Batcher(stream)
        )
        tokens, t0 = 0, time.perf_counter()
        for k in pick:
            L, rows, tail, w = (int(v[k]) for v in (p.lengths, p.rows, p.tails, p.windows))
            x, y = rows_of.next(L, rows, tail)
            loss = token_loss_sum(model, x, y, np.arange(len(x)), "cpu", None, w)
            (loss / max(1, rows * L + tail)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens += rows * L + tail
        return tokens, time.perf_counter() - t0

    run("reshape")  # warm-up: allocator, kernels
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(a.repeats):
        order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
        for m in order:
            tokens, sec = run(m)
            rates[m].append(tokens / sec)
    print(
        f"{a.shape} r{a.rate:g}, l_max {s.l_max}, {b.tokens_per_step} tokens/step, {a.steps} "
        f"steps spread over the plan, {a.repeats} repeats, {a.threads} thread(s)"
    )
    print(
        f"{'mode':<12} {'tokens/step':>12} {'tokens/s':>10} {'vs reshape':>11} {'GFLOP/token':>12}"
    )
    ref = statistics.median(rates["reshape"])
    for m in MODES:
        p = plans[m]
        med = statistics.median(rates[m])
        fl = p.flops(n_params, sw.model.n_layers, sw.model.d_model) / p.total_tokens
        print(
            f"{m:<12} {p.total_tokens / p.steps:>12.0f} {med:>10.0f} {med / ref:>11.2f} "
            f"{fl / 1e9:>12.5f}"
        )


if __name__ == "__main__":
    main()
