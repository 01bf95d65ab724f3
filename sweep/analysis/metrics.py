"""Metrics of per-position held-out loss (docs/design.md). Pure functions of numpy arrays;
positions are 1-based, ``curve[p - 1] = loss(p)``; a loss matrix has one row per eval
sequence. The objective is ``far_loss`` (lower is better); ``delta`` and ``slope`` only
describe the curve's shape.

Level is not shape: a model that is uniformly a little worse has a higher far_loss without
extrapolating any worse. The shape metrics compare like with like: ``context_use`` pairs
two losses at the same positions of the same windows (only the context differs), and the
excess metrics (``far_excess``, ``own_excess``, in the aggregator) difference a rise within
one model against the same rise of the reference, so that the text of the eval windows,
which differs by position but is shared by every model, cancels."""

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
    out["slope"] = slopes(losses, l_max)
    return {k: np.round(v, 6).tolist() for k, v in out.items()}


def slopes(losses: np.ndarray, l_max: int) -> np.ndarray:
    """Per sequence: the least-squares slope of loss(p) against log2(p) over (l_max, E].
    Linear in the losses, so their mean is ``slope`` of the mean curve."""
    p = np.arange(l_max + 1, losses.shape[1] + 1, dtype=np.float64)
    if len(p) < 2:
        return np.full(len(losses), math.nan)
    x = np.log2(p) - np.log2(p).mean()
    y = losses[:, l_max:].astype(np.float64)
    return (y - y.mean(axis=1, keepdims=True)) @ x / (x @ x)


def context_cut(l_max: int) -> int:
    """The context that ``context_use`` cuts to: the last l_max / 8 tokens (at least 1)."""
    return max(1, l_max // 8)


def context_use(cut: np.ndarray, full: np.ndarray, l_max: int) -> np.ndarray:
    """Per sequence: the mean over p in (l_max / 2, l_max] of the loss with the context cut
    to the last ``context_cut(l_max)`` tokens (``cut``, shape (n, l_max - l_max // 2)) minus
    the loss with the whole prefix (``full``, shape (n, >= l_max)). Same positions, same
    tokens; only the context differs. Positive: the model still gains from context between
    l_max / 8 and l_max tokens back."""
    return (cut - full[:, l_max // 2 : l_max]).mean(axis=1)


def position_edges(length: int, l_max: int, own: tuple[int, ...] = ()) -> list[int]:
    """Upper edges of the position bins whose per-sequence means a record keeps, so that
    the excess metrics can be formed after the fact: powers of two, l_max / 2, l_max and
    its far-band edges, each length in ``own`` (the longest lengths the sweep's schedules
    train at) and its half, and E = ``length``. Bin i is (edges[i - 1], edges[i]], with
    edges[-1] = 0."""
    edges = {2**k for k in range(int(math.log2(length)) + 1)}
    edges |= {l_max // 2, l_max} | {hi for _, _, hi in bands(length, l_max)}
    edges |= {x for L in own for x in (L, L // 2)}
    return sorted(e for e in edges if 0 < e <= length) + ([] if length in edges else [length])


def bin_means(losses: np.ndarray, edges: list[int]) -> np.ndarray:
    """(n, len(edges)) mean loss of each sequence over each bin of ``edges``."""
    lo = [0, *edges[:-1]]
    return np.stack([losses[:, a:b].mean(axis=1) for a, b in zip(lo, edges)], axis=1)


def range_mean(values: np.ndarray, edges: list[int], lo: int, hi: int) -> np.ndarray | None:
    """Mean over positions (lo, hi] from bin means ``values`` (n, bins): the bins' means
    weighted by their widths; None when lo or hi is not an edge (0 always is)."""
    bounds = [0, *edges]
    if lo not in bounds or hi not in bounds or hi <= lo:
        return None
    i, j = bounds.index(lo), bounds.index(hi)
    width = np.diff(bounds)[i:j].astype(np.float64)
    return np.asarray(values, dtype=np.float64)[:, i:j] @ width / width.sum()


def own_rise(values: np.ndarray, edges: list[int], own: int, l_max: int) -> np.ndarray | None:
    """Per sequence: mean loss over (own, l_max] minus mean loss over (own / 2, own], for a
    schedule whose longest trained length ``own`` is below l_max: how much the loss rises
    past its own length. Alone it measures the text as well; ``own_excess`` is this minus
    the same for the reference, on the same windows. None when own >= l_max or the record
    lacks the edges."""
    if own >= l_max or own < 2:
        return None
    far = range_mean(values, edges, own, l_max)
    near = range_mean(values, edges, own // 2, own)
    return None if far is None or near is None else far - near


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
