"""Decision layer: turn paired intervals of (candidate - reference) on a loss into one of four
outcomes, with family-wise error control over the candidates of a sweep.

With m candidates compared against one reference, each interval is made at the Bonferroni
simultaneous level 1 - (1 - level) / m, so that all m intervals cover their truths together with
probability >= level and every outcome read off them (better, equivalent, worse) inherits that
control. We chose Bonferroni intervals over Holm's step-down because all three claims are read
off one interval per candidate, and Holm only adjusts p-values for one test: it gives no
intervals, so no equivalence verdict and no "how far from settled" to report.

Everything here is a pure function of its arguments (numpy/scipy only).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from sweep.analysis.intervals import _anova, _check_level, t_quantile

OUTCOMES = ("better", "equivalent", "worse", "inconclusive")


def _check_margin(margin: float) -> float:
    margin = float(margin)
    # `not >=` also rejects NaN
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return margin


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def classify(lo: float | None, hi: float | None, margin: float) -> str:
    """Outcome of an interval [lo, hi] of (candidate - reference) on a loss (lower is better).

    better: hi < -margin; worse: lo > margin; equivalent: -margin < lo and hi < margin, which is
    TOST at the interval's level (both one-sided tests reject at (1 - level) / 2); otherwise,
    and for None/NaN bounds, inconclusive. All inequalities are strict, so an interval touching
    a boundary is inconclusive and with margin 0 "equivalent" can never be returned: a zero-width
    region cannot contain an interval. Raises ValueError for margin < 0.
    """
    margin = _check_margin(margin)
    if not (_finite(lo) and _finite(hi)):
        return "inconclusive"
    if hi < -margin:
        return "better"
    if lo > margin:
        return "worse"
    if -margin < lo and hi < margin:
        return "equivalent"
    return "inconclusive"


def simultaneous_level(level: float, m: int) -> float:
    """Bonferroni level per interval so that m intervals hold together at ``level``."""
    level = _check_level(level)
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    return 1 - (1 - level) / int(m)


def rescale(iv: dict, level: float, to_level: float) -> tuple[float | None, float | None]:
    """The bounds of a stored t interval (mean, lo, hi, df at ``level``) at ``to_level``.
    Exact for this project's intervals: their df does not depend on the level."""
    mean, lo, hi, df = (iv.get(k) for k in ("mean", "lo", "hi", "df"))
    if not all(_finite(v) for v in (mean, lo, hi, df)):
        return None, None
    scale = t_quantile((1 + to_level) / 2, df) / t_quantile((1 + level) / 2, df)
    half = (hi - lo) / 2 * scale
    return mean - half, mean + half


