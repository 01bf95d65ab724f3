"""The sweep report's figures of loss (``plot_*``: loss by position, per far band,
context use, the copy probe, ramp rate, evolution, training loss) and ``FIGURES``, the
table of the sweep's figures the report draws from (with the trade-off and exposure
figures of ``figures_tradeoff``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sweep.analysis import metrics
from sweep.analysis.aggregate import Summary
from sweep.analysis.intervals import mean_interval
from sweep.analysis.paired import units_matrix
from sweep.config.shapes import RATE_FREE_SHAPES
from sweep.report.figure_data import (
    _arr,
    _base,
    _binned,
    _finite,
    _l_max,
    _mean,
    _minus_ref,
    _modes,
    _or_nan,
    _ref_row,
    _rows,
    _seed_mean,
)
from sweep.report.figures_tradeoff import plot_exposure, plot_tradeoff
from sweep.report.style import (
    MODE_LS,
    _drawn_groups,
    _fill,
    _finish,
    _label,
    _legend,
    _mark_l_max,
    _palette,
    _save,
    _shown,
    _spread,
    _styles,
    plt,
)


def plot_curves(summary: Summary, path: Path) -> Path | None:
    """Loss versus position, one line per schedule (seed mean, log-binned), with a band
    of +-2 standard errors of each bin mean over the eval sequences (an upper bound, see
    ``_binned``), l_max marked. Below, each schedule minus the reference on the same
    eval windows, with the paired 95% interval of every far band's mean."""
    curves, ses = _curves_and_errors(summary)
    l_max = _l_max(summary)
    if not curves or l_max is None:
        return None
    st = _styles(summary)
    ref_curve = curves.get(summary.reference)
    lower = ref_curve is not None and len(curves) > 1
    fig, axes = plt.subplots(
        2 if lower else 1,
        1,
        figsize=(9, 8 if lower else 5.5),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2]} if lower else None,
    )
    top = axes[0, 0]
    _draw_curves(top, summary, curves, ses, st, l_max)
    if lower:
        _draw_minus_reference(axes[1, 0], summary, curves, st, l_max)
    for ax in axes[:, 0]:
        ax.axvline(l_max, color="k", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    _mark_l_max(top, l_max)
    axes[-1, 0].set_xlabel("token position p (log scale)")
    _legend(top, fontsize=8, ncol=2)
    return _finish(fig, path)


def _curves_and_errors(summary: Summary) -> tuple[dict, dict]:
    """Per drawn schedule: its seed-mean loss curve, and a bound on that curve's
    standard error (None when the records hold none)."""
    curves, ses = {}, {}
    for name, ts in _drawn_groups(summary).items():
        curve = _seed_mean([t.record.curve for t in ts])
        if curve is None or curve.ndim != 1:
            continue
        curves[name] = curve
        # Over seeds, the root mean square of their SEs: again an upper bound on the seed
        # mean's SE (reached when the seeds' errors move together, as they largely do,
        # since the seeds share the windows). It is eval-window noise only, no seed noise.
        se = [a for a in (_arr(t.record.curve_se) for t in ts) if a is not None]
        se = [a for a in se if a.shape == curve.shape]
        ses[name] = np.sqrt(np.mean(np.square(se), axis=0)) if se else None
    return curves, ses


def _draw_curves(top, summary: Summary, curves: dict, ses: dict, st: dict, l_max: int) -> None:
    """The upper panel: each schedule's binned curve, with its error band."""
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


def _draw_minus_reference(bottom, summary: Summary, curves: dict, st: dict, l_max: int) -> None:
    """The lower panel: each schedule's curve minus the reference's, with the paired 95%
    interval of every far band's mean."""
    ref_curve = curves[summary.reference]
    ref_row = _ref_row(summary)
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


def plot_far_bands(summary: Summary, path: Path) -> Path | None:
    """far_loss in each band (l_max, 2 l_max], (2 l_max, 4 l_max], ... of every schedule
    minus the reference's, with the paired 95% interval of the difference."""
    ref = _ref_row(summary)
    l_max = _l_max(summary)
    if ref is None or l_max is None:
        return None
    ref_trial = next(t for t in summary.finished if t.record.schedule == summary.reference)
    eval_length = ref_trial.record.eval_length
    length = int(eval_length) if _finite(eval_length) else len(ref_trial.record.curve or [])
    bands = metrics.bands(length, l_max)
    shown = _shown(summary)
    others = [r for r in summary.schedules if r is not ref and shown(r["schedule"])]
    if not bands or not others:
        return None
    st = _styles(summary)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = np.arange(len(bands), dtype=np.float64)
    for i, r in enumerate(others):
        vals = [_minus_ref(r, ref, b[0]) for b in bands]
        y = np.array([v[0] for v in vals])
        h = np.array([v[1] for v in vals])
        x = xs + 0.06 * (i - (len(others) - 1) / 2)
        look = st[r["schedule"]]
        fill = _fill(summary, r["schedule"])
        ax.plot(x, y, marker="o", label=_label(summary, r["schedule"]), **look, **fill)
        ok = np.isfinite(h) & np.isfinite(y)
        if ok.any():
            ax.errorbar(x[ok], y[ok], yerr=h[ok], fmt="none", ecolor=look["color"], capsize=3)
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
    fig, ax = plt.subplots(figsize=(9, 4.5))
    drawn = False
    for name, ts in _drawn_groups(summary).items():
        gain = _seed_mean([t.record.ctx_gain_curve for t in ts])
        l_max = _or_nan(ts[0].record.l_max)
        if gain is None or gain.ndim != 1 or not math.isfinite(l_max):
            continue
        x, y, _ = _binned(gain, int(l_max) + 1)
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
        dists = ts[0].record.copy_distances or []
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
                drops = _arr((t.record.per_sequence or {}).get("copy"))
                if drops is not None and drops.ndim == 2 and drops.shape[1] > j:
                    cols.append(_mean(drops[:, j]))
            means.append(_mean(cols))
            halves.append(math.nan)
        series.append((name, np.asarray(dists, dtype=np.float64), means, halves))
    if not series:
        return None
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


def plot_training(summary: Summary, path: Path) -> Path | None:
    st = _styles(summary)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    drawn = False
    for name, ts in _drawn_groups(summary).items():
        h = [p for p in ts[0].record.history or [] if isinstance(p, dict)]
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


def _eval_subset(summary: Summary) -> int:
    """How many of the first eval windows the intermediate evaluations used (0: unknown)."""
    k = summary.sweep.eval.intermediate_sequences if summary.sweep else None
    return int(k) if _finite(k) else 0


def plot_evolution(summary: Summary, path: Path) -> Path | None:
    """far_loss at the intermediate evaluations, versus tokens trained (seed mean where
    the seeds evaluated at the same points). The final point is recomputed on the same
    windows (the first ``eval.intermediate_sequences``), so it continues the line
    rather than jumping to another sample. None when there were no intermediate evals."""
    groups = _drawn_groups(summary)
    if not any(t.record.evals for ts in groups.values() for t in ts):
        return None
    st = _styles(summary)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    k_used = set()
    subset = _eval_subset(summary)
    for name, ts in groups.items():
        lines = []
        for t in ts:
            rec = t.record
            pts = [
                (_or_nan(e.get("tokens")), _or_nan(e.get("far_loss")))
                for e in rec.evals or []
                if isinstance(e, dict)
            ]
            k = subset
            far = _arr((rec.per_sequence or {}).get("far_loss"))
            if pts and k > 0 and far is not None and far.ndim == 1:
                pts.append((_or_nan(rec.tokens_trained), _mean(far[:k])))
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
