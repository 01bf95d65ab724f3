"""A search's figures in the sweep report: the searcher's path and far_loss against each
searched parameter, and ``FIGURES``, their table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep.analysis.aggregate import Summary
from sweep.analysis.paired import Trial
from sweep.report.figure_data import _finite, _or_nan, _ref_row
from sweep.report.style import _finish, _palette, _save, plt
from sweep.run.search import SAMPLE_PREFIX, reads, space_params


def _samples(summary: Summary) -> list[Trial]:
    """A search's sampled trials (finished or stopped), in the order they were asked."""
    out = [
        t
        for t in summary.trials
        if t.id.startswith(SAMPLE_PREFIX) and t.status in ("finished", "stopped")
    ]
    return sorted(out, key=lambda t: t.id)


def _sample_value(t: Trial, key: str) -> float:
    values = t.metrics if t.status == "finished" else (t.record.metrics or {})
    return _or_nan(values.get(key))


def plot_search_path(summary: Summary, path: Path) -> Path | None:
    """The searcher's path: far_loss of every sample in the order asked (hollow: stopped
    at a rung, its intermediate value), the best so far, and the reference's level."""
    samples = _samples(summary)
    if not samples:
        return None
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
    scheds = {t.id: t.record.config["schedule"] for t in samples}
    sw = samples[0].record.sweep
    searched = space_params(sw.search.space, sw)  # a range of one value is not searched
    used = [
        k for k in keys if k in searched and any(k in reads(s["shape"]) for s in scheds.values())
    ]
    if not used:
        return None
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


# A search's figures (drawn only when the sweep has sampled trials); the sweep report draws
# them after the sweep's (``sweep_report.FIGURES``).
FIGURES = (
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
