"""Report: figures (PNG), ``report.md`` and a self-contained ``report.html`` (figures
embedded, opens offline), built from the results directory alone."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from sweep import metrics, schedules
from sweep.aggregate import Summary, format_table
from sweep.spec import SweepSpec, TrialSpec
from sweep.trial import write_text_atomic


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_schedule(summary: Summary) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for t in summary.finished:
        out.setdefault(t.record["schedule"], []).append(t.record)
    return out


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = _plt().get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def plot_curves(summary: Summary, path: Path) -> Path:
    """Loss versus position, one line per schedule (seed mean, log-binned), l_max marked;
    below, each schedule minus the reference on the same eval sequences (paired), which
    cancels the text's own position-to-position variation and shows the schedule's."""
    plt = _plt()
    groups = _by_schedule(summary)
    colors = _colors(list(groups))
    curves = {name: np.mean([r["curve"] for r in recs], axis=0) for name, recs in groups.items()}
    l_max = next(iter(groups.values()))[0]["l_max"]
    ref = curves.get(summary.reference)
    fig, axes = plt.subplots(
        2 if ref is not None else 1,
        1,
        figsize=(9, 8),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2]} if ref is not None else None,
    )
    top = axes[0, 0]
    for name, curve in curves.items():
        lw = 2.6 if name == summary.reference else 1.5
        x, y = metrics.log_binned(curve)
        top.plot(x, y, color=colors[name], lw=lw, label=name, marker=".", ms=3)
    top.set_ylabel("loss(p), nats (log-binned)")
    top.set_title("Held-out loss by token position; past l_max is extrapolation")
    if ref is not None:
        bottom = axes[1, 0]
        for name, curve in curves.items():
            x, y = metrics.log_binned(curve - ref)
            bottom.plot(
                x, y, color=colors[name], lw=2.6 if name == summary.reference else 1.5, label=name
            )
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set_ylabel(f"loss(p) - {summary.reference}, nats")
    for ax in axes[:, 0]:
        ax.axvline(l_max, color="k", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    top.annotate(
        f"l_max = {l_max}",
        (l_max, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -14),
        textcoords="offset points",
        fontsize=9,
    )
    axes[-1, 0].set_xlabel("token position p (log scale)")
    top.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_plans(plans: dict[str, schedules.Plan], path: Path) -> Path:
    """Sequence length versus tokens trained, one step line per schedule."""
    plt = _plt()
    colors = _colors(list(plans))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, p in plans.items():
        x = np.append(p.cumulative_tokens(), p.total_tokens)
        ax.step(
            x,
            np.append(p.lengths, p.lengths[-1]),
            where="post",
            color=colors[name],
            label=name,
            lw=1.5,
        )
    ax.set_xlabel("tokens trained")
    ax.set_ylabel("sequence length")
    ax.set_title("Context-length schedules")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plan_of(trial: TrialSpec) -> schedules.Plan:
    b = trial.sweep.budget
    return schedules.plan(trial.schedule, b.tokens, b.tokens_per_step, b.batching, trial.seed)


def plot_schedule_specs(spec: SweepSpec, path: Path) -> Path:
    plans: dict[str, schedules.Plan] = {}
    for t in spec.trials():
        plans.setdefault(t.schedule.label, _plan_of(t))
    return plot_plans(plans, path)


def plot_schedules(summary: Summary, path: Path) -> Path:
    plans: dict[str, schedules.Plan] = {}
    for t in summary.trials:
        if t.record["schedule"] not in plans:
            plans[t.record["schedule"]] = _plan_of(TrialSpec.from_dict(t.record["config"]))
    return plot_plans(plans, path)


def plot_training(summary: Summary, path: Path) -> Path:
    plt = _plt()
    groups = _by_schedule(summary)
    colors = _colors(list(groups))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, recs in groups.items():
        h = recs[0].get("history", [])
        if h:
            ax.plot(
                [p["tokens"] for p in h], [p["loss"] for p in h], color=colors[name], label=name
            )
    ax.set_xlabel("tokens trained")
    ax.set_ylabel("training loss (nats)")
    ax.set_title("Training loss (seed 0 of each schedule)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _trial_rows(summary: Summary) -> list[list[str]]:
    rows = []
    for t in summary.trials:
        m = t.metrics
        rows.append(
            [
                t.id,
                t.status,
                _fmt(t.record.get("tokens_trained", "")),
                _fmt(m.get("id_loss", "")),
                _fmt(m.get("delta", "")),
                _fmt(m.get("slope", "")),
                f"{t.record.get('wall_s', 0) or 0:.0f}",
                t.record.get("error") or "",
            ]
        )
    return rows


TRIAL_HEAD = ["trial", "status", "tokens", "id_loss", "delta", "slope", "wall s", "error"]


def write_report(summary: Summary) -> tuple[Path, Path]:
    d = summary.sweep_dir
    figdir = d / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = []
    if summary.finished:
        figs.append(("Loss versus position", plot_curves(summary, figdir / "curves.png")))
        figs.append(("Training loss", plot_training(summary, figdir / "training.png")))
    figs.append(("Schedules", plot_schedules(summary, figdir / "schedules.png")))

    table = format_table(summary)
    picks = summary.picks
    md = [f"# Context-length schedule sweep: {d.name}", "", f"**Verdict:** {summary.verdict}", ""]
    md += [f"- **{p['schedule']}**: {p['rationale']}" for p in picks]
    md += [
        "",
        f"Reference schedule: `{summary.reference}`. Ranked by delta = far_loss - "
        "near_loss (flattest first).",
        "",
        "```",
        table,
        "```",
        "",
    ]
    for title, path in figs:
        md += [f"## {title}", "", f"![{title}](figures/{path.name})", ""]
    md += ["## Trials", "", "| " + " | ".join(TRIAL_HEAD) + " |", "|" + "---|" * len(TRIAL_HEAD)]
    md += ["| " + " | ".join(r) + " |" for r in _trial_rows(summary)]
    for s in summary.skipped:
        md.append(f"\nSkipped `{s['path']}`: {s['reason']}")
    md_path = d / "report.md"
    write_text_atomic(md_path, "\n".join(md) + "\n")

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Sweep {esc(d.name)}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:auto;padding:1em}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}"
        "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px}}img{{max-width:100%}}</style></head><body>",
        f"<h1>Context-length schedule sweep: {esc(d.name)}</h1>",
        f"<p><b>Verdict:</b> {esc(summary.verdict)}</p><ul>",
        *[f"<li><b>{esc(p['schedule'])}</b>: {esc(p['rationale'])}</li>" for p in picks],
        "</ul>",
        f"<pre id='ranking'>{esc(table)}</pre>",
    ]
    for title, path in figs:
        b64 = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{b64}'>"
        )
    parts.append(
        "<h2>Trials</h2><table id='trials'><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in TRIAL_HEAD)
        + "</tr>"
    )
    for r in _trial_rows(summary):
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    parts.append("</table>")
    for s in summary.skipped:
        parts.append(f"<p>Skipped {esc(s['path'])}: {esc(s['reason'])}</p>")
    parts.append("</body></html>")
    html_path = d / "report.html"
    write_text_atomic(html_path, "\n".join(parts))
    return md_path, html_path
