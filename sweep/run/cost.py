"""What a sweep costs before it runs: a trial's parameters and training FLOPs (from its
spec, without building the model), the order trials run in, and the dry run's table of
trials with the time each is estimated to take on this machine."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import numpy as np
import psutil

from sweep.config import schedules
from sweep.config.spec import SweepSpec, TrialSpec


def fmt_tokens(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def non_embedding_params_of_config(m) -> int:
    """N of a ``ModelSpec`` without building it (no torch on the driver): exact for the
    btlm-proxy (per layer qkv and output 4 d^2, SwiGLU 3 d d_ff, two LayerNorms 4 d; a
    final LayerNorm 2 d; tests/unit/test_orchestrate.py checks it against
    ``sweep.train.model.non_embedding_params`` of the built model), Kaplan's
    12 n_layers d^2 for a transformers architecture."""
    if m.arch != "btlm-proxy":
        return 12 * m.n_layers * m.d_model**2
    d_ff = 32 * math.ceil(m.ffn_mult * m.d_model / 32)  # as BtlmProxyConfig.d_ff
    return m.n_layers * (4 * m.d_model**2 + 3 * m.d_model * d_ff + 4 * m.d_model) + 2 * m.d_model


def sparse_attention(spec: SweepSpec) -> bool:
    """Whether window mode's masked keys are skipped: only under a block-sparse kernel
    (FlexAttention, the proxy's default on CUDA); SDPA with a mask scores every key."""
    m = spec.model
    return m.arch == "btlm-proxy" and (
        m.attention == "flex" or (m.attention == "auto" and spec.resources.gpus_per_worker > 0)
    )


def trial_flops(t: TrialSpec) -> float:
    """Training FLOPs of a trial (Kaplan, attention included): what the dry run shows and
    what the sweep orders its trials by."""
    m = t.sweep.model
    return t.plan().flops(
        non_embedding_params_of_config(m), m.n_layers, m.d_model, sparse=sparse_attention(t.sweep)
    )


def longest_first(trials: list[TrialSpec]) -> list[TrialSpec]:
    """Trials by estimated training FLOPs, largest first (LPT scheduling): packed k at a
    time, a long trial then never runs alone at the end while the other slots idle.
    Ties keep the spec's order."""
    return sorted(trials, key=trial_flops, reverse=True)


def trial_overhead_s(spec: SweepSpec) -> float:
    """Start of a trial to its first step, measured on the 2-core reference machine
    (bench/sweep_vs_serial.py): imports, corpus, DeepSpeed and W&B in the Tune trial's
    process (~5 s; under 1 s when Tune reuses a warm one), plus ~15 s to start a Ray
    Train worker group when a trial has several workers."""
    return 5.0 if spec.resources.workers_per_trial == 1 else 20.0


def measure_step_seconds(spec: SweepSpec, model, steps: int = 2) -> float:
    """Wall seconds of one optimizer step at l_max on this machine, measured with the
    spec's model and the threads one worker gets (a warm-up step, then ``steps`` timed)."""
    # deferred: the offline commands import this module and must not pay for torch
    import torch

    # deferred: evaluate imports torch at its top (same reason)
    from sweep.train.evaluate import cpu_precision

    torch.set_num_threads(spec.resources.cpus_per_worker)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    L = spec.schedules.l_max
    rows = max(1, spec.budget.tokens_per_step // L // spec.resources.workers_per_trial)
    x = torch.randint(0, 256, (rows, L))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with cpu_precision(spec):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure_eval_seconds(spec: SweepSpec, model) -> float:
    """Wall seconds of a trial's final evaluation on this machine: one batch of the
    per-position eval at E and the probes on one sequence, timed with the spec's threads
    and precision, scaled to ``eval.sequences`` and ``eval.probe_sequences``."""
    # deferred: the offline commands import this module and must not pay for torch
    import torch

    # deferred: evaluate imports torch at its top (same reason)
    from sweep.train import evaluate

    torch.set_num_threads(spec.resources.cpus_per_worker)
    ev, L, E = spec.eval, spec.schedules.l_max, spec.eval_length
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 256, (ev.batch_size, E + 1))
    with evaluate.cpu_precision(spec):
        t0 = time.perf_counter()
        losses = evaluate.per_position_losses(model, seqs, ev.batch_size, "cpu")
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate.context_probes(model, seqs[:1], np.ones(1, bool), losses[:1], ev, L, "cpu")
        t_probe = time.perf_counter() - t0
    return t_eval * ev.sequences / ev.batch_size + t_probe * min(ev.probe_sequences, ev.sequences)


MEASURE_SHARE = 0.5  # of the available memory a dry run's timing measurement may take


def measurement_bytes(spec: SweepSpec, vocab: int = 257) -> int:
    """An upper bound on the memory of the dry run's two timing measurements, whichever
    is larger: one training step at l_max (attention scores, softmax and bias per layer
    kept for the backward pass, ~20 activations of width d_model per layer, logits) and
    one evaluation batch at E (attention in chunks of evaluate.CHUNK query positions)."""
    # deferred: evaluate imports torch at its top; the offline commands must not pay for it
    from sweep.train.evaluate import CHUNK

    m, r = spec.model, spec.resources
    L, E = spec.schedules.l_max, spec.eval_length
    rows = max(1, spec.budget.tokens_per_step // L // r.workers_per_trial)
    f32 = 4
    step = rows * L * f32 * (3 * m.n_heads * L * m.n_layers + 20 * m.d_model * m.n_layers)
    step += 3 * rows * L * vocab * f32
    b = spec.eval.batch_size
    ev = b * f32 * (3 * m.n_heads * min(CHUNK, E) * E + 10 * E * m.d_model + 3 * E * vocab)
    return int(max(step, ev))


def available_bytes() -> int:
    return int(psutil.virtual_memory().available)


def measured_seconds(spec: SweepSpec, measure: bool) -> tuple[float, float, str]:
    """(one step at l_max, a trial's evaluation) measured on this machine, NaN when not
    measured, and why not."""
    if measure and spec.resources.gpus_per_worker > 0:
        # deferred: the offline commands import this module and must not pay for torch
        import torch

        # A GPU-sized step on this machine's CPU would take minutes and say nothing.
        measure = torch.cuda.is_available()
    unmeasured = "the spec asks for GPUs; this machine has none"
    need, have = measurement_bytes(spec), available_bytes()
    if measure and need > MEASURE_SHARE * have:
        # what the measurement cannot afford it does not try: it would take the machine down
        measure = False
        unmeasured = (
            f"measuring would need ~{need / 2**30:.1f} GiB, over {MEASURE_SHARE:.0%} of "
            f"the {have / 2**30:.1f} GiB available here"
        )
    if not measure:
        return float("nan"), float("nan"), unmeasured
    # deferred: model imports torch at its top (same reason)
    from sweep.train.model import build

    model = build(spec.model, 257)
    return measure_step_seconds(spec, model), measure_eval_seconds(spec, model), unmeasured


def step_flops_at_l_max(spec: SweepSpec) -> float:
    """FLOPs of one step at l_max: what the measured step time is scaled by."""
    m, b = spec.model, spec.budget
    const = schedules.plan(
        schedules.ScheduleSpec("constant", spec.schedules.l_min, spec.schedules.l_max),
        b.tokens_per_step,
        b.tokens_per_step,
    )
    return const.flops(non_embedding_params_of_config(m), m.n_layers, m.d_model)


def trial_rows(spec: SweepSpec, step_s: float, eval_s: float, out: TextIO) -> list[dict]:
    """The dry run's table: one printed line and one row per trial."""
    flops_per_step_at_lmax = step_flops_at_l_max(spec)
    overhead = trial_overhead_s(spec)
    rows = []
    trials = spec.trials()
    w = max(24, *(len(t.trial_id) for t in trials))
    print(
        f"{'trial':<{w}} {'mode':<11} {'steps':>6} {'tokens':>10} {'at l_max':>9} "
        f"{'GFLOPs':>9} {'est. s':>7}  tokens at each length (window, in window mode)",
        file=out,
    )
    for t in trials:
        p, flops = t.plan(), trial_flops(t)
        est = overhead + step_s * flops / flops_per_step_at_lmax + eval_s
        rows.append(
            {
                "trial_id": t.trial_id,
                "mode": t.schedule.mode,
                "steps": p.steps,
                "tokens": p.total_tokens,
                "flops": flops,
                "est_s": est,
            }
        )
        by_len = ", ".join(f"{k}:{fmt_tokens(v)}" for k, v in p.tokens_by_length().items())
        print(
            f"{t.trial_id:<{w}} {t.schedule.mode:<11} {p.steps:>6} {p.total_tokens:>10} "
            f"{fmt_tokens(p.tokens_by_length().get(t.schedule.l_max, 0)):>9} "
            f"{flops / 1e9:>9.1f} {est:>7.0f}  {by_len}",
            file=out,
        )
    return rows


def search_seconds(spec: SweepSpec, rows: list[dict], out: TextIO) -> float:
    """A search's share of the estimate (0 without one), and its line."""
    if spec.search is None:
        return 0.0
    # a sample costs at most a reference trial (every search shape trains the budget)
    q, ref = spec.search, max(r["est_s"] for r in rows)
    slots = spec.resources.max_concurrent_trials
    print(
        f"+ search: {q.num_samples} sampled schedules ({q.sampler} on "
        f"{' and '.join(q.objectives)}), each at most {fmt_tokens(spec.budget.tokens)} tokens "
        f"and ~{ref:.0f}s" + (", fewer when stopped at a rung" if q.early_stop.enabled else ""),
        file=out,
    )
    return q.num_samples * ref / min(q.max_concurrent, slots)


def dry_run(spec: SweepSpec, out: TextIO = sys.stdout, measure: bool = True) -> list[dict]:
    """List the trials with token budget, FLOPs and estimated time here; start nothing.
    Time is the measured step time at l_max scaled by each trial's FLOPs, plus the
    per-trial start-up overhead, with trials packed ``max_concurrent_trials`` at a time."""
    step_s, eval_s, unmeasured = measured_seconds(spec, measure)
    rows = trial_rows(spec, step_s, eval_s, out)
    slots = spec.resources.max_concurrent_trials
    total = sum(r["est_s"] for r in rows) / min(slots, len(rows))
    total += search_seconds(spec, rows, out)
    when = (
        f"estimated {total / 60:.1f} min here at {min(slots, len(rows))} at a time "
        f"(one step at l_max measured at {step_s:.2f}s, a trial's evaluation at {eval_s:.0f}s)"
        if math.isfinite(step_s)
        else f"time not estimated ({unmeasured})"
    )
    print(
        f"{len(rows)} trials; {sum(r['flops'] for r in rows) / 1e12:.2f} TFLOPs in all; "
        f"{when}; nothing started (--dry-run)",
        file=out,
    )
    return rows
