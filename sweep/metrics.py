"""Metrics of per-position held-out loss (docs/design.md). Pure functions of numpy arrays;
positions are 1-based, ``curve[p - 1] = loss(p)``; a loss matrix has one row per eval
sequence. The objective is ``far_loss`` (lower is better); ``delta`` and ``slope`` only
describe the curve's shape."""

from __future__ import annotations

import math

import numpy as np

# Region means that every trial stores per eval sequence, so that intervals can pair them.
REGIONS = ("id_loss", "near_loss", "far_loss")


def id_loss(curve: np.ndarray, l_max: int) -> float:
    """Mean loss over p in [1, l_max]."""
    return float(np.mean(curve[:l_max]))


def near_loss(curve: np.ndarray, l_max: int) -> float:
    """Mean loss over p in (l_max / 2, l_max]."""
    return float(np.mean(curve[l_max // 2 : l_max]))


def far_loss(curve: np.ndarray, l_max: int) -> float:
    """Mean loss over p in (l_max, E]: the objective."""
    return float(np.mean(curve[l_max:]))


def delta(curve: np.ndarray, l_max: int) -> float:
    """far_loss - near_loss: a shape descriptor, never the objective (it improves when
    near_loss gets worse)."""
    return far_loss(curve, l_max) - near_loss(curve, l_max)


def slope(curve: np.ndarray, l_max: int) -> float:
    """Least-squares slope of loss(p) against log2(p) over (l_max, E], nats per doubling."""
    p = np.arange(l_max + 1, len(curve) + 1, dtype=np.float64)
    if len(p) < 2:
        return math.nan
    return float(np.polyfit(np.log2(p), curve[l_max:].astype(np.float64), 1)[0])


def bands(length: int, l_max: int) -> list[tuple[str, int, int]]:
    """The far bands (l_max, 2 l_max], (2 l_max, 4 l_max], ... up to E = ``length``, as
    (name, first index, end index) into a curve; the last band ends at E."""
    out, lo = [], l_max
    while lo < length:
        hi = min(2 * lo, length)
        out.append((f"far_x{hi / l_max:g}", lo, hi))
        lo = hi
    return out


def band_losses(curve: np.ndarray, l_max: int) -> dict[str, float]:
    return {name: float(np.mean(curve[lo:hi])) for name, lo, hi in bands(len(curve), l_max)}


def all_metrics(curve: np.ndarray, l_max: int) -> dict[str, float]:
    return {
        "id_loss": id_loss(curve, l_max),
        "near_loss": near_loss(curve, l_max),
        "far_loss": far_loss(curve, l_max),
        **band_losses(curve, l_max),
        "delta": delta(curve, l_max),
        "slope": slope(curve, l_max),
    }


def per_sequence(losses: np.ndarray, l_max: int) -> dict[str, list[float]]:
    """Region and band means of each eval sequence: what the paired intervals resample."""
    out = {
        "id_loss": losses[:, :l_max].mean(axis=1),
        "near_loss": losses[:, l_max // 2 : l_max].mean(axis=1),
        "far_loss": losses[:, l_max:].mean(axis=1),
    }
    for name, lo, hi in bands(losses.shape[1], l_max):
        out[name] = losses[:, lo:hi].mean(axis=1)
    return {k: np.round(v, 6).tolist() for k, v in out.items()}


def ctx_gain(window: np.ndarray, full: np.ndarray, l_max: int) -> np.ndarray:
    """Per sequence: the mean over p in (l_max, E] of the loss with only the last l_max
    tokens as context (``window``, shape (n, E - l_max)) minus the loss with the whole
    prefix (``full``, shape (n, E)). Positive: context beyond l_max lowers the loss."""
    return (window - full[:, l_max:]).mean(axis=1)


def position_se(losses: np.ndarray) -> np.ndarray:
    """Standard error of loss(p) over the eval sequences, per position."""
    n = len(losses)
    if n < 2:
        return np.full(losses.shape[1], math.nan)
    return losses.std(axis=0, ddof=1) / math.sqrt(n)


def exposure_edges(l_max: int) -> list[int]:
    """Lower edges of the log2 bins of attended distance: 0, 1, 2, 4, ... below l_max, and
    l_max // 2 (an edge of its own when l_max is not a power of two), so that the share
    reaching l_max / 2 is a sum of whole bins."""
    edges = {0, l_max // 2} | {2**k for k in range(max(0, math.ceil(math.log2(l_max))))}
    return sorted(e for e in edges if e < l_max or e == 0)


def exposure_counts(distances: np.ndarray, l_max: int) -> np.ndarray:
    """How many query tokens have their farthest attended key in each bin of
    ``exposure_edges(l_max)`` (distances >= l_max land in the last bin)."""
    edges = np.asarray(exposure_edges(l_max))
    bins = np.searchsorted(edges, np.asarray(distances, dtype=np.int64), side="right") - 1
    return np.bincount(bins, minlength=len(edges))


def exposure_far(edges: list[int], counts, l_max: int) -> float:
    """The share of trained query tokens whose farthest attended key is at least l_max / 2
    away: the bins of ``exposure_edges`` from l_max // 2 on (0 for no tokens)."""
    counts = np.asarray(counts, dtype=np.float64)
    far = sum(c for e, c in zip(edges, counts) if e >= l_max // 2)
    return float(far / max(1.0, counts.sum()))
