"""The calibration ladder's figure: each rung's shape criteria and level gap, with their
intervals, against the rung's training FLOPs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sweep.report.style import plt

# (row key, panel title), left to right
PANELS = (
    ("context_use", "reference context_use (> 0: uses its context)"),
    ("own_excess", "control own_excess (> 0: extrapolates worse)"),
    ("level_gap", "control far_loss gap (level)"),
)


def plot_ladder(rows: list[dict], path: Path) -> Path:
    """Each criterion (and the level gap) with its interval against the rung's FLOPs."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = [r["flops"] for r in rows]
    for ax, (key, title) in zip(axes, PANELS):
        ys = [r.get(key) or {} for r in rows]
        mean = [y.get("mean") if y.get("mean") is not None else math.nan for y in ys]
        lo = [y.get("lo") if y.get("lo") is not None else math.nan for y in ys]
        hi = [y.get("hi") if y.get("hi") is not None else math.nan for y in ys]
        err = [np.subtract(mean, lo), np.subtract(hi, mean)]
        ax.errorbar(x, mean, yerr=err, marker="o", capsize=3)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # the minor labels collide
        ax.set_xlabel("rung training FLOPs (reference + control, all seeds)")
        ax.set_ylabel("nats")
        ax.set_title(title, fontsize=10)
        for rung, (xi, yi) in enumerate(zip(x, mean)):
            ax.annotate(
                f"rung {rung}", (xi, yi), fontsize=8, xytext=(3, 3), textcoords="offset points"
            )
    fig.suptitle(
        "Calibration: a rung sees extrapolation when both left panels are > 0 beyond "
        "their intervals"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
