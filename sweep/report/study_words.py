"""The study document's phrasing: how a difference, an interval, an outcome and a
finding's reproduction are said, its markdown tables, and the study file's own words (its
``document:`` templates, sweep/config/study_spec.py) filled from the findings. Every
sentence that states a result reads its sign from the interval: a difference whose 95%
interval holds zero is "not told apart", whatever its mean."""

from __future__ import annotations

from sweep.analysis.controls import interval_text as _iv
from sweep.config.study_spec import FINDINGS_KEYS, Study
from sweep.report.table import markdown_table


def reading(iv: dict | None, worse: str = "worse", better: str = "better") -> str:
    """The honest reading of a difference (lower loss is better)."""
    if not iv or iv.get("mean") is None:
        return "not measured"
    if iv.get("lo") is None:
        return "no interval"
    if iv["lo"] > 0:
        return worse
    if iv["hi"] < 0:
        return better
    return "not told apart"


def _signed(v, nd: int = 4) -> str:
    """A difference with its sign, ``nd`` decimals; n/a when not measured."""
    return "n/a" if v is None else f"{v:+.{nd}f}"


def _row_iv(d: dict, key: str) -> str:
    return _iv(d.get(key)) if d else "n/a"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A table of the document, then the blank line that ends it."""
    return [*markdown_table(head, rows, escape_pipes=False), ""]


def _said(d: dict, key: str = "far_loss") -> str:
    return f"{_row_iv(d, key)}: **{reading(d.get(key))}**"


def _ramp_rows(rows: dict) -> list[list[str]]:
    return [
        [f"`{r}`", _row_iv(d, "far_loss"), reading(d.get("far_loss")), _row_iv(d, "id_loss")]
        for r, d in rows.items()
    ]


def _outcome_words(judged: dict) -> str:
    """One comparison as the decision layer reads it: interval at its level, outcome,
    and what would settle it."""
    lo, hi = judged["interval"]
    said = (
        f"{judged['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}] at {100 * judged['level']:.4g}%: "
        f"**{judged['outcome']}**"
    )
    if judged["outcome"] == "inconclusive":
        seeds = judged.get("seeds_to_settle")
        said += (
            f" (about {seeds} seeds would likely settle it)"
            if seeds
            else " (not within 64 seeds at the measured variances)"
        )
    return said


def _abs(iv: dict | None) -> str:
    if not iv or iv.get("mean") is None:
        return "n/a"
    if iv.get("lo") is None:
        return f"{iv['mean']:.4f}"
    return f"{iv['mean']:.4f} [{iv['lo']:.4f}, {iv['hi']:.4f}]"


def _reproduces(level: bool, btlm_found: dict) -> str:
    """BTLM's finding is about shape: "reproduces" only when the arm's control check sees
    extrapolation (the control's own_excess and the reference's context_use > 0 beyond
    their intervals); worse past l_max alone is a reproduction on level only."""
    if not level:
        return "does NOT reproduce"
    sees = (btlm_found.get("controls") or {}).get("sees")
    return "reproduces" if sees == "extrapolation" else "reproduces on level only"


def _shape_words(btlm_found: dict) -> str:
    controls = btlm_found.get("controls") or {}
    if controls.get("sees") is None or controls.get("excess_key") is None:
        return (
            "; on shape it was not measured (records from before the shape metrics: no "
            "own_excess, no context_use), so this is a finding on level only"
        )
    key = controls["excess_key"]
    return (
        f"; on shape, its {key} is {_iv(controls.get(key))} and the reference's context_use "
        f"{_iv(controls.get('reference_context_use'))} (the sweep sees {controls['sees']})"
    )


def _schedule_row(found: dict, label: str | None) -> dict:
    """The first arm's row of schedule ``label`` in the findings' tables ({} when none)."""
    rows = (r for arm in (found.get("schedules") or {}).values() for r in arm)
    return next((r for r in rows if r["schedule"] == label), {})


def _own(found: dict, label: str | None) -> str:
    """A schedule's longest trained length, as its record says (e.g. "32 tokens")."""
    own = _schedule_row(found, label).get("own_length")
    return f"{own} tokens" if own else "its short length"


# A reading of a difference against two stages, as the (c) sentence words it
AGAINST = {
    "better": "better than",
    "worse": "worse than",
    "not told apart": "not told apart from",
}


def _against_two_stages(d: dict) -> str:
    said = reading(d.get("far_loss"))
    return f"{AGAINST.get(said, said + ' against')} two stages"


def template_values(study: Study, found: dict) -> dict[str, str]:
    """What a document template's ``{name}`` fields are filled with
    (``study_spec.DOCUMENT_FIELDS``)."""
    spec = study.arm_spec(study.main, [])
    bands = found.get("bands") or []
    return {
        "study": study.name,
        "main": study.main,
        "reference": str(found.get("reference") or "n/a"),
        **{k: str(study.findings.get(k) or "n/a") for k in FINDINGS_KEYS},
        "top": bands[-1].removeprefix("far_x") if bands else "?",
        "own": _own(found, study.findings.get("negative")),
        "l_max": str(spec.schedules.l_max),
        "l_min": str(spec.schedules.l_min),
        "d_model": str(spec.model.d_model),
        "mup_base_width": str(spec.model.mup_base_width),
    }


def document_texts(study: Study, found: dict) -> dict:
    """The study's own words (its ``document:`` over the package's neutral defaults),
    every template filled from the findings."""
    values = template_values(study, found)

    def fill(doc: dict) -> dict:
        return {k: fill(v) if isinstance(v, dict) else v.format(**values) for k, v in doc.items()}

    return fill(study.document)


def _heading(texts: dict, ran: bool = True) -> str:
    """A finding's section heading: its title, and its citation once it has results."""
    cite = f" ({texts['cite']})" if texts.get("cite") and ran else ""
    return f"## {texts['title']}{cite}"


def _para(text: str) -> list[str]:
    """A paragraph of the study's own words, or nothing when the study leaves it empty."""
    return [text, ""] if text else []


def _join(*parts: str) -> str:
    """Words joined by a space, the empty ones left out."""
    return " ".join(p for p in parts if p)
