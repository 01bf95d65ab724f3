"""Figures of the report: every ``plot_*`` function (matplotlib, PNG), the ``FIGURES``
table the report draws from, and their helpers: reading the records' numbers, log
binning, one look per schedule (colour, line style, markers, legends) and saving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sweep.analysis import metrics
from sweep.analysis.aggregate import EPSILON, Summary, Trial, units_matrix
from sweep.analysis.intervals import mean_interval
from sweep.config import schedules
from sweep.config.spec import MODES, RATE_FREE_SHAPES, SpecError, SweepSpec, TrialSpec


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- data


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
        out.setdefault(t.record.get("schedule", t.id), []).append(t)
    for ts in out.values():
        ts.sort(key=lambda t: _or_nan(t.record.get("seed")))
    return {k: v for k, v in out.items() if v}


# Past this many schedules a figure with a line or a labelled point per schedule stops
# being readable (and drawing thousands costs minutes): the figures draw the reference,
# the controls, the picks and candidates, then the best by the objective, and the report's
# captions say how many were drawn (``drawn_note``). The ranking lists every schedule.
MAX_DRAWN = 12


def drawn(summary: Summary) -> list[str]:
    """The schedules the per-schedule figures draw, at most ``MAX_DRAWN``: the reference,
    the controls, the picks, the candidates to confirm, then the ranking's order (best
    objective first)."""
    rows = summary.schedules
    order = [summary.reference]
    order += [r["schedule"] for r in rows if r.get("role") == "control"]
    order += [p["schedule"] for p in summary.picks]
    order += [c["schedule"] for c in summary.candidates if isinstance(c, dict) and "schedule" in c]
    order += [r["schedule"] for r in rows]
    names = {r["schedule"] for r in rows}
    return [n for n in dict.fromkeys(order) if n in names][:MAX_DRAWN]


def drawn_note(summary: Summary, grey: bool = False) -> str:
    """What a capped figure's caption adds: how many schedules it draws and which
    (``grey``: the others are drawn, grey and unnamed)."""
    n = len(summary.schedules)
    if n <= MAX_DRAWN:
        return ""
    which = (
        f"{MAX_DRAWN} of the {n} schedules (the reference, the controls, the picks and "
        "candidates, then the lowest far_loss)"
    )
    if grey:
        return f"In colour and named: {which}; the other {n - MAX_DRAWN} grey, unnamed."
    return f"Drawn: {which}; the ranking lists every one."


def _shown(summary: Summary):
    """A test of whether a figure draws a schedule: every one up to ``MAX_DRAWN`` (also
    those without a ranking row), else the ``drawn`` ones."""
    if len(summary.schedules) <= MAX_DRAWN:
        return lambda name: True
    keep = set(drawn(summary))
    return lambda name: name in keep


def _drawn_groups(summary: Summary) -> dict[str, list[Trial]]:
    """``_by_schedule`` for the drawn schedules only."""
    shown = _shown(summary)
    return {k: v for k, v in _by_schedule(summary).items() if shown(k)}


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
        if _finite(t.record.get("l_max")):
            return int(t.record["l_max"])
    return None


# ----------------------------------------------------------------------------- binning


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


# ----------------------------------------------------------------------------- figures


# In a sweep of several modes: colour is the schedule (shape and rate), the line style
# and the marker's fill are the mode.
MODE_LS = {"reshape": "-", "truncate": ":", "window": "-.", "doc_buckets": (0, (5, 1.5))}
MODE_FILL = {"reshape": "full", "truncate": "none", "window": "left", "doc_buckets": "bottom"}


def _mode_map(summary: Summary) -> dict[str, str]:
    """Schedule -> its mode (reshape for records from before modes)."""
    out = {
        t.record.get("schedule", t.id): t.record.get("mode") or "reshape" for t in summary.trials
    }
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


def _palette(n: int):
    cmap = _plt().get_cmap("tab10" if n <= 10 else "tab20")
    return lambda i: cmap(i % cmap.N)


def _styles(summary: Summary) -> dict[str, dict]:
    """One look per schedule in every figure of a sweep (the Schedules figure too): the
    reference thick black, controls dashed, candidates a colour each, assigned in the
    order of the schedules' names, so that a colour never depends on the results. With
    several modes, a colour per schedule shape and rate (the reference's black), a line
    style per mode (``MODE_LS``)."""
    modes = _mode_map(summary)
    names = sorted(
        {r["schedule"] for r in summary.schedules}
        | {t.record.get("schedule", t.id) for t in summary.trials}
    )
    out = {}
    if len(set(modes.get(n, "reshape") for n in names)) > 1:
        base = {n: _base(n, modes.get(n, "reshape")) for n in names}
        ref_base = base.get(summary.reference, summary.reference)
        others = [b for b in dict.fromkeys(base.values()) if b != ref_base]
        colour = _palette(len(others))
        colours = {b: colour(i) for i, b in enumerate(others)} | {ref_base: "black"}
        for n in names:
            out[n] = {
                "color": colours[base[n]],
                "lw": 2.6 if n == summary.reference else 1.5,
                "ls": MODE_LS.get(modes.get(n, "reshape"), "-"),
            }
        return out
    others = [n for n in names if n != summary.reference]
    colour = _palette(len(others))
    for i, n in enumerate(others):
        role = _role(summary, n)
        out[n] = {"color": colour(i), "lw": 1.5, "ls": "--" if role == "control" else "-"}
    out[summary.reference] = {"color": "black", "lw": 2.6, "ls": "-"}
    return out


def _marker(summary: Summary, name: str, style: dict, multi: bool) -> dict:
    """Marker keywords of a schedule's point: squares for controls, circles otherwise;
    with several modes the fill says the mode (``MODE_FILL``)."""
    mode = _mode_map(summary).get(name, "reshape")
    return {
        "marker": "s" if _role(summary, name) == "control" else "o",
        "color": style["color"],
        "fillstyle": MODE_FILL.get(mode, "full") if multi else "full",
        "markerfacecoloralt": "white",
        "ms": 7,
    }


def _fill(summary: Summary, name: str) -> dict:
    """Marker fill keywords of a line's markers: the mode, when the sweep has several."""
    if len(_modes(summary)) < 2:
        return {}
    mode = _mode_map(summary).get(name, "reshape")
    return {"fillstyle": MODE_FILL.get(mode, "full"), "markerfacecoloralt": "white"}


def _label(summary: Summary, name: str) -> str:
    role = _role(summary, name)
    return f"{name} ({role})" if role in ("reference", "control") else name


def _mark_l_max(ax, l_max: int) -> None:
    """Label the dashed l_max line at the top of ``ax``."""
    ax.annotate(
        f"l_max = {l_max}",
        (l_max, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -14),
        textcoords="offset points",
        fontsize=9,
    )


def _spread(i: int, n: int, width: float = 0.04) -> float:
    """Multiplicative x offset of series i of n on a log axis, so error bars do not
    hide each other."""
    return 2.0 ** (width * (i - (n - 1) / 2))


def plot_curves(summary: Summary, path: Path) -> Path | None:
    """Loss versus position, one line per schedule (seed mean, log-binned), with a band
    of +-2 standard errors of each bin mean over the eval sequences (an upper bound, see
    ``_binned``), l_max marked. Below, each schedule minus the reference on the same
    eval windows, with the paired 95% interval of every far band's mean."""
    groups = _drawn_groups(summary)
    curves, ses = {}, {}
    for name, ts in groups.items():
        c = _seed_mean([t.record.get("curve") for t in ts])
        if c is None or c.ndim != 1:
            continue
        curves[name] = c
        # Over seeds, the root mean square of their SEs: again an upper bound on the seed
        # mean's SE (reached when the seeds' errors move together, as they largely do,
        # since the seeds share the windows). It is eval-window noise only, no seed noise.
        se = [a for a in (_arr(t.record.get("curve_se")) for t in ts) if a is not None]
        se = [a for a in se if a.shape == c.shape]
        ses[name] = np.sqrt(np.mean(np.square(se), axis=0)) if se else None
    l_max = _l_max(summary)
    if not curves or l_max is None:
        return None
    st = _styles(summary)
    ref_curve = curves.get(summary.reference)
    ref_row = _ref_row(summary)
    lower = ref_curve is not None and len(curves) > 1
    plt = _plt()
    fig, axes = plt.subplots(
        2 if lower else 1,
        1,
        figsize=(9, 8 if lower else 5.5),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2]} if lower else None,
    )
    top = axes[0, 0]
    banded = False
    # Past 5 schedules the bands cover each other: only the reference's is drawn.
    ref_only = len(curves) > 5 and summary.reference in curves
    for name, c in curves.items():
        x, y, s = _binned(c, 1, ses[name], split=l_max + 1)
        top.plot(x, y, marker=".", ms=3, label=_label(summary, name), **st[name])
        if ref_only and name != summary.reference:
            continue
        if s is not None and np.isfinite(s).any():
            top.fill_between(x, y - 2 * s, y + 2 * s, color=st[name]["color"], alpha=0.12, lw=0)
            banded = True
    top.set_ylabel(
        "loss(p), nats, log-binned"
        + ("\nband: ±2 SE of the bin mean (upper bound)" if banded else "")
        + (f", {summary.reference} only" if banded and ref_only else "")
    )
    top.set_title("Held-out loss by token position; past l_max is extrapolation")
    if lower:
        bottom = axes[1, 0]
        n = len(ref_curve)
        others = [k for k, c in curves.items() if k != summary.reference and len(c) == n]
        bands = metrics.bands(n, l_max)
        drew_bars = False
        for i, name in enumerate(others):
            x, y, _ = _binned(curves[name] - ref_curve, split=l_max + 1)
            bottom.plot(x, y, **st[name])
            row = _rows(summary).get(name, {})
            for band, lo, hi in bands:
                m, h = _minus_ref(row, ref_row, band)
                if math.isfinite(m) and math.isfinite(h):
                    bottom.errorbar(
                        math.sqrt((lo + 1) * hi) * _spread(i, len(others)),
                        m,
                        yerr=h,
                        fmt="s",
                        ms=4,
                        color=st[name]["color"],
                        capsize=3,
                    )
                    drew_bars = True
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set_ylabel(
            f"loss(p) - {summary.reference}, nats\n(lines: log-binned"
            + ("; bars: paired 95% interval\nof each far band's mean)" if drew_bars else ")")
        )
    for ax in axes[:, 0]:
        ax.axvline(l_max, color="k", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    _mark_l_max(top, l_max)
    axes[-1, 0].set_xlabel("token position p (log scale)")
    _legend(top, fontsize=8, ncol=2)
    return _finish(fig, path)


def plot_far_bands(summary: Summary, path: Path) -> Path | None:
    """far_loss in each band (l_max, 2 l_max], (2 l_max, 4 l_max], ... of every schedule
    minus the reference's, with the paired 95% interval of the difference."""
    ref = _ref_row(summary)
    l_max = _l_max(summary)
    if ref is None or l_max is None:
        return None
    ref_trial = next(t for t in summary.finished if t.record.get("schedule") == summary.reference)
    e = ref_trial.record.get("eval_length")
    length = int(e) if _finite(e) else len(ref_trial.record.get("curve") or [])
    bands = metrics.bands(length, l_max)
    shown = _shown(summary)
    others = [r for r in summary.schedules if r is not ref and shown(r["schedule"])]
    if not bands or not others:
        return None
    st = _styles(summary)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = np.arange(len(bands), dtype=np.float64)
    for i, r in enumerate(others):
        vals = [_minus_ref(r, ref, b[0]) for b in bands]
        y = np.array([v[0] for v in vals])
        h = np.array([v[1] for v in vals])
        x = xs + 0.06 * (i - (len(others) - 1) / 2)
        s = st[r["schedule"]]
        fill = _fill(summary, r["schedule"])
        ax.plot(x, y, marker="o", label=_label(summary, r["schedule"]), **s, **fill)
        ok = np.isfinite(h) & np.isfinite(y)
        if ok.any():
            ax.errorbar(x[ok], y[ok], yerr=h[ok], fmt="none", ecolor=s["color"], capsize=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{name}\n({lo}, {hi}]" for name, lo, hi in bands])
    ax.set_xlabel("far band (token positions)")
    ax.set_ylabel(
        f"band loss - {summary.reference}, nats\n(below 0: better; bars: paired 95% interval)"
    )
    return _save(fig, ax, path, "far_loss per band vs reference", fontsize=8, ncol=2)


def _small(v: float, sign: bool = True) -> str:
    """A value that may be 1e-4 nats, with its real digits: 2 significant figures
    below 0.01 (as -0.00031), 4 decimals otherwise; never "-0.000"."""
    if v == 0:
        return "0"
    if abs(v) < 0.01:
        return f"{v:+.2e}" if sign else f"{v:.2e}"
    return f"{v:+.4f}" if sign else f"{v:.4f}"


def plot_ctx_gain(summary: Summary, path: Path) -> Path | None:
    """Sliding-window loss (only the last l_max tokens as context) minus full-prefix
    loss, per position past l_max (log-binned seed mean): above 0, the schedule uses
    context from further back than it was trained on."""
    rows = _rows(summary)
    st = _styles(summary)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    drawn = False
    for name, ts in _drawn_groups(summary).items():
        g = _seed_mean([t.record.get("ctx_gain_curve") for t in ts])
        l_max = _or_nan(ts[0].record.get("l_max"))
        if g is None or g.ndim != 1 or not math.isfinite(l_max):
            continue
        x, y, _ = _binned(g, int(l_max) + 1)
        row = rows.get(name, {})
        label = _label(summary, name)
        if _finite(row.get("ctx_gain")):
            half = _or_nan((row.get("ctx_gain_ci") or {}).get("half"))
            label += f": {_small(row['ctx_gain'])}" + (
                f" ± {_small(half, sign=False)}" if math.isfinite(half) else ""
            )
        ax.plot(x, y, marker=".", ms=3, label=label, **st[name])
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token position p past l_max (log scale)")
    ax.set_ylabel("window loss - full-prefix loss, nats\n(above 0: context beyond l_max is used)")
    return _save(
        fig,
        ax,
        path,
        "Context use past l_max (legend: ctx_gain ± its 95% interval half-width)",
        fontsize=8,
        ncol=2,
    )


def plot_copy(summary: Summary, path: Path) -> Path | None:
    """Copy probe: the loss drop on a span when the same span appeared d tokens earlier,
    versus d, with the 95% interval of the mean over eval documents (and seeds)."""
    st = _styles(summary)
    series = []
    for name, ts in _drawn_groups(summary).items():
        dists = ts[0].record.get("copy_distances") or []
        if not dists:
            continue
        means, halves = [], []
        for j, d in enumerate(dists):
            mat = units_matrix(ts, f"copy_d{d}")
            if mat is not None:
                iv = mean_interval(mat)
                means.append(iv.mean)
                halves.append(iv.half)
                continue
            # no per-document values: the seed mean of the per-sequence drops, no bar
            cols = []
            for t in ts:
                c = _arr((t.record.get("per_sequence") or {}).get("copy"))
                if c is not None and c.ndim == 2 and c.shape[1] > j:
                    cols.append(_mean(c[:, j]))
            means.append(_mean(cols))
            halves.append(math.nan)
        series.append((name, np.asarray(dists, dtype=np.float64), means, halves))
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, d, m, h) in enumerate(series):
        x = d * _spread(i, len(series))
        m, h = np.array(m), np.array(h)
        ax.plot(x, m, marker="o", label=_label(summary, name), **st[name], **_fill(summary, name))
        ok = np.isfinite(m) & np.isfinite(h)
        if ok.any():
            ax.errorbar(x[ok], m[ok], yerr=h[ok], fmt="none", ecolor=st[name]["color"], capsize=3)
    l_max = _l_max(summary)
    if l_max:
        ax.axvline(l_max, color="k", ls="--", lw=1)
        _mark_l_max(ax, l_max)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    d_all = np.concatenate([d for _, d, _, _ in series])
    ax.set_xlim(d_all.min() / 1.25, d_all.max() * 1.25)  # every probed d, drawn or not
    ax.set_xlabel("distance d back to the first copy, tokens (log scale)")
    ax.set_ylabel(
        "loss drop on the repeated span, nats\n(bars: 95% interval over eval documents x seeds)"
    )
    return _save(fig, ax, path, "Copy probe: retrieval from d tokens back", fontsize=8, ncol=2)


def plot_plans(
    plans: dict[str, schedules.Plan], path: Path, left_out=(), styles: dict | None = None
) -> Path:
    """The schedule's length L(f) (the attention window in window mode) versus tokens
    trained, one step line per schedule; with several modes a colour per schedule shape
    and rate and a line style per mode. ``left_out``: schedules that could not be drawn,
    said on the figure; ``styles``: the sweep's look per schedule (``_styles``), so each
    has the colour it has in the report's other figures."""
    plt = _plt()
    modes = {n: getattr(p, "mode", "reshape") for n, p in plans.items()}
    multi = len(set(modes.values())) > 1
    key = {n: _base(n, modes[n]) if multi else n for n in plans}
    keys = sorted(set(key.values()))  # by name, as _styles: a colour never depends on order
    colour = _palette(len(keys))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in sorted(plans):
        p = plans[name]
        look = (styles or {}).get(name) or {
            "color": colour(keys.index(key[name])),
            "ls": MODE_LS.get(modes[name], "-") if multi else "-",
            "lw": 1.5,
        }
        x = np.append(p.cumulative_tokens(), p.total_tokens)
        ax.step(
            x,
            np.append(p.context, p.context[-1]),
            where="post",
            color=look["color"],
            ls=look["ls"],
            label=name,
            lw=look["lw"],
        )
    truncated = any(m == "truncate" for m in modes.values())
    ax.set_xlabel(
        "tokens trained" + (" (truncate trains fewer than the budget)" if truncated else "")
    )
    ax.set_ylabel(
        "L(f): sequence length"
        + ("\n(window mode: the attention window)" if "window" in modes.values() else "")
    )
    title = "Context-length schedules"
    if left_out or not plans:
        why = ", ".join(left_out) if left_out else "no schedule"
        title += f"\n(not drawn: {why}; the stored trial config does not parse)"
    return _save(fig, ax, path, title, fontsize=8, ncol=2)


def plot_schedule_specs(spec: SweepSpec, path: Path) -> Path:
    plans: dict[str, schedules.Plan] = {}
    for t in spec.trials():
        plans.setdefault(t.schedule.label, t.plan())
    return plot_plans(plans, path)


def plot_schedules(summary: Summary, path: Path) -> Path:
    """Each schedule's plan, rebuilt from its stored trial config (no corpus needed);
    schedules whose config no longer parses are named on the figure, never dropped
    silently."""
    plans: dict[str, schedules.Plan] = {}
    left_out: list[str] = []
    shown = _shown(summary)
    for t in summary.trials:
        name = t.record.get("schedule")
        if name in plans or not shown(name) or not isinstance(t.record.get("config"), dict):
            continue
        try:
            plans[name] = TrialSpec.from_dict(t.record["config"]).plan()
        except (SpecError, KeyError, TypeError, ValueError):
            left_out.append(name)  # a record from another version of the spec
    return plot_plans(plans, path, left_out, _styles(summary))


def plot_training(summary: Summary, path: Path) -> Path | None:
    st = _styles(summary)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    drawn = False
    for name, ts in _drawn_groups(summary).items():
        h = [p for p in ts[0].record.get("history") or [] if isinstance(p, dict)]
        pts = [(_or_nan(p.get("tokens")), _or_nan(p.get("loss"))) for p in h]
        if pts:
            ax.plot(*zip(*pts), label=_label(summary, name), **st[name])
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("tokens trained")
    ax.set_ylabel("training loss (nats)")
    return _save(fig, ax, path, "Training loss (first seed of each schedule)", fontsize=8, ncol=2)


def exposure_survival(edges, counts) -> tuple[np.ndarray, np.ndarray] | None:
    """From a position-exposure histogram (counts or fractions of trained query tokens
    whose farthest attended key lies in [edges[i], edges[i+1]); the last bin open), the
    fraction whose farthest key is at distance >= d, at every bin's lower edge d: 1 at
    d = 0, never rising. ``edges`` may also carry the last bin's upper edge. None when
    the histogram is absent, empty, negative or does not match its edges."""
    c, e = _arr(counts), _arr(edges)
    if c is None or e is None or c.ndim != 1 or e.ndim != 1:
        return None
    if len(e) == len(c) + 1:
        e = e[:-1]
    if len(e) != len(c) or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        return None
    tail = np.cumsum(c[::-1])[::-1]  # tail[i]: tokens whose farthest key is >= edges[i]
    return e, tail / tail[0]


def _key(summary: Summary, names: list[str], lines: bool = False, extra=()) -> list:
    """Legend handles for points (and, with ``lines``, the lines) of ``names``: with
    several modes a colour per schedule shape and rate, then one entry per mode (fill,
    line style); then the markings in ``extra`` (control, pareto, pick, unequal)."""
    from matplotlib.lines import Line2D

    st, modes, multi = _styles(summary), _mode_map(summary), len(_modes(summary)) > 1
    out = []
    if multi:
        bases: dict[str, str] = {}
        for n in names:
            bases.setdefault(_base(n, modes.get(n, "reshape")), n)
        if len(bases) <= 20:
            ref_base = _base(summary.reference, modes.get(summary.reference, "reshape"))
            for b, n in bases.items():
                tag = " (reference's shape)" if b == ref_base else ""
                if _role(summary, n) == "control":
                    tag = " (control)"
                out.append(
                    Line2D([], [], color=st[n]["color"], marker="o", ls="-" if lines else "none")
                )
                out[-1].set_label(b + tag)
        for m in _modes(summary):
            out.append(
                Line2D(
                    [],
                    [],
                    color="dimgrey",
                    ls=MODE_LS.get(m, "-") if lines else "none",
                    marker="o",
                    fillstyle=MODE_FILL.get(m, "full"),
                    markerfacecoloralt="white",
                    ms=8,
                    label=f"mode: {m}" + (" (token-unequal)" if m == "truncate" else ""),
                )
            )
    elif len(names) <= 20:
        for n in names:
            mk = _marker(summary, n, st[n], False)
            ls = st[n]["ls"] if lines else "none"
            out.append(Line2D([], [], ls=ls, lw=st[n]["lw"] if lines else 1, **mk))
            out[-1].set_label(_label(summary, n))
    marks = {
        "control": dict(marker="s", color="dimgrey", ls="none", label="square: control"),
        "pareto": dict(
            marker="o",
            ms=14,
            mfc="none",
            mec="dimgrey",
            ls="none",
            label="ring: Pareto front (id_loss, far_loss, FLOPs)",
        ),
        "pick": dict(marker="*", ms=15, color="gold", mec="k", ls="none", label="star: pick"),
        "unequal": dict(
            marker="$*$",
            ms=9,
            color="k",
            ls="none",
            label="*: token-unequal (fewer tokens than the budget)",
        ),
    }
    out += [Line2D([], [], **marks[k]) for k in extra]
    return out


def _point(
    ax, summary: Summary, row: dict, x, y, xh, yh, st: dict, picked: set, marks: bool = True
) -> None:
    """One schedule's point with its interval bars and its markings: with ``marks``, a
    ring if on the Pareto front and a star if picked; an asterisk if it trained fewer
    tokens than the budget (as in the ranking)."""
    name = row["schedule"]
    style = st[name]
    multi = len(_modes(summary)) > 1
    ax.errorbar(
        x,
        y,
        xerr=xh if math.isfinite(_or_nan(xh)) else None,
        yerr=yh if math.isfinite(_or_nan(yh)) else None,
        capsize=3,
        elinewidth=1,
        ls="none",
        zorder=3,
        **_marker(summary, name, style, multi),
    )
    if marks and row.get("pareto"):
        ax.scatter(x, y, s=260, facecolors="none", edgecolors=style["color"], lw=1.5, zorder=3)
    if marks and name in picked:
        ax.scatter(x, y, s=320, marker="*", color="gold", edgecolors="k", zorder=5)
    if not row.get("token_equal", True):
        ax.annotate(
            "*",
            (x, y),
            xytext=(5, 3),
            textcoords="offset points",
            fontsize=14,
            fontweight="bold",
            zorder=6,
        )


def _cloud(ax, pts: list[tuple[float, float, float, float]]) -> None:
    """Points (x, x bar, y, y bar) of the schedules past ``MAX_DRAWN``, grey and
    unlabelled, in one call (one artist, however many)."""
    a = np.array([p for p in pts if math.isfinite(p[0]) and math.isfinite(p[2])], dtype=float)
    if not len(a):
        return
    a = np.nan_to_num(a.reshape(-1, 4), nan=0.0)
    ax.errorbar(
        a[:, 0], a[:, 2], xerr=a[:, 1], yerr=a[:, 3], fmt=".", ms=4, color="silver",
        elinewidth=0.5, zorder=2, label="other schedules",
    )  # fmt: skip


def _label_points(ax, pts: list[tuple[float, float, str]], fontsize: float = 7) -> None:
    """Name the points of ``ax`` that lie inside its limits: points that coincide on
    screen share one label; a label sits beside its point and just above it, off its
    error bars (on the left in the right half of the axes), and labels that would overlap
    are pushed apart vertically, with a thin line back to the point. Past 30 points, none
    are named (the legend says which)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    (x_lo, x_hi), (y_lo, y_hi) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    groups: list[list] = []
    for x, y, text in pts:
        if not (x_lo <= x <= x_hi and y_lo <= y <= y_hi):
            continue
        px, py = ax.transData.transform((x, y))
        for g in groups:
            if abs(g[0] - px) < 4 and abs(g[1] - py) < 4:
                g[3].append(text)
                break
        else:
            groups.append([px, py, (x, y), [text]])
    if not groups or len(groups) > 30:
        return
    labels = []
    for px, py, xy, names in groups:
        text = ", ".join(names)
        probe = ax.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        left = px > (box.x0 + box.x1) / 2
        # beside the marker and its ring (12 px), and lifted clear of the point's
        # horizontal error bar, which would otherwise run through the text
        x0 = px - 12 - ext.width if left else px + 12
        lift = 0.6 * ext.height + 3
        labels.append(
            {"xy": xy, "px": px, "py": py, "y": py + lift, "x0": x0, "x1": x0 + ext.width,
             "h": ext.height, "text": text, "left": left, "lift": lift}
        )  # fmt: skip
    for _ in range(300):  # push overlapping labels apart until none overlap
        moved = False
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                if a["x1"] < b["x0"] or b["x1"] < a["x0"]:
                    continue
                need = (a["h"] + b["h"]) / 2 + 1
                gap = abs(a["y"] - b["y"])
                if gap >= need:
                    continue
                lo, hi = (a, b) if (a["y"], a["py"]) <= (b["y"], b["py"]) else (b, a)
                lo["y"] -= (need - gap) / 2 + 0.1
                hi["y"] += (need - gap) / 2 + 0.1
                moved = True
        for lab in labels:
            lab["y"] = min(max(lab["y"], box.y0 + lab["h"] / 2), box.y1 - lab["h"] / 2)
        if not moved:
            break
    for lab in labels:
        dx = (lab["x1"] if lab["left"] else lab["x0"]) - lab["px"]
        dy = lab["y"] - lab["py"]
        ax.annotate(
            lab["text"],
            lab["xy"],
            xytext=(dx, dy),
            textcoords="offset pixels",
            ha="right" if lab["left"] else "left",
            va="center",
            fontsize=fontsize,
            bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75),
            zorder=7,
            arrowprops=(
                dict(arrowstyle="-", lw=0.5, color="grey", shrinkA=0, shrinkB=3)
                if abs(dy - lab["lift"]) > lab["h"] / 2
                else None
            ),
        )


def _core(ys, hs) -> tuple[float, float] | None:
    """The y range, bars included, of the bulk of the points when a few lie so far from
    them (more than 6 median absolute deviations from the median) that the bulk would
    span under a third of the axis: then the figure shows the bulk apart as well.
    None when nothing needs a closer look."""
    y, h = np.asarray(ys, dtype=np.float64), np.asarray(hs, dtype=np.float64)
    ok = np.isfinite(y)
    y, h = y[ok], np.nan_to_num(h[ok])
    if len(y) < 4:
        return None
    med = np.median(y)
    mad = np.median(np.abs(y - med))
    core = np.abs(y - med) <= 6 * mad if mad > 0 else y == med
    if core.sum() < 3 or core.all():
        return None
    lo, hi = float((y - h)[core].min()), float((y + h)[core].max())
    full = float((y + h).max() - (y - h).min())
    return (lo, hi) if hi - lo < full / 3 else None


def _pad(lo: float, hi: float, frac: float = 0.08) -> tuple[float, float]:
    span = (hi - lo) or max(abs(hi), 1e-3)
    return lo - frac * span, hi + frac * span


def _ratio_axis(ax, ref_value: float, name: str) -> None:
    """A top axis reading the x value as a multiple of the reference's."""
    if not (math.isfinite(ref_value) and ref_value > 0):
        return
    top = ax.secondary_xaxis("top", functions=(lambda v: v / ref_value, lambda r: r * ref_value))
    top.set_xlabel(f"x {name}'s", fontsize=8)
    top.tick_params(labelsize=8)


def _run_notes(summary: Summary) -> tuple[str, str]:
    """(how many trials ran at a time, the attention kernel of window-mode trials)."""
    conc, kernels = set(), set()
    for t in summary.finished:
        res = ((t.record.get("config") or {}).get("sweep") or {}).get("resources") or {}
        if _finite(res.get("max_concurrent_trials")):
            conc.add(int(res["max_concurrent_trials"]))
        if t.record.get("mode") == "window" and t.record.get("attention_kernel"):
            kernels.add(str(t.record["attention_kernel"]))
    at_once = f"; up to {max(conc)} trials ran at a time" if conc and max(conc) > 1 else ""
    return at_once, ", ".join(sorted(kernels))


def _markings(summary: Summary, rows: list[dict]) -> list[str]:
    """The point markings the figure uses, for its key."""
    out = ["control"] if any(r.get("role") == "control" for r in rows) else []
    out += ["pareto"] if any(r.get("pareto") for r in rows) else []
    picked = {p["schedule"] for p in summary.picks}
    out += ["pick"] if any(r["schedule"] in picked for r in rows) else []
    out += ["unequal"] if any(not r.get("token_equal", True) for r in rows) else []
    return out


def plot_tradeoff(summary: Summary, path: Path) -> Path | None:
    """Each schedule against the reference, far_loss change (y, paired 95% interval)
    versus (a) id_loss cost (paired interval), (b) training wall time, (c) training
    FLOPs; Pareto front circled, picks starred, id_loss costs beyond epsilon shaded,
    modes told apart by the markers' fill, token-unequal points marked *. When a few
    points squash the rest, (d) shows (a) near the reference. Paired, because every
    trial is evaluated on the same windows: unpaired intervals would mostly show how the
    documents differ."""
    rows = summary.schedules
    if not rows:
        return None
    ref = _ref_row(summary)
    st = _styles(summary)
    picked = {p["schedule"] for p in summary.picks}
    pts = []  # (row, id x, id bar, far y, far bar)
    for r in rows:
        if ref is not None:
            # x as the pick rule takes it (difference of seed means), bar from the
            # paired interval; y is the paired interval's own mean, as the rule uses it
            x = _or_nan(r.get("id_loss")) - _or_nan(ref.get("id_loss"))
            xh = _minus_ref(r, ref, "id_loss")[1]
            y, yh = _minus_ref(r, ref, "far_loss")
        else:
            x, xh = _or_nan(r.get("id_loss")), math.nan
            y, yh = _or_nan(r.get("far_loss")), math.nan
        if math.isfinite(y):
            pts.append((r, x, xh, y, yh))
    if not any(math.isfinite(p[1]) for p in pts):
        return None
    core = _core([p[3] for p in pts], [p[4] for p in pts]) if ref is not None else None
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5))
    (ax_id, ax_wall), (ax_flops, ax_zoom) = axes
    for ax in (ax_wall, ax_flops):
        ax.sharey(ax_id)
    panels = [ax_id, ax_wall, ax_flops] + ([ax_zoom] if core else [])
    shown = _shown(summary)
    cloud = [p for p in pts if not shown(p[0]["schedule"])]
    pts = [p for p in pts if shown(p[0]["schedule"])]
    if cloud:  # the schedules past the cap: one grey errorbar call per panel, unlabelled
        for ax in [ax_id] + ([ax_zoom] if core else []):
            _cloud(ax, [p[1:] for p in cloud])
        for ax, key, scale in ((ax_wall, "train_wall_s", 1.0), (ax_flops, "flops", 1e9)):
            vals = [(_or_nan(p[0].get(key)) / scale, math.nan, p[3], p[4]) for p in cloud]
            _cloud(ax, vals)
    for r, x, xh, y, yh in pts:
        for ax in [ax_id] + ([ax_zoom] if core else []):
            if math.isfinite(x):
                _point(ax, summary, r, x, y, xh, yh, st, picked)
        for ax, key, scale in ((ax_wall, "train_wall_s", 1.0), (ax_flops, "flops", 1e9)):
            v = _or_nan(r.get(key)) / scale
            if math.isfinite(v):
                _point(ax, summary, r, v, y, math.nan, yh, st, picked)
    at_once, kernel = _run_notes(summary)
    ylabel = (
        f"far_loss - {summary.reference}, nats\n"
        "(below 0: better past l_max; bars: paired 95% interval)"
        if ref is not None
        else "far_loss, nats"
    )
    xlabel = (
        f"id_loss - {summary.reference}, nats\n"
        f"(shaded: more than epsilon = {EPSILON} worse; bars: paired 95% interval)"
        if ref is not None
        else "id_loss, nats (no reference finished: absolute values)"
    )
    if core:
        inner = [p for p in pts if core[0] <= p[3] <= core[1] and math.isfinite(p[1])]
        xs = [p[1] - np.nan_to_num(p[2]) for p in inner] + [
            p[1] + np.nan_to_num(p[2]) for p in inner
        ]
        ax_zoom.set_xlim(*_pad(min(xs + [0.0]), max(xs + [0.0])))
        ax_zoom.set_ylim(*_pad(*core))
        (x0, x1), (y0, y1) = ax_zoom.get_xlim(), ax_zoom.get_ylim()
        ax_id.add_patch(
            _plt().Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="grey", lw=1, zorder=4)
        )
        ax_id.annotate(
            "(d)", (x1, y1), xytext=(2, 2), textcoords="offset points", fontsize=8, color="grey"
        )
        ax_zoom.set_title("(d) as (a), near the reference", fontsize=10)
    else:
        ax_zoom.axis("off")
    if ref is not None:
        for ax in panels:
            ax.axhline(0, color="k", lw=0.8)
        for ax in [ax_id] + ([ax_zoom] if core else []):
            ax.axvline(0, color="k", lw=0.8)
            lo, hi = ax.get_xlim()
            if hi > EPSILON:
                ax.axvspan(EPSILON, hi, color="grey", alpha=0.1, lw=0)
                ax.set_xlim(lo, hi)
        for ax, key, scale in ((ax_wall, "train_wall_s", 1.0), (ax_flops, "flops", 1e9)):
            v = _or_nan(ref.get(key)) / scale
            if math.isfinite(v):
                ax.axvline(v, color="k", lw=0.8, ls="--")
                _ratio_axis(ax, v, summary.reference)
    for ax in [ax_id] + ([ax_zoom] if core else []):
        ax.set_xlabel(xlabel)
    for ax in panels:
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax_wall.set_xlabel(f"training wall time, s (train_wall_s, seed mean{at_once})")
    if not any(math.isfinite(_or_nan(p[0].get("train_wall_s"))) for p in pts):
        ax_wall.text(
            0.5,
            0.5,
            "training wall time not recorded\n(records from before train_wall_s)",
            ha="center",
            va="center",
            transform=ax_wall.transAxes,
        )
    ax_flops.set_xlabel(
        "training GFLOPs (6N + attention per token, as trained)"
        + (f"\nwindow mode ran on {kernel}" if kernel else "")
        + (": its masked keys are computed and counted" if kernel == "sdpa" else "")
    )
    ax_id.set_title("(a) versus the in-distribution cost", fontsize=10)
    ax_wall.set_title("(b) versus training wall time", fontsize=10)
    ax_flops.set_title("(c) versus training FLOPs", fontsize=10)
    fig.suptitle(
        "far_loss against the reference, beside its in-distribution, time and compute cost"
        if ref is not None
        else "far_loss beside id_loss, time and compute (no reference finished)"
    )
    handles = _key(summary, [p[0]["schedule"] for p in pts], extra=_markings(summary, rows))
    if cloud:
        from matplotlib.lines import Line2D

        handles.append(
            Line2D([], [], marker=".", color="silver", ls="none", label=f"grey: {len(cloud)} "
                   "other schedules (the ranking names them)")
        )  # fmt: skip
    rect = (0, 0, 1, 1)
    if handles and core:  # the key below the panels
        leg = fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
        height = leg.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
        rect = (0, height + 0.01, 1, 1)
    elif handles:  # the key in the free fourth cell
        ax_zoom.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    fig.tight_layout(rect=rect)
    _label_points(ax_zoom if core else ax_id, [(p[1], p[3], p[0]["schedule"]) for p in pts])
    return _finish(fig, path, rect=rect)


