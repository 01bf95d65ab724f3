"""Report: ``report.md`` and a self-contained ``report.html`` (figures embedded, opens
offline), built from the results directory alone. Both lead with the verdict, the
controls and the picks, then the facts, the ranking, the trial table and the figures
that ``figures_sweep`` and ``figures_search`` draw; every comparison is schedule minus
reference on far_loss (held-out loss past l_max, lower is better), paired on the same eval
windows."""

from __future__ import annotations

import base64
import html
import math
import statistics
import sys
from pathlib import Path

from sweep.analysis.aggregate import Summary, aggregate, write_summary
from sweep.analysis.paired import Trial
from sweep.analysis.records import write_text_atomic
from sweep.report import figures_search, figures_sweep
from sweep.report.console import TABLE_HEAD, format_table, table_rows
from sweep.report.figure_data import _by_schedule, _finite, _mean, _modes, _or_nan, _role
from sweep.report.figures_schedules import plot_schedules
from sweep.report.style import drawn_note, plt
from sweep.report.table import markdown_table
from sweep.run.search import search_facts

# Every figure of a sweep's report, in its order: the sweep's, then a search's (drawn
# only when the sweep has sampled trials).
FIGURES = figures_sweep.FIGURES + figures_search.FIGURES

# How each mode makes a step's sequences short, in the words the report uses.
MODE_NOTE = {
    "reshape": "more, shorter rows at constant tokens per step",
    "truncate": "rows of l_max cut to L(f), fewer tokens than the budget",
    "window": "rows of l_max, attention limited to the last L(f) positions",
    "doc_buckets": "rows of L(f) cut from single documents",
}


def _figures(summary: Summary, figdir: Path) -> list[tuple[str, Path | None, str]]:
    """(title, PNG or None, caption or why it is missing). A figure that fails says so in
    the report instead of taking the verdict down with it."""
    out = []
    if summary.finished:
        for stem, title, fn, caption, missing in FIGURES:
            try:
                path = fn(summary, figdir / f"{stem}.png")
            except Exception as exc:  # reported in the report and on stderr, never silent
                plt.close("all")
                print(f"report: figure {stem} failed: {exc!r}", file=sys.stderr)
                out.append((title, None, f"figure failed: {type(exc).__name__}: {exc}"))
                continue
            if path is not None:
                note = "" if stem == "ramp" else drawn_note(summary, grey=stem == "tradeoff")
                out.append((title, path, " ".join(filter(None, (caption, note)))))
            elif missing:
                out.append((title, None, f"not drawn: {missing}"))
    schedules_png = plot_schedules(summary, figdir / "schedules.png")
    out.append(("Schedules", schedules_png, drawn_note(summary)))
    return out


# ----------------------------------------------------------------------------- text


def _fmt(v) -> str:
    if isinstance(v, float) or v is None:
        return f"{v:.4f}" if _finite(v) else "-"
    return str(v)


TRIAL_HEAD = [
    "trial",
    "status",
    "tokens",
    "id_loss",
    "far_loss",
    "delta",
    "ctx_gain",
    "wall s",
    "error",
]


def _trial_rows(summary: Summary) -> list[list[str]]:
    rows = []
    for t in summary.trials:
        shown = t.metrics or (t.record.metrics or {} if t.status == "stopped" else {})
        rows.append(
            [
                t.id,
                t.status,
                "" if t.record.tokens_trained is None else str(t.record.tokens_trained),
                _fmt(shown.get("id_loss", "")),
                _fmt(shown.get("far_loss", "")),
                _fmt(shown.get("delta", "")),
                _fmt(shown.get("ctx_gain", "")),
                f"{t.record.wall_s:.0f}" if _finite(t.record.wall_s) else "",
                t.why,
            ]
        )
    return rows


