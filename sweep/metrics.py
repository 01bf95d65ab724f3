"""Extrapolation-flatness metrics of a loss-versus-position curve (DESIGN.md). Pure
functions of numpy arrays; positions are 1-based, ``curve[p - 1] = loss(p)``."""

from __future__ import annotations

import math

import numpy as np

TAU = 0.02  # nats of tolerated rise for l_eff


def id_loss(curve: np.ndarray, l_max: int) -> float:
    return float(np.mean(curve[:l_max]))


def near_loss(curve: np.ndarray, l_max: int) -> float:
    return float(np.mean(curve[l_max // 2 : l_max]))


def far_loss(curve: np.ndarray, l_max: int) -> float:
    return float(np.mean(curve[l_max:]))


def delta(curve: np.ndarray, l_max: int) -> float:
    return far_loss(curve, l_max) - near_loss(curve, l_max)


def slope(curve: np.ndarray, l_max: int) -> float:
    """Least-squares slope of loss(p) against log2(p) over (l_max, E], nats per doubling."""
    p = np.arange(l_max + 1, len(curve) + 1, dtype=np.float64)
    if len(p) < 2:
        return float("nan")
    return float(np.polyfit(np.log2(p), curve[l_max:].astype(np.float64), 1)[0])


def smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (position p averages the ``window`` positions up to p)."""
    window = max(1, int(window))
    c = np.cumsum(np.concatenate([[0.0], curve.astype(np.float64)]))
    idx = np.arange(1, len(curve) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def log_binned(curve: np.ndarray, per_octave: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``curve`` in position bins evenly spaced in log2(p): (bin centres, means).
    Per-position loss is dominated by what the text says at p; wider bins further out
    average that away without blurring the first few positions."""
    n = len(curve)
    edges = np.unique(np.floor(2.0 ** (np.arange(0, math.log2(n) * per_octave + 1) / per_octave)))
    edges = np.append(edges[edges <= n], n + 1).astype(int)
    edges = np.unique(edges)
    centres, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        centres.append(math.sqrt(lo * (hi - 1)))
        means.append(float(np.mean(curve[lo - 1 : hi - 1])))
    return np.array(centres), np.array(means)


def l_eff(curve: np.ndarray, l_max: int, tau: float = TAU, window: int | None = None) -> float:
    """Largest p (as a multiple of l_max) such that the smoothed loss stays within
    near_loss + tau at every position from l_max up to p."""
    sm = smooth(curve, window or max(1, l_max // 8))
    limit = near_loss(curve, l_max) + tau
    over = np.nonzero(sm[l_max:] > limit)[0]
    last_ok = len(curve) if len(over) == 0 else l_max + int(over[0])
    return last_ok / l_max


def all_metrics(curve: np.ndarray, l_max: int) -> dict[str, float]:
    return {
        "id_loss": id_loss(curve, l_max),
        "near_loss": near_loss(curve, l_max),
        "far_loss": far_loss(curve, l_max),
        "delta": delta(curve, l_max),
        "slope": slope(curve, l_max),
        "l_eff": l_eff(curve, l_max),
    }


def per_sequence(losses: np.ndarray, l_max: int) -> dict[str, list[float]]:
    """Region means of each eval sequence: what bootstrap intervals resample."""
    return {
        "id_loss": losses[:, :l_max].mean(axis=1).tolist(),
        "near_loss": losses[:, l_max // 2 : l_max].mean(axis=1).tolist(),
        "far_loss": losses[:, l_max:].mean(axis=1).tolist(),
    }


def binned_per_sequence(losses: np.ndarray, per_octave: int = 8) -> dict[str, list]:
    """Each eval sequence's loss, log-binned by position: enough to draw interval bands
    and paired differences later without storing every position of every sequence."""
    centres, _ = log_binned(losses[0], per_octave)
    rows = [log_binned(row, per_octave)[1] for row in losses]
    return {"centres": centres.tolist(), "values": np.round(np.array(rows), 5).tolist()}


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