def plot_exposure(summary: Summary, path: Path) -> Path | None:
    """Left: per schedule, the fraction of trained query tokens whose farthest attended
    key is at distance >= d (from the records' exposure histograms), l_max / 2 marked.
    Right: far_loss change against the reference (paired 95% interval) versus that
    fraction at l_max / 2 (exposure_far), one labelled point per schedule; when a few
    points lie far from the rest, the y axis is broken so that both are readable."""
    l_max = _l_max(summary)
    curves = {}
    shown = _shown(summary)
    for r in summary.schedules:
        if not shown(r["schedule"]):
            continue
        ex = r.get("exposure") or {}
        sv = exposure_survival(ex.get("edges"), ex.get("fractions"))
        if sv is not None:
            curves[r["schedule"]] = sv
    if not curves:
        return None
    ref = _ref_row(summary)
    st, rows = _styles(summary), _rows(summary)
    multi = len(_modes(summary)) > 1
    picked = {p["schedule"] for p in summary.picks}
    pts = []  # (x, y, bar, name)
    for name in curves:
        x = _or_nan(rows[name].get("exposure_far"))
        y, yh = (
            _minus_ref(rows[name], ref, "far_loss")
            if ref is not None
            else (_or_nan(rows[name].get("far_loss")), math.nan)
        )
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, y, yh, name))
    core = _core([p[1] for p in pts], [p[2] for p in pts]) if ref is not None else None
    plt = _plt()
    # 13 inches, not wider: the report scales a figure to its column, and at 800 px a
    # wider one's 8-9 pt text came out under 6 px
    fig = plt.figure(figsize=(13, 5.8))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.42])
    left, key = fig.add_subplot(grid[0]), fig.add_subplot(grid[2])
    key.axis("off")
    if core:
        sub = grid[1].subgridspec(2, 1, height_ratios=[1, 2], hspace=0.06)
        top = fig.add_subplot(sub[0])
        right = [top, fig.add_subplot(sub[1], sharex=top)]
    else:
        right = [fig.add_subplot(grid[1])]
    for name, (d, frac) in curves.items():
        mk = _marker(summary, name, st[name], multi) | {"ms": 4}
        left.plot(d, frac, alpha=0.9, lw=st[name]["lw"], ls=st[name]["ls"], **mk)
    left.set_xscale("symlog", base=2, linthresh=1, linscale=0.5)
    edges = sorted({float(e) for d, _ in curves.values() for e in d})
    left.set_xticks(edges)
    left.set_xticklabels([f"{e:g}" for e in edges])
    left.set_ylim(-0.02, 1.04)
    if l_max:
        left.axvline(l_max / 2, color="k", ls="--", lw=1)
        left.annotate(
            f"l_max / 2 = {l_max // 2}",
            (l_max / 2, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-4, -14),
            textcoords="offset points",
            ha="right",
            fontsize=9,
        )
    left.set_xlabel("distance d back to the farthest attended key, tokens (log scale; 0 at left)")
    left.set_ylabel("fraction of trained query tokens\nwhose farthest attended key is >= d back")
    left.set_title("Position exposure during training", fontsize=10)
    left.grid(alpha=0.3)
    for ax in right:
        for x, y, yh, name in pts:
            _point(ax, summary, rows[name], x, y, math.nan, yh, st, picked, marks=False)
        if ref is not None:
            ax.axhline(0, color="k", lw=0.8)
        ax.grid(alpha=0.3)
    if pts:
        xs = [p[0] for p in pts]
        span = max(xs) - min(xs) or 0.1
        right[-1].set_xlim(min(xs) - 0.12 * span, max(xs) + 0.12 * span)
    if core:
        top, bottom = right
        far = [p for p in pts if not core[0] <= p[1] <= core[1]]
        ys = [p[1] - np.nan_to_num(p[2]) for p in far] + [p[1] + np.nan_to_num(p[2]) for p in far]
        top.set_ylim(*_pad(min(ys), max(ys), 0.15))
        bottom.set_ylim(*_pad(*core))
        top.spines["bottom"].set_visible(False)
        bottom.spines["top"].set_visible(False)
        top.tick_params(bottom=False, labelbottom=False)
        for ax, y in ((top, 0), (bottom, 1)):  # the break marks
            ax.plot([0, 1], [y, y], transform=ax.transAxes, marker=[(-1, -0.5), (1, 0.5)],
                    ms=10, ls="none", color="k", mec="k", mew=1, clip_on=False)  # fmt: skip
        top.set_title("Does extrapolation follow exposure to long distances?", fontsize=10)
    else:
        right[0].set_title("Does extrapolation follow exposure to long distances?", fontsize=10)
    right[-1].set_ylabel(
        (
            f"far_loss - {summary.reference}, nats\n(below 0: better; bars: paired 95% interval)"
            + ("\naxis broken: the far points above" if core else "")
        )
        if ref is not None
        else "far_loss, nats (no reference finished)"
    )
    half = f"{l_max // 2}" if l_max else "l_max / 2"
    right[-1].set_xlabel(f"exposure_far: fraction of trained query tokens reaching >= {half} back")
    names = list(curves)
    extra = _markings(summary, [rows[n] for n in names])
    extra = [e for e in extra if e in ("control", "unequal") and (multi or e == "unequal")]
    handles = _key(summary, names, lines=True, extra=extra)
    if handles:
        key.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    fig.tight_layout()
    for ax in right:
        _label_points(ax, [(x, y, name) for x, y, _, name in pts], fontsize=8)
    return _finish(fig, path)


