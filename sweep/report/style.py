"""What every figure of the report shares: the matplotlib set-up (the Agg backend, set
once before pyplot is imported), how many schedules a figure draws (``MAX_DRAWN``,
``drawn``, ``drawn_note``), one look per schedule (colour, line style, markers, legend
keys), label placement, shared axes helpers and saving."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: the report draws to files, on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from sweep.analysis.aggregate import Summary  # noqa: E402
from sweep.analysis.paired import Trial  # noqa: E402
from sweep.report.figure_data import (  # noqa: E402
    _base,
    _by_schedule,
    _mode_map,
    _modes,
    _or_nan,
    _role,
)

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


# In a sweep of several modes: colour is the schedule (shape and rate), the line style
# and the marker's fill are the mode.
MODE_LS = {"reshape": "-", "truncate": ":", "window": "-.", "doc_buckets": (0, (5, 1.5))}


MODE_FILL = {"reshape": "full", "truncate": "none", "window": "left", "doc_buckets": "bottom"}


def _palette(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
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
        | {t.record.schedule or t.id for t in summary.trials}
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


# The legend entries of the point markings a figure may use (``_markings``).
KEY_MARKS = {
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


def _key(summary: Summary, names: list[str], lines: bool = False, extra=()) -> list:
    """Legend handles for points (and, with ``lines``, the lines) of ``names``: with
    several modes a colour per schedule shape and rate, then one entry per mode (fill,
    line style); then the markings in ``extra`` (control, pareto, pick, unequal)."""
    st = _styles(summary)
    out = []
    if len(_modes(summary)) > 1:
        out += _mode_key(summary, names, st, lines)
    elif len(names) <= 20:
        for n in names:
            mk = _marker(summary, n, st[n], False)
            ls = st[n]["ls"] if lines else "none"
            out.append(Line2D([], [], ls=ls, lw=st[n]["lw"] if lines else 1, **mk))
            out[-1].set_label(_label(summary, n))
    out += [Line2D([], [], **KEY_MARKS[k]) for k in extra]
    return out


def _mode_key(summary: Summary, names: list[str], st: dict, lines: bool) -> list:
    """The key of a sweep of several modes: a colour per schedule shape and rate (up to
    20), then one entry per mode (its marker fill and line style)."""
    modes = _mode_map(summary)
    out = []
    bases: dict[str, str] = {}
    for n in names:
        bases.setdefault(_base(n, modes.get(n, "reshape")), n)
    if len(bases) <= 20:
        ref_base = _base(summary.reference, modes.get(summary.reference, "reshape"))
        for base, n in bases.items():
            tag = " (reference's shape)" if base == ref_base else ""
            if _role(summary, n) == "control":
                tag = " (control)"
            out.append(
                Line2D([], [], color=st[n]["color"], marker="o", ls="-" if lines else "none")
            )
            out[-1].set_label(base + tag)
    for mode in _modes(summary):
        out.append(
            Line2D(
                [],
                [],
                color="dimgrey",
                ls=MODE_LS.get(mode, "-") if lines else "none",
                marker="o",
                fillstyle=MODE_FILL.get(mode, "full"),
                markerfacecoloralt="white",
                ms=8,
                label=f"mode: {mode}" + (" (token-unequal)" if mode == "truncate" else ""),
            )
        )
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
    arr = np.array([p for p in pts if math.isfinite(p[0]) and math.isfinite(p[2])], dtype=float)
    if not len(arr):
        return
    arr = np.nan_to_num(arr.reshape(-1, 4), nan=0.0)
    ax.errorbar(
        arr[:, 0], arr[:, 2], xerr=arr[:, 1], yerr=arr[:, 3], fmt=".", ms=4, color="silver",
        elinewidth=0.5, zorder=2, label="other schedules",
    )  # fmt: skip


def _markings(summary: Summary, rows: list[dict]) -> list[str]:
    """The point markings the figure uses, for its key."""
    out = ["control"] if any(r.get("role") == "control" for r in rows) else []
    out += ["pareto"] if any(r.get("pareto") for r in rows) else []
    picked = {p["schedule"] for p in summary.picks}
    out += ["pick"] if any(r["schedule"] in picked for r in rows) else []
    out += ["unequal"] if any(not r.get("token_equal", True) for r in rows) else []
    return out


def _label_points(ax, pts: list[tuple[float, float, str]], fontsize: float = 7) -> None:
    """Name the points of ``ax`` that lie inside its limits: points that coincide on
    screen share one label; a label sits beside its point and just above it, off its
    error bars (on the left in the right half of the axes), and labels that would overlap
    are pushed apart vertically, with a thin line back to the point. Past 30 points, none
    are named (the legend says which)."""
    groups = _coinciding(ax, pts)
    if not groups or len(groups) > 30:
        return
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    labels = [_label_box(ax, renderer, box, group, fontsize) for group in groups]
    _push_apart(labels, box)
    for lab in labels:
        _draw_label(ax, lab, fontsize)


def _coinciding(ax, pts: list[tuple[float, float, str]]) -> list[list]:
    """The points inside the limits of ``ax``, those within 4 pixels of each other as
    one: [pixel x, pixel y, data (x, y), names]."""
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
    return groups


def _label_box(ax, renderer, box, group: list, fontsize: float) -> dict:
    """Where a group's label first goes, in pixels, and its size."""
    px, py, xy, names = group
    text = ", ".join(names)
    probe = ax.text(0, 0, text, fontsize=fontsize)
    ext = probe.get_window_extent(renderer)
    probe.remove()
    left = px > (box.x0 + box.x1) / 2
    # beside the marker and its ring (12 px), and lifted clear of the point's
    # horizontal error bar, which would otherwise run through the text
    x0 = px - 12 - ext.width if left else px + 12
    lift = 0.6 * ext.height + 3
    return {"xy": xy, "px": px, "py": py, "y": py + lift, "x0": x0, "x1": x0 + ext.width,
            "h": ext.height, "text": text, "left": left, "lift": lift}  # fmt: skip


def _push_apart(labels: list[dict], box) -> None:
    """Move overlapping labels apart vertically until none overlap (at most 300 rounds),
    keeping each inside the axes."""
    for _ in range(300):
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


def _draw_label(ax, lab: dict, fontsize: float) -> None:
    """A label at its place, with a thin line back to its point when it was moved."""
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


def _finish(fig, path: Path, rect=(0, 0, 1, 1)) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
