"""The sweep report's two scatter figures: far_loss against its costs (in-distribution
loss, wall time, FLOPs: ``plot_tradeoff``) and against position exposure
(``plot_exposure``), with the exposure histogram's survival curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from sweep.analysis.aggregate import Summary
from sweep.analysis.pick import EPSILON
from sweep.report.figure_data import (
    _arr,
    _l_max,
    _minus_ref,
    _modes,
    _or_nan,
    _ref_row,
    _rows,
)
from sweep.report.style import (
    _cloud,
    _core,
    _finish,
    _key,
    _label_points,
    _marker,
    _markings,
    _pad,
    _point,
    _ratio_axis,
    _shown,
    _styles,
    plt,
)


def exposure_survival(edges, counts) -> tuple[np.ndarray, np.ndarray] | None:
    """From a position-exposure histogram (counts or fractions of trained query tokens
    whose farthest attended key lies in [edges[i], edges[i+1]); the last bin open), the
    fraction whose farthest key is at distance >= d, at every bin's lower edge d: 1 at
    d = 0, never rising. ``edges`` may also carry the last bin's upper edge. None when
    the histogram is absent, empty, negative or does not match its edges."""
    hist, lower = _arr(counts), _arr(edges)
    if hist is None or lower is None or hist.ndim != 1 or lower.ndim != 1:
        return None
    if len(lower) == len(hist) + 1:
        lower = lower[:-1]
    if (
        len(lower) != len(hist)
        or not np.isfinite(hist).all()
        or (hist < 0).any()
        or hist.sum() <= 0
    ):
        return None
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i]: tokens whose farthest key is >= edges[i]
    return lower, tail / tail[0]


def _run_notes(summary: Summary) -> tuple[str, str]:
    """(how many trials ran at a time, the attention kernel of window-mode trials)."""
    kernels = {
        str(t.record.attention_kernel)
        for t in summary.finished
        if t.record.mode == "window" and t.record.attention_kernel
    }
    conc = summary.sweep.resources.max_concurrent_trials if summary.sweep else 1
    at_once = f"; up to {conc} trials ran at a time" if summary.finished and conc > 1 else ""
    return at_once, ", ".join(sorted(kernels))


# The cost panels after the first: (row key, divisor of the axis unit)
COSTS = (("train_wall_s", 1.0), ("flops", 1e9))


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
    pts = _tradeoff_points(rows, ref)
    if not any(math.isfinite(p[1]) for p in pts):
        return None
    core = _core([p[3] for p in pts], [p[4] for p in pts]) if ref is not None else None
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5))
    (ax_id, ax_wall), (ax_flops, ax_zoom) = axes
    for ax in (ax_wall, ax_flops):
        ax.sharey(ax_id)
    panels = [ax_id, ax_wall, ax_flops] + ([ax_zoom] if core else [])
    id_panels = [ax_id] + ([ax_zoom] if core else [])
    shown = _shown(summary)
    cloud = [p for p in pts if not shown(p[0]["schedule"])]
    pts = [p for p in pts if shown(p[0]["schedule"])]
    _draw_tradeoff_points(summary, id_panels, (ax_wall, ax_flops), pts, cloud)
    if core:
        _zoom(ax_id, ax_zoom, pts, core)
    else:
        ax_zoom.axis("off")
    if ref is not None:
        _reference_lines(summary, ref, panels, id_panels, (ax_wall, ax_flops))
    _label_tradeoff(summary, ref, panels, id_panels, (ax_wall, ax_flops), pts)
    fig.suptitle(
        "far_loss against the reference, beside its in-distribution, time and compute cost"
        if ref is not None
        else "far_loss beside id_loss, time and compute (no reference finished)"
    )
    rect = _tradeoff_key(fig, summary, rows, pts, cloud, ax_zoom, below=bool(core))
    fig.tight_layout(rect=rect)
    _label_points(ax_zoom if core else ax_id, [(p[1], p[3], p[0]["schedule"]) for p in pts])
    return _finish(fig, path, rect=rect)


def _tradeoff_points(rows: list[dict], ref: dict | None) -> list[tuple]:
    """(row, id x, id bar, far y, far bar) of every schedule with a finite far y: against
    the reference when there is one, else absolute."""
    pts = []
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
    return pts


def _draw_tradeoff_points(
    summary: Summary, id_panels: list, cost_panels: tuple, pts: list, cloud: list
) -> None:
    """The schedules past the cap as one grey cloud per panel, unlabelled, then each
    drawn schedule's point on every panel."""
    st = _styles(summary)
    picked = {p["schedule"] for p in summary.picks}
    if cloud:
        for ax in id_panels:
            _cloud(ax, [p[1:] for p in cloud])
        for ax, (key, scale) in zip(cost_panels, COSTS):
            vals = [(_or_nan(p[0].get(key)) / scale, math.nan, p[3], p[4]) for p in cloud]
            _cloud(ax, vals)
    for r, x, xh, y, yh in pts:
        for ax in id_panels:
            if math.isfinite(x):
                _point(ax, summary, r, x, y, xh, yh, st, picked)
        for ax, (key, scale) in zip(cost_panels, COSTS):
            v = _or_nan(r.get(key)) / scale
            if math.isfinite(v):
                _point(ax, summary, r, v, y, math.nan, yh, st, picked)