def _family(r: dict) -> str:
    """The schedule's name without its ramp rate and mode: one line per shape (and tag)
    and mode."""
    name, rate = _base(r["schedule"], r.get("mode") or "reshape"), _or_nan(r.get("ramp_rate"))
    suffix = f"-r{rate:g}"
    return name[: -len(suffix)] if name.endswith(suffix) else name


def plot_ramp(summary: Summary, path: Path) -> Path | None:
    """far_loss change against the reference versus ramp rate, one line per shape, with
    paired 95% intervals; rate-free shapes as horizontal lines (their interval shaded).
    Controls are left out (their offset would flatten the scale; see the ranking)."""
    ref = _ref_row(summary)
    multi = len(_modes(summary)) > 1
    fams: dict[tuple[str, str], list[dict]] = {}
    for r in summary.schedules:
        if r is not ref and r.get("role") != "control":
            fams.setdefault((_family(r), r.get("mode") or "reshape"), []).append(r)
    if not fams:
        return None
    shapes = list(dict.fromkeys(f for f, _ in fams))
    colour = _palette(len(shapes))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rates = [_or_nan(r.get("ramp_rate")) for rs in fams.values() for r in rs]
    rates = [x for x in rates if math.isfinite(x)]
    # a small shift per shape, so that bars at the same rate do not hide each other
    jitter = 0.006 * ((max(rates) - min(rates)) if len(set(rates)) > 1 else 0.1) if rates else 0
    for i, ((fam, mode), rs) in enumerate(fams.items()):
        color = colour(shapes.index(fam))
        ls = MODE_LS.get(mode, "-") if multi else "-"
        label = f"{fam} [{mode}]" if multi else fam
        rs = sorted(rs, key=lambda r: _or_nan(r.get("ramp_rate")))
        ys = [
            _minus_ref(r, ref, "far_loss") if ref else (_or_nan(r.get("far_loss")), math.nan)
            for r in rs
        ]
        y = np.array([v[0] for v in ys])
        h = np.array([v[1] for v in ys])
        if len(rs) == 1 and rs[0].get("shape") in RATE_FREE_SHAPES:
            if math.isfinite(y[0]):
                ax.axhline(y[0], color=color, ls=ls if multi else ":", label=f"{label} (no ramp)")
                if math.isfinite(h[0]):
                    ax.axhspan(y[0] - h[0], y[0] + h[0], color=color, alpha=0.08, lw=0)
            continue
        x = np.array([_or_nan(r.get("ramp_rate")) for r in rs]) + jitter * (i - (len(fams) - 1) / 2)
        ax.plot(x, y, marker="o", color=color, ls=ls, label=label)
        ok = np.isfinite(h) & np.isfinite(y) & np.isfinite(x)
        if ok.any():
            ax.errorbar(x[ok], y[ok], yerr=h[ok], fmt="none", ecolor=color, capsize=3)
    ax.set_xlabel(
        "ramp rate r (fraction of the budget spent ramping; shapes shifted apart)"
        + ("\ncolour: shape; line style: mode [in brackets]" if multi else "")
    )
    if ref is not None:
        ax.axhline(0, color="k", lw=0.8, label=f"{summary.reference} (reference)")
        ax.set_ylabel(
            f"far_loss - {summary.reference}, nats\n"
            "(below 0: better past l_max; bars: paired 95% interval)"
        )
    else:
        ax.set_ylabel("far_loss, nats (no reference finished)")
    return _save(fig, ax, path, "far_loss versus ramp rate, per shape", fontsize=8)


