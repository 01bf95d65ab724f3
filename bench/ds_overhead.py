"""What DeepSpeed costs a trial's training step: the trial's own step (DeepSpeed ZeRO
engine, gloo process group of one, the trial's loss and accumulation code) against a
plain PyTorch loop over the same model, optimizer groups and batches, side by side, the
order alternating every repeat.

    python bench/ds_overhead.py [--spec configs/local.yaml] [--steps 40] [--repeats 5]

Prints the median tokens/s of each and their ratio (DeepSpeed / plain; 1.00 = no
overhead)."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sweep.config import spec
from sweep.train import data
from sweep.train.dsconfig import deepspeed_config
from sweep.train.model import build, param_groups
from sweep.train.sessions import local_session
from sweep.train.trial import token_loss_sum


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="configs/local.yaml")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sw = spec.load(a.spec)
    import deepspeed

    local_session()  # the trial's process group of one (gloo)
    L, tps = sw.schedules.l_max, sw.budget.tokens_per_step
    rows = tps // L
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 256, a.steps * tps + 1)
    batches = [data.Batcher(stream, k * tps).next(L, rows, 0) for k in range(a.steps)]

    def make():
        torch.manual_seed(0)
        model = build(sw.model, 257)
        groups = param_groups(model, sw.optim.lr, sw.optim.weight_decay)
        return model, torch.optim.AdamW(groups, betas=(sw.optim.beta1, sw.optim.beta2))

    model, opt = make()
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=deepspeed_config(sw, 1, False)
    )
    plain, plain_opt = make()
    every = np.arange(rows)

    def run_deepspeed() -> float:
        t0 = time.perf_counter()
        for x, y in batches:
            loss = token_loss_sum(engine, x, y, every, "cpu", None)
            engine.backward(loss / tps)
            engine.step()
        return a.steps * tps / (time.perf_counter() - t0)

    def run_plain() -> float:
        t0 = time.perf_counter()
        for x, y in batches:
            loss = token_loss_sum(plain, x, y, every, "cpu", None)
            (loss / tps).backward()
            torch.nn.utils.clip_grad_norm_(plain.parameters(), sw.optim.grad_clip)
            plain_opt.step()
            plain_opt.zero_grad(set_to_none=True)
        return a.steps * tps / (time.perf_counter() - t0)

    run_deepspeed(), run_plain()  # warm-up
    ds, pt = [], []
    for r in range(a.repeats):
        order = (run_deepspeed, run_plain) if r % 2 == 0 else (run_plain, run_deepspeed)
        for fn in order:
            (ds if fn is run_deepspeed else pt).append(fn())
    d, p = statistics.median(ds), statistics.median(pt)
    print(
        f"l_max {L}, {tps} tokens/step, {a.steps} steps x {a.repeats} repeats, "
        f"ZeRO stage {sw.deepspeed.zero_stage}, {a.threads} thread(s)"
    )
    print(f"DeepSpeed engine {d:,.0f} tokens/s, plain PyTorch {p:,.0f} tokens/s, ratio {d / p:.3f}")


if __name__ == "__main__":
    main()