def _as_matrix(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2:
        raise ValueError(f"expected a (seeds, sequences) matrix, got shape {d.shape}")
    return d


def variance_components(d: np.ndarray) -> dict:
    """ANOVA estimates of the crossed model d[s, i] = mu + a_s + b_i + e_si.

    Returns {"seeds": S, "sequences": N, "seed": sa2, "sequence": sb2, "residual": se2}, each
    component clipped at 0. A 1-D input is one seed: the seed component is then None (not
    measured) and "sequence" holds the whole spread across sequences (sb2 + se2 cannot be told
    apart), residual 0; one sequence is the mirror case. Non-finite values or fewer than two
    values give NaN components rather than an error, like ``paired_interval``.
    """
    d = _as_matrix(d)
    s, n = d.shape
    out: dict = {"seeds": s, "sequences": n}
    if d.size < 2 or not np.all(np.isfinite(d)):
        return out | {"seed": math.nan, "sequence": math.nan, "residual": math.nan}
    if s == 1:
        return out | {"seed": None, "sequence": float(d[0].var(ddof=1)), "residual": 0.0}
    if n == 1:
        return out | {"seed": float(d[:, 0].var(ddof=1)), "sequence": None, "residual": 0.0}
    ms, _ = _anova(d)
    # E[MS_seed] = N sa2 + se2, E[MS_seq] = S sb2 + se2, E[MS_err] = se2
    return out | {
        "seed": max(0.0, float(ms[0] - ms[2]) / n),
        "sequence": max(0.0, float(ms[1] - ms[2]) / s),
        "residual": max(0.0, float(ms[2])),
    }


def seeds_to_settle(
    mean: float, components: dict, margin: float, level: float, max_seeds: int = 64
) -> int | None:
    """Smallest number of seeds S' >= 2 at which an interval centred at ``mean`` would lie wholly
    inside one outcome region.

    The expected half-width t_{(1+level)/2, S'-1} * sqrt(sa2/S' + sb2/N + se2/(S' N)) must fall
    below the distance from ``mean`` to the nearest of -margin and +margin. This assumes the
    mean and the components stay where they are, so it says how many seeds would *likely*
    settle the comparison, not that they will. df S'-1 is the seed df alone, which is
    conservative next to the Satterthwaite df the real interval gets.

    None when seeds cannot settle it within ``max_seeds``: the sequence term alone is too wide
    (only more eval sequences help), the mean sits on a boundary, a component is unmeasured
    (None) or not finite, or the mean is not finite.
    """
    margin = _check_margin(margin)
    level = _check_level(level)
    if not _finite(mean):
        return None
    sa2, sb2, se2 = (components.get(k) for k in ("seed", "sequence", "residual"))
    if not all(_finite(v) for v in (sa2, sb2, se2)):
        return None
    n = int(components["sequences"])
    distance = min(abs(mean + margin), abs(mean - margin))
    seeds = np.arange(2, max(int(max_seeds), 1) + 1)
    if distance <= 0 or seeds.size == 0:
        return None
    half = t_quantile((1 + level) / 2, seeds - 1) * np.sqrt(
        sa2 / seeds + sb2 / n + se2 / (seeds * n)
    )
    # half shrinks as seeds grow (t quantile and variance both fall): the first hit is the least
    hit = np.flatnonzero(half < distance)
    return int(seeds[hit[0]]) if hit.size else None


def _splits(s: int, n_splits: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (splits x h) and (splits x s - h) of the two halves, h = floor(s / 2)."""
    h = s // 2
    # with equal halves a split and its swap are the same comparison: keep seed 0 in the first
    count = math.comb(s - 1, h - 1) if s % 2 == 0 else math.comb(s, h)
    if count <= n_splits:
        if s % 2 == 0:
            first = np.array([(0, *c) for c in combinations(range(1, s), h - 1)], dtype=np.intp)
        else:
            first = np.array(list(combinations(range(s), h)), dtype=np.intp)
        mask = np.ones((count, s), dtype=bool)
        np.put_along_axis(mask, first, False, axis=1)
        return first, np.nonzero(mask)[1].reshape(count, s - h)
    # too many to enumerate: sample (with replacement) uniformly random permutations
    perms = np.argsort(rng.random((n_splits, s)), axis=1)
    return perms[:, :h], perms[:, h:]


def decision_stability(values: np.ndarray, n_splits: int = 200, seed: int = 0) -> dict:
    """Pairwise decision accuracy (DataDecide style) of a per-seed metric, lower is better.

    ``values`` is (schedules x seeds), all schedules measured on the same seeds. The seeds are
    split at random into two halves (floor(S/2) and the rest; all distinct splits when there are
    no more than ``n_splits`` of them), and for each split the share of schedule pairs ordered
    the same way by both halves' means is counted, a tie in either half as half agreement. Near
    1: the ranking does not hinge on which seeds were run; near 0.5: it is a coin toss.

    Returns {"accuracy": mean share, "spread": [2.5th, 97.5th percentile of the shares],
    "sd": population sd of the shares, "splits": n, "pairs": K(K-1)/2}; accuracy None (with a
    "why") for fewer than 4 seeds, fewer than 2 schedules or non-finite values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"expected a (schedules, seeds) matrix, got shape {v.shape}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    k, s = v.shape
    pairs = k * (k - 1) // 2
    why = None
    if s < 4:
        why = f"{s} seed(s): need at least 4 to split into halves of 2"
    elif k < 2:
        why = f"{k} schedule(s): need at least 2 to compare"
    elif not np.all(np.isfinite(v)):
        why = "non-finite values"
    if why is not None:
        return {
            "accuracy": None,
            "spread": None,
            "sd": None,
            "splits": 0,
            "pairs": pairs,
            "why": why,
        }

    first, second = _splits(s, int(n_splits), np.random.default_rng(seed))
    m1, m2 = v[:, first].mean(axis=2), v[:, second].mean(axis=2)  # (schedules x splits)
    i, j = np.triu_indices(k, 1)
    # sign product: +1 same order, -1 opposite, 0 a tie in either half -> agreement 1, 0, 1/2
    agree = (1 + np.sign(m1[i] - m1[j]) * np.sign(m2[i] - m2[j])) / 2
    shares = agree.mean(axis=0)
    lo, hi = np.percentile(shares, [2.5, 97.5])
    return {
        "accuracy": float(shares.mean()),
        "spread": [float(lo), float(hi)],
        "sd": float(shares.std()),
        "splits": int(shares.size),
        "pairs": pairs,
    }
