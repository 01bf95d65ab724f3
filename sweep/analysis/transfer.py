"""Does a ranking of schedules transfer from one model width to another: the rank
correlation of their gains over the reference, with a bootstrap interval over seeds and
documents."""

from __future__ import annotations

import math

import numpy as np

from sweep.analysis.paired import Trial, units_matrix

BOOT = 4000  # bootstrap resamples of the transfer correlation


def spearman_transfer(
    a: dict[str, np.ndarray],
    ref_a: np.ndarray,
    b: dict[str, np.ndarray],
    ref_b: np.ndarray,
    level: float = 0.95,
    n_boot: int = BOOT,
    seed: int = 0,
) -> dict:
    """Rank correlation of the schedules' gains over the reference at two widths.

    ``a[label]`` and ``ref_a`` are (seeds x documents) far_loss matrices of one width, ``b``
    and ``ref_b`` of the other, on the same seeds and documents. The gain of a schedule is
    its mean minus the reference's. The interval is a percentile bootstrap that resamples
    seeds and documents together (both are sources of noise, and the same seed and
    document index every schedule and both widths, which keeps the pairing):
    scipy.stats.bootstrap resamples one axis only, hence the two-level resampling here."""
    labels = sorted(set(a) & set(b))
    if len(labels) < 3:
        return {"labels": labels, "rho": None, "lo": None, "hi": None, "why": "under 3 schedules"}
    gains_a = np.stack([a[k] - ref_a for k in labels])  # schedules x seeds x docs
    gains_b = np.stack([b[k] - ref_b for k in labels])
    ga, gb = gains_a.mean(axis=(1, 2)), gains_b.mean(axis=(1, 2))
    # deferred: scipy.stats costs every CLI start half a second; only a width arm needs it
    from scipy.stats import spearmanr

    rho = float(spearmanr(ga, gb).statistic)
    rng = np.random.default_rng(seed)
    n_s, n_d = gains_a.shape[1], gains_a.shape[2]
    # A resample's mean is a weighted mean: weights = how often each seed and document was
    # drawn, so every resample is one einsum, not a loop of fancy indexing.
    ws = _draw_weights(rng, n_boot, n_s)
    wd = _draw_weights(rng, n_boot, n_d)
    xa = np.einsum("bs,bd,ksd->bk", ws, wd, gains_a)
    xb = np.einsum("bs,bd,ksd->bk", ws, wd, gains_b)
    keep = (np.ptp(xa, axis=1) > 0) & (np.ptp(xb, axis=1) > 0)  # rho needs two ranks
    rhos = _row_spearman(xa[keep], xb[keep])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(rhos, [alpha, 1 - alpha]) if len(rhos) else (math.nan, math.nan)
    return {
        "labels": labels,
        "gain_a": dict(zip(labels, map(float, ga))),
        "gain_b": dict(zip(labels, map(float, gb))),
        "rho": rho,
        "lo": float(lo),
        "hi": float(hi),
        "boot": int(len(rhos)),
        "method": f"percentile bootstrap over seeds and documents ({len(rhos)} resamples)",
        "best_a": labels[int(np.argmin(ga))],
        "best_b": labels[int(np.argmin(gb))],
    }


def _draw_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot x n) resampling weights: the share of n draws with replacement that fell
    on each unit."""
    draws = rng.integers(0, n, (n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    return counts / n


def _row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair: Pearson's r of the average ranks (as
    scipy.stats.spearmanr, ties included), for all rows at once."""
    # deferred: as in spearman_transfer
    from scipy.stats import rankdata

    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def far_matrix(trials: list[Trial], seeds: list[int]) -> np.ndarray | None:
    by_seed = {t.record.seed: t for t in trials}
    if not all(s in by_seed for s in seeds):
        return None
    return units_matrix([by_seed[s] for s in seeds], "far_loss")