def one_time_setup(summary: Summary, excess_s: float = 10.0) -> str:
    """The trials whose wall time includes a one-time cost (DeepSpeed building its
    extension on first use on a machine): their engine set-up took ``excess_s`` seconds or
    more beyond the median trial's. Empty when none did."""
    setup = {}
    for t in summary.trials:
        tm = t.record.timings or {}
        if "engine_ready" in tm and "data_ready" in tm:
            setup[t.id] = float(tm["engine_ready"]) - float(tm["data_ready"])
    if len(setup) < 2:
        return ""
    median = statistics.median(setup.values())
    slow = {k: v for k, v in setup.items() if v - median >= excess_s}
    if not slow:
        return ""
    said = ", ".join(f"{k} ({v:.0f} s)" for k, v in sorted(slow.items()))
    return (
        f"One-time set-up in the wall time of {said}: the DeepSpeed engine took that long to "
        f"start against a median of {median:.0f} s (an extension built on first use), so "
        "their wall s overstate a trial's cost."
    )


def _facts(summary: Summary) -> str:
    """One line with what the numbers mean: lengths, eval length, budget, trial counts,
    and how many held-out documents were dropped for overlapping the training text."""
    rec, sweep = summary.trials[0].record, summary.sweep
    n = len(summary.trials)
    done = len(summary.finished)
    line = (
        f"l_max = {rec.l_max}, eval length E = {rec.eval_length} tokens "
        f"({sweep.eval.sequences if sweep else '?'} held-out sequences), "
        f"{sweep.budget.tokens if sweep else '?'} training tokens per trial; "
        f"{done} of {n} trials finished."
    )
    modes = _modes(summary)
    if len(modes) > 1:
        line += (
            f" Modes compared ({len(modes)}): "
            + "; ".join(f"{m} ({MODE_NOTE[m]})" if m in MODE_NOTE else m for m in modes)
            + "."
        )
    first = summary.finished[0].record if summary.finished else rec
    sources = (first.eval_windows or {}).get("source") or []
    if sources:
        counts = {s: sources.count(s) for s in dict.fromkeys(sources)}
        line += " Eval windows: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."
    ho = first.held_out_removed
    if isinstance(ho, dict):
        line += (
            " Held-out documents removed for overlapping training text: "
            f"{ho.get('exact', '?')} exact, {ho.get('near', '?')} near duplicates "
            f"({ho.get('kept', '?')} kept)."
        )
    else:
        line += " Held-out overlap with training text: not recorded."
    build = one_time_setup(summary)
    if build:
        line += " " + build
    found = search_facts(summary)
    return f"{line} {found}" if found else line


def _controls(summary: Summary) -> tuple[str, str]:
    """("yes" | "NO" | "untested", the controls' one-line result)."""
    controls = summary.controls or {}
    label = {True: "yes", False: "NO"}.get(controls.get("discriminates"), "untested")
    return label, controls.get("summary") or "no finished trials: untested"


def _chosen(summary: Summary) -> tuple[str, list[tuple[str, str]]]:
    """The heading and (schedule, why) entries of what the verdict chose: the picks, else
    the candidates to confirm (a pick needs at least 2 seeds)."""
    if summary.picks:
        return "Picks", [(p["schedule"], p["rationale"]) for p in summary.picks]
    if summary.candidates:
        return "Candidates to confirm (no pick)", [
            (
                c["schedule"],
                f"far_loss {-c['far_gain']:+.4f} nats against {summary.reference}, interval "
                f"[{c['far_interval'][0]:+.4f}, {c['far_interval'][1]:+.4f}] at "
                f"{100 * c['level']:.4g}% (family-wise 95%) ({c['outcome']}, {c['seeds']} "
                f"seed(s)); to confirm: {c['to_confirm']}",
            )
            for c in summary.candidates
        ]
    return "Picks", []


RANKING_NOTE = (
    "far - ref: schedule minus reference, ± the paired 95% interval's half-width{how}. "
    "far_excess: (far_loss - near_loss) minus the reference's same rise, ~0 for a model "
    "that is uniformly worse, > 0 when it extrapolates worse; own_excess: the same from "
    "the schedule's own longest trained length, for schedules trained below l_max; "
    "ctx_use: context_use, loss with the context cut to l_max/8 tokens minus with the "
    "whole prefix over (l_max/2, l_max], > 0 while the model uses its context. decision: "
    "better / equivalent / worse / inconclusive against the reference on a family-wise "
    "interval at the margin ({decision}); PICK or cand(idate to confirm)."
)