def _eval_subset(rec: dict) -> int:
    """How many of the first eval windows the intermediate evaluations used (0: unknown)."""
    ev = ((rec.get("config") or {}).get("sweep") or {}).get("eval") or {}
    k = ev.get("intermediate_sequences")
    return int(k) if _finite(k) else 0


def plot_evolution(summary: Summary, path: Path) -> Path | None:
    """far_loss at the intermediate evaluations, versus tokens trained (seed mean where
    the seeds evaluated at the same points). The final point is recomputed on the same
    windows (the first ``eval.intermediate_sequences``), so it continues the line
    rather than jumping to another sample. None when there were no intermediate evals."""
    groups = _drawn_groups(summary)
    if not any(t.record.get("evals") for ts in groups.values() for t in ts):
        return None
    st = _styles(summary)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    k_used = set()
    for name, ts in groups.items():
        lines = []
        for t in ts:
            rec = t.record
            pts = [
                (_or_nan(e.get("tokens")), _or_nan(e.get("far_loss")))
                for e in rec.get("evals") or []
                if isinstance(e, dict)
            ]
            k = _eval_subset(rec)
            far = _arr((rec.get("per_sequence") or {}).get("far_loss"))
            if pts and k > 0 and far is not None and far.ndim == 1:
                pts.append((_or_nan(rec.get("tokens_trained")), _mean(far[:k])))
                k_used.add(min(k, len(far)))
            if pts:
                lines.append(pts)
        if not lines:
            continue
        same = all([p[0] for p in ln] == [p[0] for p in lines[0]] for ln in lines)
        if same:
            x = [p[0] for p in lines[0]]
            y = [_mean([ln[j][1] for ln in lines]) for j in range(len(x))]
        else:
            x, y = [p[0] for p in lines[0]], [p[1] for p in lines[0]]
        ax.plot(x, y, marker="o", label=_label(summary, name), **st[name])
    ax.set_xlabel("tokens trained")
    k_txt = f"the first {min(k_used)} eval windows" if len(k_used) == 1 else "the eval subset"
    ax.set_ylabel(f"far_loss on {k_txt}, nats\n(lower is better)")
    return _save(
        fig,
        ax,
        path,
        "far_loss during training (intermediate evaluations; final point on the same windows)",
        fontsize=8,
        ncol=2,
    )