def _zoom(ax_id, ax_zoom, pts: list, core: tuple[float, float]) -> None:
    """Panel (d): panel (a) near the reference, its frame drawn on (a)."""
    inner = [p for p in pts if core[0] <= p[3] <= core[1] and math.isfinite(p[1])]
    xs = [p[1] - np.nan_to_num(p[2]) for p in inner] + [p[1] + np.nan_to_num(p[2]) for p in inner]
    ax_zoom.set_xlim(*_pad(min(xs + [0.0]), max(xs + [0.0])))
    ax_zoom.set_ylim(*_pad(*core))
    (x0, x1), (y0, y1) = ax_zoom.get_xlim(), ax_zoom.get_ylim()
    ax_id.add_patch(
        plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="grey", lw=1, zorder=4)
    )
    ax_id.annotate(
        "(d)", (x1, y1), xytext=(2, 2), textcoords="offset points", fontsize=8, color="grey"
    )
    ax_zoom.set_title("(d) as (a), near the reference", fontsize=10)


def _reference_lines(
    summary: Summary, ref: dict, panels: list, id_panels: list, cost_panels: tuple
) -> None:
    """The reference's zero lines, the id_loss costs beyond epsilon shaded, and the
    reference's time and FLOPs (dashed, and a top axis in multiples of them)."""
    for ax in panels:
        ax.axhline(0, color="k", lw=0.8)
    for ax in id_panels:
        ax.axvline(0, color="k", lw=0.8)
        lo, hi = ax.get_xlim()
        if hi > EPSILON:
            ax.axvspan(EPSILON, hi, color="grey", alpha=0.1, lw=0)
            ax.set_xlim(lo, hi)
    for ax, (key, scale) in zip(cost_panels, COSTS):
        v = _or_nan(ref.get(key)) / scale
        if math.isfinite(v):
            ax.axvline(v, color="k", lw=0.8, ls="--")
            _ratio_axis(ax, v, summary.reference)


def _label_tradeoff(
    summary: Summary, ref: dict | None, panels: list, id_panels: list, cost_panels: tuple, pts
) -> None:
    """The axes' labels and titles (and a note when no wall time was recorded)."""
    ax_wall, ax_flops = cost_panels
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
    for ax in id_panels:
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
    ax_id = panels[0]
    ax_id.set_title("(a) versus the in-distribution cost", fontsize=10)
    ax_wall.set_title("(b) versus training wall time", fontsize=10)
    ax_flops.set_title("(c) versus training FLOPs", fontsize=10)