def _decision_words(summary: Summary) -> str:
    d = summary.decision
    if d is None or d.margin is None:
        return "no comparison made"
    words = f"{d.correction}, margin {d.margin:.4f} nats: {d.margin_source}"
    st = d.stability
    if st and st.get("accuracy") is not None:
        words += (
            f"; decision stability {st['accuracy']:.2f} (share of the {st['pairs']} schedule "
            f"pairs that two halves of the {st['seeds']} seeds order alike, 95% of splits in "
            f"[{st['spread'][0]:.2f}, {st['spread'][1]:.2f}], controls left out)"
        )
    else:
        words += "; decision stability not measured (needs 4 seeds)"
    return words


def _interval_method(summary: Summary) -> str:
    for r in summary.schedules:
        iv = (r.get("vs_ref") or {}).get("far_loss")
        if iv and iv.get("method"):
            return iv["method"]
    return ""


def _natural_rows(summary: Summary) -> list[list[str]] | None:
    """far_loss and id_loss on the natural-text windows alone (seed means), when the
    eval also had synthetic repeat windows; None otherwise."""
    groups = _by_schedule(summary)
    recs = [t.record for ts in groups.values() for t in ts]
    if not any("repeat" in (r.metrics_by_source or {}) for r in recs):
        return None

    def src(ts: list[Trial], source: str, key: str) -> float:
        by_source = [t.record.metrics_by_source or {} for t in ts]
        return _mean([_or_nan((m.get(source) or {}).get(key)) for m in by_source])

    ref = groups.get(summary.reference)
    ref_far = src(ref, "natural", "far_loss") if ref else math.nan
    out = []
    for name, ts in groups.items():
        far = src(ts, "natural", "far_loss")
        diff = far - ref_far
        out.append(
            [
                name,
                _role(summary, name),
                str(len(ts)),
                _fmt(src(ts, "natural", "id_loss")),
                _fmt(far),
                f"{diff:+.4f}" if math.isfinite(diff) else "-",
                _fmt(src(ts, "repeat", "far_loss")),
            ]
        )
    return out


NATURAL_HEAD = [
    "schedule",
    "role",
    "seeds",
    "id_loss (natural)",
    "far_loss (natural)",
    "far - ref (natural)",
    "far_loss (repeat)",
]


def _unequal_note(summary: Summary) -> str:
    """The footnote to the ranking's * (tokens column), when a row is token-unequal."""
    names = [r["schedule"] for r in summary.schedules if not r.get("token_equal", True)]
    if not names:
        return ""
    budget = summary.sweep.budget.tokens if summary.sweep else None
    return (
        "* token-unequal: "
        + ", ".join(names)
        + " (truncate mode cuts the rows of l_max to L(f), so it trains fewer tokens than "
        + (f"the budget of {budget} tokens" if budget else "the budget")
        + "): tokens and FLOPs are shown as trained, and the losses are not a token-equal "
        "comparison with the other rows."
    )


def _ranking(summary: Summary) -> list[tuple[str, list[str]]]:
    """(row class, cells) of the ranking, in the aggregator's order."""
    picked = {p["schedule"] for p in summary.picks}
    out = []
    for r, cells in zip(summary.schedules, table_rows(summary)):
        cls = r.get("role", "candidate") + (" pick" if r["schedule"] in picked else "")
        out.append((cls, cells))
    return out


