"""The Schedules figure: each schedule's context length L(f) against tokens trained,
from a spec (the dry run) or from a sweep's stored trial configs (the report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep.analysis.aggregate import Summary
from sweep.config import schedules
from sweep.config.spec import SweepSpec
from sweep.report.figure_data import _base
from sweep.report.style import MODE_LS, _palette, _save, _shown, _styles, plt


def plot_plans(
    plans: dict[str, schedules.Plan], path: Path, left_out=(), styles: dict | None = None
) -> Path:
    """The schedule's length L(f) (the attention window in window mode) versus tokens
    trained, one step line per schedule; with several modes a colour per schedule shape
    and rate and a line style per mode. ``left_out``: schedules that could not be drawn,
    said on the figure; ``styles``: the sweep's look per schedule (``_styles``), so each
    has the colour it has in the report's other figures."""
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
        name = t.record.schedule
        if name in plans or not shown(name) or not isinstance(t.record.config, dict):
            continue
        if t.record.spec is None:
            left_out.append(name)  # a record from another version of the spec
        else:
            plans[name] = t.record.spec.plan()
    return plot_plans(plans, path, left_out, _styles(summary))