def _finish(fig, path: Path, rect=(0, 0, 1, 1)) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _save(fig, ax, path: Path, title: str, **legend_kw) -> Path:
    """The finish every one-axis figure shares: title, grid, a legend if readable, PNG."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, **legend_kw)
    return _finish(fig, path)


def _legend(ax, **kw) -> None:
    """A legend when it can be read; past 20 entries the table says what is what. Past
    8 entries it goes to the right of the axes, which would hide lines, and the figure
    widens to hold it."""
    n = len(ax.get_legend_handles_labels()[1])
    if not 0 < n <= 20:
        return
    if n <= 8:
        ax.legend(**kw)
        return
    kw.pop("ncol", None)
    leg = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, **kw)
    fig = ax.figure
    width = leg.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    w, h = fig.get_size_inches()
    fig.set_size_inches(w + width + 0.1, h)


# (file stem, title, function, caption, what the report says when there is nothing to draw)
FIGURES = (
    (
        "curves",
        "Loss versus position",
        plot_curves,
        "Seed-mean held-out loss per position, log-binned. Band: ±2 standard errors of each "
        "bin mean over the eval windows, an upper bound (positions of one window move "
        "together), sequence noise only. All schedules are evaluated on the same windows, "
        "so overlapping bands do not mean two schedules are alike: the lower panel and the "
        "per-band figure compare them paired. Past five schedules only the reference's band "
        "is drawn.",
        "no loss curves recorded",
    ),
    (
        "far_bands",
        "far_loss per band vs reference",
        plot_far_bands,
        "Each far band's loss minus the reference's, paired on the same windows; bars: "
        "paired 95% interval of the difference.",
        "no finished reference schedule, or nothing to compare with it",
    ),
    (
        "ctx_gain",
        "Context use past l_max",
        plot_ctx_gain,
        "Loss with only the last l_max tokens as context minus loss with the whole prefix, "
        "per position past l_max (averaged over the probe windows and seeds). Above 0: the "
        "model uses context from further back than it was trained on.",
        "no sliding-window probe recorded",
    ),
    (
        "copy",
        "Copy probe",
        plot_copy,
        "Loss drop on a span of natural text when the same span appeared d tokens earlier. "
        "Bars: 95% interval of the mean over eval documents (and seeds, when several).",
        "no copy probe recorded",
    ),
    (
        "tradeoff",
        "far_loss versus in-distribution loss, wall time and FLOPs",
        plot_tradeoff,
        "far_loss minus the reference's (y, with its paired 95% interval) against (a) id_loss "
        "minus the reference's (paired 95% interval), (b) training wall time (train_wall_s: "
        "the training loop without its evaluations, seed mean, seconds on the machine that "
        "ran it; one measurement per seed and trials may share the machine, so only large "
        "differences count), (c) training FLOPs as trained. The dashed lines and the top "
        "axes mark the reference's time and FLOPs, so the anchors' speed claims (SkyLadder: "
        "up to 22% faster training; Dataset Decomposition: faster) can be checked on this "
        "proxy: faster is left. Rings: Pareto front of (id_loss, far_loss, FLOPs); stars: "
        "picks; squares: controls. With several modes, the colour is the schedule's shape and "
        "rate and the marker's fill its mode (see the key). *: token-unequal (truncate): it "
        "trained fewer tokens than the budget, so its losses are not a token-equal "
        "comparison, and its time and FLOPs are lower partly for that reason.",
        "no finished schedules",
    ),
    (
        "exposure",
        "Position exposure and extrapolation",
        plot_exposure,
        "Left: per schedule (seed mean), the fraction of trained query tokens whose farthest "
        "attended key was at least d tokens back, from the records' log2-binned exposure "
        "histograms (exact at the bin edges drawn; dashed: l_max / 2). Right: far_loss minus "
        "the reference's (paired 95% interval) against exposure_far, that fraction at "
        "l_max / 2, one point per schedule: if extrapolation follows exposure to long "
        "distances, the points fall from left to right. With one seed and a few schedules "
        "this is a picture, not a trend test: the bars cover eval-document noise (seed noise "
        "only with several seeds), and the schedules differ in more than their exposure.",
        "no position exposure recorded (records from before the exposure histogram)",
    ),
    (
        "ramp",
        "far_loss versus ramp rate",
        plot_ramp,
        "far_loss minus the reference's per ramp rate, one line per shape; rate-free shapes "
        "are horizontal lines with their interval shaded. Controls are left out.",
        "no candidate schedules",
    ),
    (
        "evolution",
        "far_loss during training",
        plot_evolution,
        "far_loss at the intermediate evaluations, on the intermediate evaluations' windows; "
        "the last point is the final model on those same windows.",
        None,  # no intermediate evaluations configured: nothing to say
    ),
    (
        "training",
        "Training loss",
        plot_training,
        "",
        "no training history recorded",
    ),
)


# ----------------------------------------------------------------------------- study


def plot_study_curves(curves: dict, study, found: dict, l_max: int, path: Path) -> Path | None:
    """BTLM's chart with its uncertainty, from ``found["curves"]``: the main arm's
    absolute loss per position bin, seed and document mean with its 95% band (left), and
    each schedule minus the reference per bin with its paired 95% band (right; bands the
    shared windows do not widen). Bins are the records' (powers of two and the band
    edges), drawn at their geometric centre from position 4 on, so no point is a single
    position. With a rotary arm, a third panel: rotary minus ALiBi for the same schedule,
    seeds and windows (``curves``: seed-mean per-position curves by arm)."""
    per = found.get("curves") or {}
    ref = found.get("reference")
    if ref not in per:
        return None
    f = study.findings
    rope = curves.get(f.get("rope_arm")) or {}
    main = curves.get(study.main) or {}
    both = [n for n in (ref, f.get("btlm"), *(found.get("best_ramps") or [])[:1]) if n in rope]
    both = [n for n in both if n in main]
    plt = _plt()
    n_ax = 3 if both else 2
    fig, axes = plt.subplots(1, n_ax, figsize=(5.6 * n_ax, 4.4), squeeze=False)
    names = sorted(per, key=lambda n: (n != ref, n))
    pal = _palette(len(names))
    colours = {n: pal(i) for i, n in enumerate(names)}
    ax, dx = axes[0][0], axes[0][1]
    for n in names:
        c = per[n]
        hi_e = np.asarray(c["edges"], dtype=float)
        lo_e = np.concatenate([[0.0], hi_e[:-1]])
        x = np.sqrt((lo_e + 1) * hi_e)  # bin (lo, hi]: positions lo+1..hi
        keep = hi_e >= 4
        y, lo, hi = (np.asarray(c[k], dtype=float)[keep] for k in ("mean", "lo", "hi"))
        ax.plot(x[keep], y, color=colours[n], label=n, marker="o", ms=2.5)
        ax.fill_between(x[keep], lo, hi, color=colours[n], alpha=0.15, lw=0)
        v = c.get("vs_ref")
        if v:
            y, lo, hi = (np.asarray(v[k], dtype=float)[keep] for k in ("mean", "lo", "hi"))
            dx.plot(x[keep], y, color=colours[n], label=n, marker="o", ms=2.5)
            dx.fill_between(x[keep], lo, hi, color=colours[n], alpha=0.15, lw=0)
    ax.set_ylabel("loss, nats (mean over seeds and windows)")
    ax.set_title(f"{study.main}: loss per position bin (95% bands)")
    dx.axhline(0, color="k", lw=0.8)
    dx.set_ylabel(f"loss minus {ref}, nats (below 0: better)")
    dx.set_title("minus the reference, paired by seed and window (95%)")
    if both:
        rx = axes[0][2]
        for n in both:
            xb, yb, _ = _binned(rope[n] - main[n], split=l_max + 1, per_octave=4)
            rx.plot(xb, yb, color=colours.get(n, "k"), label=n, marker="o", ms=2.5)
        rx.axhline(0, color="k", lw=0.8)
        rx.set_yscale("symlog", linthresh=0.01)
        rx.set_ylabel("rotary minus ALiBi, nats (symlog)")
        rx.set_title("rotary minus ALiBi (seed means)")
    for a in axes[0]:
        a.set_xscale("log", base=2)
        a.set_xlabel("token position (bin centre)")
        a.axvline(l_max, color="k", ls="--", lw=0.8)
        _mark_l_max(a, l_max)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    return _finish(fig, path)


def plot_study_bands(found: dict, study, path: Path) -> Path | None:
    """Paired difference from two stages per far band, for the negative control, the
    reference and every ramp of the main arm, with 95% intervals."""
    bands_ = found.get("bands") or []
    c = found.get("ramp_vs_btlm", {}).get("main", {})
    a = found.get("btlm", {})
    series = {}
    if a.get("negative_vs_btlm"):
        series[study.findings.get("negative")] = a["negative_vs_btlm"]
    if a.get("btlm_vs_reference"):  # reference - btlm: the sign flipped
        flip = {
            k: {"mean": -v["mean"], "lo": -v["hi"], "hi": -v["lo"]}
            for k, v in a["btlm_vs_reference"].items()
            if v.get("lo") is not None
        }
        series[found.get("reference")] = flip
    series.update(c)
    series = {k: v for k, v in series.items() if v}
    if not series or not bands_:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(bands_))
    for i, (name, d) in enumerate(series.items()):
        m = np.array([_or_nan((d.get(b) or {}).get("mean")) for b in bands_])
        lo = np.array([_or_nan((d.get(b) or {}).get("lo")) for b in bands_])
        hi = np.array([_or_nan((d.get(b) or {}).get("hi")) for b in bands_])
        off = 0.6 * (i - (len(series) - 1) / 2) / max(len(series), 1)
        ax.errorbar(x + off, m, yerr=[m - lo, hi - m], fmt="o", ms=4, capsize=2, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [b.replace("far_x", "≤ ") + "×l_max" for b in bands_])
    ax.set_ylabel(f"loss minus {study.findings.get('btlm')}, nats\n(below 0: better)")
    title = f"Far bands against {study.findings.get('btlm')} (paired 95%)"
    return _save(fig, ax, path, title, fontsize=7, ncol=2)


def plot_transfer(t: dict, path: Path) -> Path | None:
    """Each schedule's far_loss gain over the reference at the two widths."""
    labels = t.get("labels") or []
    if not labels:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    xs = np.array([t["gain_a"][k] for k in labels])
    ys = np.array([t["gain_b"][k] for k in labels])
    ax.scatter(xs, ys)
    for x, y, k in zip(xs, ys, labels):
        ax.annotate(k, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo, hi = _pad(min(xs.min(), ys.min(), 0), max(xs.max(), ys.max(), 0))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("far_loss gain over the reference, width 1 (nats)")
    ax.set_ylabel("far_loss gain over the reference, width 2 (nats)")
    rho = "n/a" if t.get("rho") is None else f"{t['rho']:+.2f} [{t['lo']:+.2f}, {t['hi']:+.2f}]"
    ax.set_title(f"Width transfer: Spearman {rho}")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- search


def _samples(summary: Summary) -> list[Trial]:
    """A search's sampled trials (finished or stopped), in the order they were asked."""
    from sweep.run.search import SAMPLE_PREFIX

    out = [
        t
        for t in summary.trials
        if t.id.startswith(SAMPLE_PREFIX) and t.status in ("finished", "stopped")
    ]
    return sorted(out, key=lambda t: t.id)


def _sample_value(t: Trial, key: str) -> float:
    m = t.metrics if t.status == "finished" else (t.record.get("metrics") or {})
    return _or_nan(m.get(key))


def plot_search_path(summary: Summary, path: Path) -> Path | None:
    """The searcher's path: far_loss of every sample in the order asked (hollow: stopped
    at a rung, its intermediate value), the best so far, and the reference's level."""
    samples = _samples(summary)
    if not samples:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    n = np.array([int(t.id[1:4]) for t in samples])
    far = np.array([_sample_value(t, "far_loss") for t in samples])
    done = np.array([t.status == "finished" for t in samples])
    ax.scatter(n[done], far[done], label="finished", color="C0")
    ax.scatter(
        n[~done], far[~done], label="stopped (at its rung)", facecolors="none", edgecolors="C3"
    )
    best = np.minimum.accumulate(np.where(done, far, np.inf))
    ax.step(n, best, where="post", color="C0", alpha=0.6, label="best finished so far")
    ref = _ref_row(summary)
    if ref is not None and _finite(ref.get("far_loss")):
        ax.axhline(ref["far_loss"], color="k", ls="--", lw=0.8, label=f"{summary.reference}")
    ax.set_xlabel("sample (order asked)")
    ax.set_ylabel("far_loss, nats (lower is better)")
    return _save(fig, ax, path, "Searcher path", fontsize=8)


def plot_search_params(summary: Summary, path: Path) -> Path | None:
    """Partial dependence, read off the samples: far_loss against each searched parameter
    (ramp rate, l_min, degree for ramps; switch fraction and l_short for two stages),
    one colour per shape."""
    samples = [t for t in _samples(summary) if t.status == "finished"]
    if len(samples) < 2:
        return None
    keys = ("ramp_rate", "l_min", "degree", "switch", "l_short")
    scheds = {t.id: t.record["config"]["schedule"] for t in samples}
    from sweep.config.spec import parse
    from sweep.run.search import reads, space_params

    sw = parse(samples[0].record["config"]["sweep"], paths=False)
    searched = space_params(sw.search.space, sw)  # a range of one value is not searched
    used = [
        k for k in keys if k in searched and any(k in reads(s["shape"]) for s in scheds.values())
    ]
    if not used:
        return None
    plt = _plt()
    fig, axes = plt.subplots(
        1, len(used), figsize=(3.2 * len(used), 3.4), squeeze=False, sharey=True
    )
    shapes = sorted({s["shape"] for s in scheds.values()})
    pal = _palette(len(shapes))
    for ax, k in zip(axes[0], used):
        for i, shape in enumerate(shapes):
            pts = [
                (scheds[t.id][k], _sample_value(t, "far_loss"))
                for t in samples
                if scheds[t.id]["shape"] == shape and k in reads(shape)
            ]
            if pts:
                x, y = zip(*pts)
                ax.scatter(x, y, color=pal(i), label=shape, s=18)
        ax.set_xlabel(k)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("far_loss, nats")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.collections}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper right")
    fig.suptitle("far_loss against each searched parameter (finished samples)")
    return _finish(fig, path, rect=(0, 0, 1, 0.93))


# a search's figures (drawn only when the sweep has sampled trials)
FIGURES = FIGURES + (
    (
        "search_path",
        "Searcher path",
        plot_search_path,
        "far_loss of every sampled schedule in the order the searcher asked for it; hollow: "
        "stopped at a rung (its intermediate far_loss on the eval subset); line: best "
        "finished so far; dashed: the reference.",
        "",
    ),
    (
        "search_params",
        "Searched parameters",
        plot_search_params,
        "Partial dependence read off the samples: each finished sample's far_loss against "
        "the parameters its shape reads (one seed each: seed noise is not shown).",
        "",
    ),
)
