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


def _bands(values: np.ndarray, n_boot: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% bootstrap band of the per-bin mean over eval sequences (rows of ``values``)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return np.quantile(means, 0.025, axis=0), np.quantile(means, 0.975, axis=0)


def _binned(recs: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    """(bin centres, per-sequence binned losses averaged over seeds), when recorded."""
    if not all(r.get("per_sequence_binned") for r in recs):
        return None
    vals = np.mean([np.asarray(r["per_sequence_binned"]["values"]) for r in recs], axis=0)
    return np.asarray(recs[0]["per_sequence_binned"]["centres"]), vals


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
        # no bands here: they would show how documents differ, not how schedules do
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
        bottom.set_ylabel(f"loss(p) - {summary.reference}, nats (95% bands)")
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
    _legend(top, fontsize=8, ncol=2)
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
    return _save(fig, ax, path, "Context-length schedules", fontsize=8, ncol=2)


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
    return _save(fig, ax, path, "Training loss (seed 0 of each schedule)", fontsize=8, ncol=2)


def _vs_reference(summary: Summary) -> tuple[dict | None, list[dict]]:
    ref = next((r for r in summary.schedules if r["schedule"] == summary.reference), None)
    return ref, summary.schedules


def _paired_err(r: dict) -> float:
    """The half-width of the paired 95% interval of delta against the reference."""
    return float(r.get("vs_ref_margin", np.nan))


def plot_tradeoff(summary: Summary, path: Path) -> Path:
    """Each schedule against the reference: id_loss cost versus delta change, with the
    paired 95% interval of the delta change; Pareto front circled, picks starred. Paired,
    because every trial is evaluated on the same sequences: unpaired intervals would mostly
    show how the documents differ."""
    plt = _plt()
    ref, rows = _vs_reference(summary)
    colors = _colors([r["schedule"] for r in rows])
    picked = {p["schedule"] for p in summary.picks}
    base_id = ref["id_loss"] if ref else 0.0
    base_delta = ref["delta"] if ref else 0.0
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        c = colors[r["schedule"]]
        x, y = r["id_loss"] - base_id, r["delta"] - base_delta
        err = _paired_err(r)
        ax.errorbar(
            x,
            y,
            yerr=[[err], [err]] if np.isfinite(err) else None,
            fmt="o",
            color=c,
            ms=6,
            capsize=3,
            label=r["schedule"],
        )
        if r.get("pareto"):
            ax.scatter(x, y, s=260, facecolors="none", edgecolors=c, lw=1.5)
        if r["schedule"] in picked:
            ax.scatter(x, y, s=320, marker="*", color="gold", edgecolors="k", zorder=5)
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    ax.axvspan(0.01, max(0.011, ax.get_xlim()[1]), color="grey", alpha=0.08)
    ax.set_xlabel(f"id_loss - {summary.reference} (nats; shaded: more than epsilon = 0.01 worse)")
    ax.set_ylabel(f"delta - {summary.reference} (nats; below 0 is flatter)")
    return _save(
        fig,
        ax,
        path,
        "Against the reference (circles: Pareto front, stars: picks)",
        fontsize=8,
        ncol=2,
    )


def plot_ramp(summary: Summary, path: Path) -> Path:
    """delta change against the reference versus ramp rate, one line per shape (rate-free
    shapes as horizontal lines), with paired 95% intervals."""
    plt = _plt()
    ref, rows = _vs_reference(summary)
    base = ref["delta"] if ref else 0.0
    shapes: dict[str, list[dict]] = {}
    for r in rows:
        shapes.setdefault(r["shape"], []).append(r)
    colors = _colors(list(shapes))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for shape, rs in shapes.items():
        rs = sorted(rs, key=lambda r: r["ramp_rate"])
        if len(rs) == 1 and shape in ("constant", "two_stage", "multi_stage"):
            ax.axhline(rs[0]["delta"] - base, color=colors[shape], ls=":", label=shape)
            continue
        err = [_paired_err(r) for r in rs]
        ax.errorbar(
            [r["ramp_rate"] for r in rs],
            [r["delta"] - base for r in rs],
            yerr=err if all(np.isfinite(err)) else None,
            marker="o",
            color=colors[shape],
            capsize=3,
            label=shape,
        )
    ax.set_xlabel("ramp rate r (fraction of the budget spent ramping)")
    ax.set_ylabel(f"delta - {summary.reference} (nats)")
    return _save(fig, ax, path, "Flatness versus ramp rate, per shape", fontsize=8)


def plot_evolution(summary: Summary, path: Path) -> Path | None:
    """delta at the intermediate evaluations, versus tokens: how extrapolation evolves
    while each schedule ramps. None when the sweep took no intermediate evaluations."""
    groups = _by_schedule(summary)
    if not any(r.get("evals") for recs in groups.values() for r in recs):
        return None
    plt = _plt()
    colors = _colors(list(groups))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, recs in groups.items():
        r = recs[0]
        pts = [*r.get("evals", []), {"tokens": r["tokens_trained"], **r["metrics"]}]
        ax.plot(
            [p["tokens"] for p in pts],
            [p["delta"] for p in pts],
            marker="o",
            color=colors[name],
            label=name,
        )
    ax.set_xlabel("tokens trained")
    ax.set_ylabel("delta (nats)")
    return _save(
        fig,
        ax,
        path,
        "Extrapolation during training (intermediate evaluations, seed 0)",
        fontsize=8,
        ncol=2,
    )


def _save(fig, ax, path: Path, title: str, **legend_kw) -> Path:
    """The finish every figure shares: title, grid, a legend if readable, PNG, close."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, **legend_kw)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _legend(ax, **kw) -> None:
    """A legend when it can be read; past 20 entries the table says what is what."""
    if 0 < len(ax.get_legend_handles_labels()[1]) <= 20:
        ax.legend(**kw)


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


def _facts(summary: Summary) -> str:
    """One line with what the numbers mean: lengths, eval length, budget, trial counts."""
    rec = summary.trials[0].record
    sweep = rec.get("config", {}).get("sweep", {})
    n = len(summary.trials)
    done = len(summary.finished)
    return (
        f"l_max = {rec.get('l_max')}, eval length E = {rec.get('eval_length')} tokens "
        f"({sweep.get('eval', {}).get('sequences', '?')} held-out sequences), "
        f"{sweep.get('budget', {}).get('tokens', '?')} training tokens per trial; "
        f"{done} of {n} trials finished."
    )


def write_report(summary: Summary) -> tuple[Path, Path]:
    d = summary.sweep_dir
    figdir = d / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = []
    if summary.finished:
        figs.append(("Loss versus position", plot_curves(summary, figdir / "curves.png")))
        figs.append(
            (
                "Flatness versus in-distribution loss",
                plot_tradeoff(summary, figdir / "tradeoff.png"),
            )
        )
        figs.append(("Flatness versus ramp rate", plot_ramp(summary, figdir / "ramp.png")))
        evo = plot_evolution(summary, figdir / "evolution.png")
        if evo:
            figs.append(("Extrapolation during training", evo))
        figs.append(("Training loss", plot_training(summary, figdir / "training.png")))
    figs.append(("Schedules", plot_schedules(summary, figdir / "schedules.png")))

    table = format_table(summary)
    picks = summary.picks
    facts = _facts(summary)
    md = [
        f"# Context-length schedule sweep: {d.name}",
        "",
        facts,
        "",
        f"**Verdict:** {summary.verdict}",
        "",
    ]
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
        f"<h1>Context-length schedule sweep: {esc(d.name)}</h1><p>{esc(facts)}</p>",
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
    # Counts the figures that decoded, so a headless browser test can check them.
    parts.append(
        "<script>window.addEventListener('load', () => { document.body.dataset"
        ".imagesLoaded = [...document.images].filter(i => i.complete && "
        "i.naturalWidth > 0).length; });</script>"
    )
    parts.append("</body></html>")
    html_path = d / "report.html"
    write_text_atomic(html_path, "\n".join(parts))
    return md_path, html_path