def _markdown(summary: Summary, figs, facts: str) -> str:
    label, controls = _controls(summary)
    heading, chosen = _chosen(summary)
    md = [
        f"# Context-length schedule sweep: {summary.name}",
        "",
        "**Verdict:** " + "  \n".join(summary.verdict.split("\n")),
        "",
        f"**Controls (discriminates: {label}; sees: {summary.controls.get('sees')}):** {controls}",
        "",
        f"## {heading}",
        "",
    ]
    md += [f"- **{name}**: {why}" for name, why in chosen] or ["None (see the verdict)."]
    md += ["", facts, "", "## Ranking", ""]
    how = f" ({_interval_method(summary)})" if _interval_method(summary) else ""
    md += [
        f"Objective: far_loss, held-out loss past l_max (lower is better), lowest first; "
        f"controls last. Reference `{summary.reference}` in bold, controls in italics. "
        + RANKING_NOTE.format(how=how, decision=_decision_words(summary)),
        "",
    ]
    head = list(TABLE_HEAD)
    rows = []
    for cls, cells in _ranking(summary):
        cells = [c.replace("*", "\\*") for c in cells]  # the token-unequal mark, not emphasis
        if cls.startswith("reference"):
            cells = [f"**{c}**" if c else c for c in cells]
        elif cls.startswith("control"):
            cells = [f"_{c}_" if c else c for c in cells]
        rows.append(cells)
    md += markdown_table(head, rows)
    note = _unequal_note(summary)
    if note:
        md += ["", "\\" + note]
    nat = _natural_rows(summary)
    if nat:
        md += [
            "",
            "## Natural text only",
            "",
            "The same metrics on the natural-text eval windows alone (seed means, no "
            "intervals), next to far_loss on the synthetic repeat windows.",
            "",
            *markdown_table(NATURAL_HEAD, nat),
        ]
    md.append("")
    for title, path, caption in figs:
        md += [f"## {title}", ""]
        if path is not None:
            md += [f"![{title}](figures/{path.name})", ""]
        if caption:
            md += [caption, ""]
    md += ["## Trials", "", *markdown_table(TRIAL_HEAD, _trial_rows(summary))]
    for s in summary.skipped:
        md.append(f"\nSkipped `{s['path']}`: {s['reason']}")
    return "\n".join(md) + "\n"


# The HTML ranking puts the decision third (after rank and schedule), so that at 800 px
# the answer is in view; the wide numeric columns scroll inside their own box.
HTML_ORDER = (0, 1, len(TABLE_HEAD) - 1, *range(2, len(TABLE_HEAD) - 1))
CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
    "th,#ranking td:nth-child(2),#ranking td:nth-child(3),#ranking td:nth-child(4),"
    "#natural td:nth-child(-n+2),"
    "#trials td:nth-child(-n+2),#trials td:last-child{text-align:left}"
    "tr.reference td{font-weight:bold;background:#eef2ff}"
    "tr.control td{font-style:italic;color:#555;background:#f4f4f4}"
    "tr.pick td{background:#eaf7e6}"
    "#verdict{font-size:1.1em}.flag{font-weight:bold;padding:1px 6px;border-radius:3px}"
    ".flag.yes{background:#d8f0d0}.flag.NO{background:#f7d4d4}.flag.untested{background:#f3ead0}"
    ".caption{color:#444;font-size:0.9em}img{max-width:100%}"
)


