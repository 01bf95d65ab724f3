"""Compiled training on the CPU: the trial's step through the DeepSpeed ZeRO engine,
eager against ``engine.compile()`` (torch.compile, inductor), in float32 and in bf16
(DeepSpeed's torch_autocast), on configs/study.yaml's model and tokens per step.

    python bench/compile.py [--steps 60] [--precisions fp32 bf16]

The steps follow a linear ramp's plan from l_min to l_max (the study's lengths, each a
different (rows, length) shape), so the compile cost includes the recompiles a schedule
causes. For each precision it prints: the compile cost (the compiled run's wall time over
the first pass through every length, less the same steps' eager time), the steady
tokens/s of each over a second pass, their ratio, the steps after which compiling pays
back, and the largest |loss difference| between the two runs, trained from the same
initialisation on the same batches (against ~0.09 nats between seeds of the study's
trial: bench/README.md, bench/precision.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from sweep.config import spec
from sweep.train import data
from sweep.train.dsconfig import deepspeed_config
from sweep.train.model import build, param_groups
from sweep.train.sessions import local_session
from sweep.train.trial import token_loss_sum

ROOT = Path(__file__).resolve().parents[1]


def study_spec(precision: str):
    base = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())["base"]
    base["schedules"] |= {"shapes": ["linear"], "controls": []}
    base["deepspeed"]["precision"] = precision
    return spec.parse(base | {"name": "compile"})


def run(sw, lengths: list[int], compiled: bool) -> tuple[list[float], list[float]]:
    """Seconds and loss of each step of the trial's loop over ``lengths``."""
    import deepspeed

    tps = sw.budget.tokens_per_step
    torch.manual_seed(0)
    model = build(sw.model, 257)
    opt = torch.optim.AdamW(
        param_groups(model, sw.optim.lr, sw.optim.weight_decay),
        betas=(sw.optim.beta1, sw.optim.beta2),
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=deepspeed_config(sw, 1, False)
    )
    if compiled:
        engine.compile()
    stream = np.random.default_rng(0).integers(0, 256, len(lengths) * tps + 1)
    batcher = data.Batcher(stream, 0)
    secs, losses = [], []
    for length in lengths:
        rows = tps // length
        x, y = batcher.next(length, rows, 0)
        t0 = time.perf_counter()
        loss = token_loss_sum(engine, x, y, np.arange(rows), "cpu", None)
        engine.backward(loss / tps)
        engine.step()
        secs.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()) / tps)
    return secs, losses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="steady steps timed per run")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    local_session()  # the trial's process group of one (gloo)
    for precision in a.precisions:
        sw = study_spec(precision)
        s = sw.schedules
        ladder = list(range(s.l_min, s.l_max + 1, s.multiple_of))  # the linear ramp's lengths
        steady = [ladder[i * len(ladder) // a.steps] for i in range(a.steps)]
        lengths = ladder + steady  # first pass: every shape once (compiles); then steady
        eager_s, eager_loss = run(sw, lengths, False)
        comp_s, comp_loss = run(sw, lengths, True)
        n = len(ladder)
        tokens = a.steps * sw.budget.tokens_per_step
        e_tps, c_tps = tokens / sum(eager_s[n:]), tokens / sum(comp_s[n:])
        cost = sum(comp_s[:n]) - sum(eager_s[:n])
        saved = sum(eager_s[n:]) / a.steps - sum(comp_s[n:]) / a.steps
        payback = f"{cost / saved:,.0f} steps" if saved > 0 else "never (not faster)"
        diff = max(abs(p - q) for p, q in zip(eager_loss, comp_loss))
        print(
            f"{precision}: {len(ladder)} lengths {ladder[0]}-{ladder[-1]}, "
            f"{sw.budget.tokens_per_step} tokens/step, {a.threads} thread(s)\n"
            f"  compile cost {cost:.1f} s over the first pass; steady eager {e_tps:,.0f} "
            f"tokens/s, compiled {c_tps:,.0f} tokens/s, ratio {c_tps / e_tps:.2f}x; "
            f"pays back after {payback}; max |loss diff| {diff:.2e}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
