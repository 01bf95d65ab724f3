"""Context-length schedules: pure functions of training progress, and the exact step plan.

``length(s, f)`` maps progress ``f = tokens_seen / budget`` to a sequence length, rounded
to the nearest multiple of ``multiple_of`` and clamped to [l_min, l_max]: nearest, not
down, so that every ramp reaches l_max before f = r and trains there (rounded down, a
rate-1 linear ramp would never get past l_max - multiple_of). ``plan`` turns a schedule and a
token budget into the per-step table every trial trains on, in the schedule's mode
(``Plan``); in ``reshape`` mode each step holds exactly ``tokens_per_step`` tokens (rows =
tokens_per_step // L, plus one shorter tail row when L does not divide it), so all trials
see the same tokens per step and the same total. Each shape's L(f) before rounding is its
entry's in the shape registry (sweep/config/shapes.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweep.config.shapes import ScheduleSpec, raw_length


def length(s: ScheduleSpec, f: float, rng: np.random.Generator | None = None) -> int:
    """L(f): rounded to the nearest multiple of ``multiple_of`` (halves up) and clamped to
    [l_min, l_max]."""
    raw = raw_length(s, f, rng)
    rounded = int(math.floor(raw / s.multiple_of + 0.5 + 1e-9)) * s.multiple_of
    return max(s.l_min, min(s.l_max, rounded))


@dataclass(frozen=True)
class Plan:
    """The per-step table of one trial. Step k trains ``rows[k]`` full rows of
    ``lengths[k]`` tokens plus, when ``tails[k] > 0``, one row of ``tails[k]`` tokens;
    ``context[k]`` is the schedule's length L(f) at that step: the row length, except in
    ``window`` mode, where rows stay at l_max and L(f) is the attention window.
    ``progress[k]`` is the nominal token count at the start of step k, which positions the
    step in the schedule and the learning-rate curve (``truncate`` trains fewer tokens
    than that; every other mode exactly that many)."""

    lengths: np.ndarray
    rows: np.ndarray
    tails: np.ndarray
    context: np.ndarray
    progress: np.ndarray
    mode: str = "reshape"

    @property
    def tokens(self) -> np.ndarray:
        return self.rows * self.lengths + self.tails

    @property
    def total_tokens(self) -> int:
        return int(self.tokens.sum())

    @property
    def steps(self) -> int:
        return len(self.lengths)

    @property
    def longest(self) -> int:
        """The longest length (the window, in window mode) this plan trains at: its own
        trained length, past which it extrapolates."""
        return int(self.context[self.tokens > 0].max())

    @property
    def windows(self) -> np.ndarray:
        """Attention window per step (0: the whole row)."""
        return self.context if self.mode == "window" else np.zeros_like(self.context)

    def cumulative_tokens(self) -> np.ndarray:
        """Tokens trained before every step (length ``steps``)."""
        return np.concatenate([[0], np.cumsum(self.tokens)[:-1]])

    def tokens_by_length(self, steps: int | None = None) -> dict[int, int]:
        """Tokens trained at each schedule length (the window, in window mode) in the first
        ``steps`` steps (all by default); tail rows are counted at their own length (the
        export's ``tokens_by_context`` counts them at their step's L(f))."""
        out: dict[int, int] = {}
        n = self.steps if steps is None else steps
        for ctx, length_, rows, tail in zip(
            self.context[:n], self.lengths[:n], self.rows[:n], self.tails[:n]
        ):
            out[int(ctx)] = out.get(int(ctx), 0) + int(rows * length_)
            if tail:
                out[int(tail)] = out.get(int(tail), 0) + int(tail)
        return dict(sorted(out.items()))

    def flops(self, n_params: int, n_layers: int, d_model: int, sparse: bool = False) -> float:
        """Kaplan et al. 2020 training FLOPs, attention included: per token 6N + 6 n_l d C,
        C the keys a query is scored against as the kernel computes it: the row length,
        or with ``sparse`` (a block-sparse kernel such as FlexAttention that skips masked
        blocks) the attention window in window mode. SDPA with a mask computes every key."""
        span = self.context if (sparse and self.mode == "window") else self.lengths
        per_token = 6.0 * n_params + 6.0 * n_layers * d_model * span.astype(np.float64)
        return float((self.tokens * per_token).sum())

    def table(self) -> list[dict]:
        start = self.cumulative_tokens()
        return [
            {
                "step": k,
                "tokens_before": int(start[k]),
                "length": int(L),
                "rows": int(r),
                "tail": int(t),
                "context": int(c),
            }
            for k, (L, r, t, c) in enumerate(zip(self.lengths, self.rows, self.tails, self.context))
        ]


def plan(s: ScheduleSpec, budget: int, tokens_per_step: int, seed: int = 0) -> Plan:
    """Step table for ``budget`` tokens in the schedule's mode. ``reshape`` and
    ``doc_buckets``: every step holds ``tokens_per_step`` tokens in rows of L(f) (plus a
    tail row), the total is exactly ``budget``. ``window``: rows of l_max, L(f) the window;
    same tokens. ``truncate``: as many steps as reshape, each with the rows of l_max cut to
    L(f) (DeepSpeed's seqlen curriculum), so it trains fewer tokens than ``budget``."""
    rng = np.random.default_rng(seed)  # only mixture draws from it
    lengths, rows, tails, context, progress = [], [], [], [], []
    nominal = 0
    while nominal < budget:
        L = length(s, nominal / budget, rng)
        step = min(tokens_per_step, budget - nominal)
        row_len = s.l_max if s.mode == "window" else L
        trained = step
        if s.mode == "truncate":  # the step's rows of l_max, each cut to L
            trained = (step // s.l_max) * L + min(L, step % s.l_max)
        lengths.append(row_len)
        rows.append(trained // row_len)
        tails.append(trained % row_len)
        context.append(L)
        progress.append(nominal)
        nominal += step
    return Plan(
        np.array(lengths),
        np.array(rows),
        np.array(tails),
        np.array(context),
        np.array(progress),
        s.mode,
    )


def lr_at(tokens_seen: int, budget: int, warmup_fraction: float, min_ratio: float) -> float:
    """Learning-rate multiplier defined in tokens: linear warmup, cosine decay to min_ratio."""
    warm = warmup_fraction * budget
    if tokens_seen < warm:
        return (tokens_seen + 1) / warm
    progress = min(1.0, (tokens_seen - warm) / max(1.0, budget - warm))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