def _html(summary: Summary, figs, facts: str) -> str:
    parts = _html_top(summary, facts)
    parts += _html_ranking(summary)
    parts += _html_natural(summary)
    parts += _html_figures(figs)
    parts += _html_trials(summary)
    parts.append(HTML_CHECKS)
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_top(summary: Summary, facts: str) -> list[str]:
    """From the page's head to the facts: the verdict, the controls and the picks."""
    esc = html.escape
    label, controls = _controls(summary)
    heading, chosen = _chosen(summary)
    return [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Sweep {esc(summary.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Context-length schedule sweep: {esc(summary.name)}</h1>",
        "<p id='verdict'><b>Verdict:</b> "
        + "<br>".join(esc(line) for line in summary.verdict.split("\n"))
        + "</p>",
        f"<p id='controls'><b>Controls</b> <span class='flag {label}'>discriminates: "
        f"{label}</span> <span class='flag sees'>sees: "
        f"{esc(str(summary.controls.get('sees')))}</span> {esc(controls)}</p>",
        f"<h2>{esc(heading)}</h2><ul id='picks'>",
        *[f"<li><b>{esc(name)}</b>: {esc(why)}</li>" for name, why in chosen],
        "" if chosen else "<li>None (see the verdict).</li>",
        f"</ul><p id='facts'>{esc(facts)}</p>",
    ]


def _html_ranking(summary: Summary) -> list[str]:
    """The ranking table with its caption and the token-unequal footnote."""
    esc = html.escape
    how = f" ({_interval_method(summary)})" if _interval_method(summary) else ""
    parts = [
        "<h2>Ranking</h2><p class='caption'>Objective: far_loss, held-out loss past l_max "
        "(lower is better), lowest first; controls last. Reference in bold, controls in grey "
        "italics, picks in green. "
        + esc(RANKING_NOTE.format(how=how, decision=_decision_words(summary)))
        + "</p>",
        "<div class='scroll'><table id='ranking'><thead><tr>"
        + "".join(f"<th>{esc(TABLE_HEAD[i])}</th>" for i in HTML_ORDER)
        + "</tr></thead><tbody>",
    ]
    for cls, cells in _ranking(summary):
        parts.append(
            f"<tr class='{esc(cls)}'>"
            + "".join(f"<td>{esc(cells[i])}</td>" for i in HTML_ORDER)
            + "</tr>"
        )
    parts.append("</tbody></table></div>")
    note = _unequal_note(summary)
    if note:
        parts.append(f"<p class='caption' id='unequal'>{esc(note)}</p>")
    return parts


def _html_natural(summary: Summary) -> list[str]:
    """The natural-text table, when the eval also had synthetic repeat windows."""
    esc = html.escape
    nat = _natural_rows(summary)
    if not nat:
        return []
    parts = [
        "<h2>Natural text only</h2><p class='caption'>The same metrics on the "
        "natural-text eval windows alone (seed means, no intervals), next to far_loss on "
        "the synthetic repeat windows.</p><table id='natural'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in NATURAL_HEAD)
        + "</tr></thead><tbody>"
    ]
    for r in nat:
        parts.append(
            f"<tr class='{esc(r[1])}'>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
        )
    parts.append("</tbody></table>")
    return parts


def _html_figures(figs) -> list[str]:
    """Each figure embedded as a data URI, so the page opens offline."""
    esc = html.escape
    parts = []
    for title, path, caption in figs:
        parts.append(f"<h2>{esc(title)}</h2>")
        if path is not None:
            b64 = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<img alt='{esc(title)}' src='data:image/png;base64,{b64}'>")
        if caption:
            parts.append(f"<p class='caption'>{esc(caption)}</p>")
    return parts


def _html_trials(summary: Summary) -> list[str]:
    """The trial table and the records that were skipped."""
    esc = html.escape
    parts = [
        "<h2>Trials</h2><div class='scroll'><table id='trials'><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in TRIAL_HEAD)
        + "</tr>"
    ]
    for r in _trial_rows(summary):
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    parts.append("</table></div>")
    for s in summary.skipped:
        parts.append(f"<p>Skipped {esc(s['path'])}: {esc(s['reason'])}</p>")
    return parts


# Counts the figures that decoded, and whether the ranking's decision column is in view
# without scrolling, so a headless browser test can check them.
HTML_CHECKS = (
    "<script>window.addEventListener('load', () => { const b = document.body.dataset; "
    "b.imagesLoaded = [...document.images].filter(i => i.complete && "
    "i.naturalWidth > 0).length; const d = document.querySelector("
    "'#ranking th:nth-child(3)'); b.decisionInView = d && "
    "d.getBoundingClientRect().right <= window.innerWidth ? 'yes' : 'no'; "
    "b.pageOverflow = document.documentElement.scrollWidth > window.innerWidth "
    "? 'yes' : 'no'; });</script>"
)


def report_sweep(sweep_dir: Path) -> int:
    """Aggregate a sweep directory, write summary.json and the report, print the ranking;
    0 when every trial ended (finished, diverged or stopped early) and at least one
    finished, else 1: a sweep with nothing to compare has no answer."""
    summary = aggregate(sweep_dir)
    write_summary(summary)
    md, html = write_report(summary)
    print(format_table(summary))
    for s in summary.skipped:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    print(f"report: {html}\n        {md}")
    ended = all(t.status in ("finished", "diverged", "stopped") for t in summary.trials)
    return 0 if ended and summary.finished else 1


def write_report(summary: Summary) -> tuple[Path, Path]:
    d = summary.sweep_dir
    figdir = d / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = _figures(summary, figdir)
    facts = _facts(summary)
    md_path = d / "report.md"
    write_text_atomic(md_path, _markdown(summary, figs, facts))
    html_path = d / "report.html"
    write_text_atomic(html_path, _html(summary, figs, facts))
    return md_path, html_path