def _tradeoff_key(
    fig, summary: Summary, rows: list, pts: list, cloud: list, ax_zoom, below: bool
) -> tuple:
    """The key: ``below`` the panels when (d) is drawn, else in the free fourth cell
    (``ax_zoom``); the figure's layout rectangle that leaves room for it."""
    handles = _key(summary, [p[0]["schedule"] for p in pts], extra=_markings(summary, rows))
    if cloud:
        handles.append(
            Line2D([], [], marker=".", color="silver", ls="none", label=f"grey: {len(cloud)} "
                   "other schedules (the ranking names them)")
        )  # fmt: skip
    rect = (0, 0, 1, 1)
    if handles and below:  # the key below the panels
        leg = fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
        height = leg.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
        rect = (0, height + 0.01, 1, 1)
    elif handles:  # the key in the free fourth cell
        ax_zoom.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    return rect


def plot_exposure(summary: Summary, path: Path) -> Path | None:
    """Left: per schedule, the fraction of trained query tokens whose farthest attended
    key is at distance >= d (from the records' exposure histograms), l_max / 2 marked.
    Right: far_loss change against the reference (paired 95% interval) versus that
    fraction at l_max / 2 (exposure_far), one labelled point per schedule; when a few
    points lie far from the rest, the y axis is broken so that both are readable."""
    l_max = _l_max(summary)
    curves = _survival_curves(summary)
    if not curves:
        return None
    ref = _ref_row(summary)
    rows = _rows(summary)
    pts = _exposure_points(curves, rows, ref)
    core = _core([p[1] for p in pts], [p[2] for p in pts]) if ref is not None else None
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
    _draw_survival(left, summary, curves, l_max)
    _draw_exposure_points(right, summary, rows, ref, pts, core)
    half = f"{l_max // 2}" if l_max else "l_max / 2"
    right[-1].set_xlabel(f"exposure_far: fraction of trained query tokens reaching >= {half} back")
    names = list(curves)
    extra = _markings(summary, [rows[n] for n in names])
    multi = len(_modes(summary)) > 1
    extra = [e for e in extra if e in ("control", "unequal") and (multi or e == "unequal")]
    handles = _key(summary, names, lines=True, extra=extra)
    if handles:
        key.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    fig.tight_layout()
    for ax in right:
        _label_points(ax, [(x, y, name) for x, y, _, name in pts], fontsize=8)
    return _finish(fig, path)


def _survival_curves(summary: Summary) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per drawn schedule with an exposure histogram, its survival curve (distances,
    fractions)."""
    curves = {}
    shown = _shown(summary)
    for r in summary.schedules:
        if not shown(r["schedule"]):
            continue
        ex = r.get("exposure") or {}
        survival = exposure_survival(ex.get("edges"), ex.get("fractions"))
        if survival is not None:
            curves[r["schedule"]] = survival
    return curves


def _exposure_points(curves: dict, rows: dict, ref: dict | None) -> list[tuple]:
    """(exposure_far, far_loss against the reference, its bar, name) of every schedule
    of ``curves`` where both are finite."""
    pts = []
    for name in curves:
        x = _or_nan(rows[name].get("exposure_far"))
        y, yh = (
            _minus_ref(rows[name], ref, "far_loss")
            if ref is not None
            else (_or_nan(rows[name].get("far_loss")), math.nan)
        )
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, y, yh, name))
    return pts


def _draw_survival(left, summary: Summary, curves: dict, l_max: int | None) -> None:
    """The left panel: each schedule's exposure survival curve, l_max / 2 marked."""
    st = _styles(summary)
    multi = len(_modes(summary)) > 1
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


def _draw_exposure_points(
    right: list, summary: Summary, rows: dict, ref: dict | None, pts: list, core
) -> None:
    """The right panel (two, the y axis broken, when ``core`` is set): far_loss against
    exposure_far, one point per schedule."""
    st = _styles(summary)
    picked = {p["schedule"] for p in summary.picks}
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
        _break_axis(*right, pts, core)
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


def _break_axis(top, bottom, pts: list, core: tuple[float, float]) -> None:
    """The far points on ``top``, the bulk (``core``) on ``bottom``, with break marks."""
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
