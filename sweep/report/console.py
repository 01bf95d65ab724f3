"""The ranking table printed at the end of a sweep."""

from __future__ import annotations

from sweep.analysis.aggregate import Summary
from sweep.analysis.paired import finite


def _vs_ref_cell(r: dict, key: str) -> str:
    return _cell(r.get("vs_ref", {}).get(key))


TABLE_HEAD = (
    "rank",
    "schedule",
    "role",
    "seeds",
    "id_loss",
    "far_loss",
    "far - ref",
    "far_excess",
    "own_excess",
    "ctx_use",
    "slope",
    "at l_max",
    "tokens",
    "GFLOPs",
    "decision",
)


def _cell(iv: dict | None) -> str:
    """A paired interval as mean±half-width ('-' when not measured)."""
    if iv is None or iv.get("mean") is None:
        return "-"
    half = iv.get("half")
    return f"{iv['mean']:+.4f}" + (f"±{half:.4f}" if half is not None else "")


def table_rows(summary: Summary) -> list[list[str]]:
    """The ranking (lowest far_loss first, controls last) as cells of text."""
    picked = {p["schedule"] for p in summary.picks}
    cands = {c["schedule"] for c in summary.candidates}
    out = []
    for i, r in enumerate(summary.schedules, 1):
        outcome = (r.get("decision") or {}).get("outcome", "")
        mark = "PICK " if r["schedule"] in picked else "cand " if r["schedule"] in cands else ""
        out.append(
            [
                str(i),
                r["schedule"],
                r["role"],
                str(r["seeds"]),
                f"{r['id_loss']:.4f}",
                f"{r['far_loss']:.4f}",
                _vs_ref_cell(r, "far_loss"),
                _cell(r.get("far_excess")),
                _cell(r.get("own_excess")),
                _cell(r.get("context_use_ci")),
                f"{r['slope']:+.4f}" if finite(r.get("slope")) else "-",
                f"{r.get('tokens_at_l_max', 0) / 1e3:.0f}k",
                (f"{r['tokens_trained'] / 1e3:.0f}k" if finite(r.get("tokens_trained")) else "-")
                + ("" if r.get("token_equal", True) else "*"),
                f"{r['flops'] / 1e9:.1f}",
                (mark + outcome).strip(),
            ]
        )
    return out


def format_table(summary: Summary) -> str:
    """The ranked table printed at the end of a sweep (lowest far_loss first)."""
    rows = [list(TABLE_HEAD), *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    for t in summary.trials:
        if t.status != "finished":
            lines.append(f"   -  {t.id:<20} {t.status}: {t.why}")
    unequal = [r["schedule"] for r in summary.schedules if not r.get("token_equal", True)]
    if unequal:
        lines.append(
            f"* token-unequal (truncate: rows cut to L, fewer tokens than the budget): "
            f"{', '.join(unequal)}"
        )
    if summary.controls.get("summary"):
        lines.append(f"controls: {summary.controls['summary']}")
    lines.append(summary.verdict)
    return "\n".join(lines)
