"""The numbers the report's figures read from a sweep's records: tolerant conversions,
seed means, per-schedule groups and rows, differences from the reference, modes, and the
log binning of per-position curves. Nothing here draws."""

from __future__ import annotations

import math

import numpy as np

from sweep.analysis.aggregate import Summary
from sweep.analysis.paired import Trial
from sweep.config.spec import MODES


def _or_nan(v) -> float:
    """A float; NaN for None and anything that is not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(v) -> bool:
    return math.isfinite(_or_nan(v))


def _arr(v) -> np.ndarray | None:
    """Float array of a JSON list (null -> NaN); None when absent, empty or ragged."""
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a if a.size else None


def _seed_mean(values: list) -> np.ndarray | None:
    """Mean over seeds of per-seed arrays; seeds whose array has another shape than the
    first are left out (a record from another eval length is not averaged in)."""
    arrs = [a for a in map(_arr, values) if a is not None]
    if not arrs:
        return None
    return np.mean([a for a in arrs if a.shape == arrs[0].shape], axis=0)


def _mean(x) -> float:
    """Mean of the finite values, NaN when there are none (and no warning)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _by_schedule(summary: Summary) -> dict[str, list[Trial]]:
    """Finished trials per schedule, in ranking order, each schedule's seeds sorted."""
    out: dict[str, list[Trial]] = {r["schedule"]: [] for r in summary.schedules}
    for t in summary.finished:
        out.setdefault(t.record.schedule or t.id, []).append(t)
    for ts in out.values():
        ts.sort(key=lambda t: _or_nan(t.record.seed))
    return {k: v for k, v in out.items() if v}


def _rows(summary: Summary) -> dict[str, dict]:
    return {r["schedule"]: r for r in summary.schedules}


def _ref_row(summary: Summary) -> dict | None:
    return _rows(summary).get(summary.reference)


def _role(summary: Summary, name: str) -> str:
    if name == summary.reference:
        return "reference"
    return _rows(summary).get(name, {}).get("role", "candidate")


def _minus_ref(row: dict, ref: dict | None, key: str) -> tuple[float, float]:
    """(schedule - reference, half-width of its paired 95% interval) on ``key``. The mean
    is the paired interval's own, so a bar is centred on it; without a paired interval
    (records without per-sequence values) the difference of the seed means, and no bar."""
    if ref is None:
        return math.nan, math.nan
    if row is ref:
        return 0.0, math.nan
    iv = (row.get("vs_ref") or {}).get(key) or {}
    mean = _or_nan(iv.get("mean"))
    if not math.isfinite(mean):
        mean = _or_nan(row.get(key)) - _or_nan(ref.get(key))
    return mean, _or_nan(iv.get("half"))


def _l_max(summary: Summary) -> int | None:
    for t in summary.finished:
        if _finite(t.record.l_max):
            return int(t.record.l_max)
    return None


def _log_edges(first: int, last: int, per_octave: int = 8, split: int | None = None) -> np.ndarray:
    """Edges of position bins [e_k, e_k+1) covering positions first..last (1-based,
    inclusive), evenly spaced in log2(p) (8 bins an octave by default); ``split`` is
    always an edge, so no bin mixes positions on both sides of it (l_max + 1)."""
    k = np.arange(
        math.floor(math.log2(first) * per_octave), math.ceil(math.log2(last + 1) * per_octave) + 1
    )
    inner = np.floor(2.0 ** (k / per_octave)).astype(int)
    if split is not None:
        inner = np.append(inner, split)
    inner = np.unique(inner[(inner > first) & (inner <= last)])
    return np.concatenate([[first], inner, [last + 1]]).astype(int)


def _binned(
    y: np.ndarray,
    first: int = 1,
    se: np.ndarray | None = None,
    split: int | None = None,
    per_octave: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Log-binned ``y`` (y[j] is position first + j): (bin centres, bin means, bound on
    the standard error of each bin mean, or None without ``se``).

    The SE bound: y is a mean over eval sequences, ``se`` its per-position standard
    error. The variance of a bin's mean over k positions is (1/k^2) sum_ij cov_ij, and
    |cov_ij| <= se_i se_j, so its SE is at most mean(se_i), with equality when the
    positions move together. They largely do: a window's document makes its loss high
    or low at every position. sqrt(mean(se^2) / k) would assume independent positions
    and shrink with the bin width, so the wide bins past l_max, where the comparison is
    made, would get the most falsely narrow bands. The record does not keep the
    per-position losses that the exact value needs, so the bound is what is drawn."""
    y = np.asarray(y, dtype=np.float64)
    edges = _log_edges(first, first + len(y) - 1, per_octave, split)
    centres, means, ses = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        centres.append(math.sqrt(lo * (hi - 1)))
        means.append(_mean(y[lo - first : hi - first]))
        if se is not None:
            ses.append(float(np.mean(se[lo - first : hi - first])))  # NaN stays NaN
    return np.array(centres), np.array(means), (np.array(ses) if se is not None else None)


def _mode_map(summary: Summary) -> dict[str, str]:
    """Schedule -> its mode (reshape for records from before modes)."""
    out = {t.record.schedule or t.id: t.record.mode or "reshape" for t in summary.trials}
    out.update({r["schedule"]: r.get("mode") or "reshape" for r in summary.schedules})
    return out


def _modes(summary: Summary) -> list[str]:
    """The modes of the finished schedules, in the spec's order."""
    got = {r.get("mode") or "reshape" for r in summary.schedules}
    return [m for m in MODES if m in got] + sorted(got - set(MODES))


def _base(name: str, mode: str) -> str:
    """The schedule's name without its mode: what the modes of one schedule share."""
    suffix = f"-{mode}"
    return name[: -len(suffix)] if mode != "reshape" and name.endswith(suffix) else name
