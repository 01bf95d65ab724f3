"""A study file: several sweeps (arms) written as changes to one ``base`` spec, compared in
one document. Every arm is an ordinary sweep spec, and its results an ordinary sweep
directory (``<results>/<study>/<arm>/``). The first arm is the main grid; later arms may
name the schedules it found best (``best_ramp:1``, ``best_ramp:2`` in their
``schedules.shapes``), resolved once the main arm has finished (sweep/analysis/arms.py).
What a study file may say is checked here; running it is sweep/run/study.py."""

from __future__ import annotations

import copy
import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from sweep.config.fields import SpecError
from sweep.config.grid import tag_value
from sweep.config.shapes import RAMPS, SCALAR_PARAMS, SHAPE_PARAMS
from sweep.config.spec import SweepSpec, parse
from sweep.config.validation import read_yaml

STUDY_FILE = "study.yaml"
RUNS_FILE = "runs.jsonl"
PLACEHOLDER = re.compile(r"^best_ramp:(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# What the findings need to know about the arms: their names, checked against ``arms``.
FINDINGS_KEYS = {
    "btlm": "the BTLM two-stage schedule's label in the main arm",
    "negative": "the negative control's label (short-only training)",
    "rope_arm": "the arm that repeats schedules with rotary positions",
    "window_arm": "the arm that trains the best ramp in window mode",
    "wide_arm": "the arm at a second muP width (scale transfer)",
}


# The study document's own words (docs/design.md, Studies): what the papers found, their
# citations, each finding's title and what its arm tests. The study file's ``document:``
# block overrides these, text by text; these defaults claim nothing of any paper. Every
# text is a template whose ``{name}`` fields (DOCUMENT_FIELDS) are filled from the findings.
DOCUMENT_FIELDS = {
    "study": "the study's name",
    "main": "the main (first) arm's name",
    "reference": "the main arm's reference schedule",
    **{k: f"findings.{k}: {v} (n/a when unset)" for k, v in FINDINGS_KEYS.items()},
    "top": "the farthest evaluation band, as a multiple of l_max",
    "own": "the negative control's longest trained length (e.g. 32 tokens)",
    "l_max": "the main arm's l_max",
    "l_min": "the main arm's l_min",
    "d_model": "the main arm's d_model",
    "mup_base_width": "the main arm's muP base width",
}


def _finding(title: str, claim: str, summary: str, **more: str) -> dict:
    """A finding's texts: its section's title, the citation after it (once the section
    has results), the claim that opens the section, and the label of its summary line."""
    return {"title": title, "cite": "", "claim": claim, "summary": summary, **more}


DOCUMENT_DEFAULTS: dict = {
    "title": "Study `{study}`: a steady context-length ramp against two stages",
    "intro": "Each arm is an ordinary sweep over the study's base spec; the findings below "
    "compare the main arm's schedules past l_max, and the other arms' where they ran.",
    "control": _finding(
        "(a) Short-only training against two stages and the reference at {top}x l_max",
        "`{negative}` trains at {own} throughout, `{btlm}` in two stages, `{reference}` at "
        "l_max throughout.",
        "(a) Short-only training's failure past l_max",
    ),
    "positions": _finding(
        "(b) ALiBi against rotary positions past l_max",
        "Each schedule trained again with rotary positions (`{rope_arm}` arm; same data, seeds "
        "and evaluation windows), paired with its ALiBi trial: rope minus alibi, positive "
        "means rotary is worse.",
        "(b) ALiBi's advantage over rotary",
    ),
    "ramp": _finding(
        "(c) A steady ramp against two stages",
        "",
        "(c)",
        window="rows of l_max, attention limited to the schedule's length",
    ),
    "transfer": _finding(
        "Width transfer",
        "The same schedules again at a second width (`{wide_arm}` arm: muP base width "
        "{mup_base_width} kept).",
        "Width transfer",
    ),
    "sight": "",  # closes "What this proxy can see": where a larger proxy is
    "limits": {  # "What this does not show"
        "scale": "",  # the scale the proxy is compared with, after its own
        "next_step": "",  # in brackets after the scale line
        "rope_arm": "rotary positions against ALiBi",  # what each optional arm tests,
        "window_arm": "the best ramp in window mode",  # named when it has not run
        "wide_arm": "a second muP width (does the ranking transfer?)",
        "not_run": "",  # after the arms not run
    },
}


def _check_template(field: str, text: object) -> None:
    """A text whose every ``{...}`` is a bare name of DOCUMENT_FIELDS (``{{`` for a brace)."""
    if text is None:
        return
    if not isinstance(text, str):
        raise SpecError(field, text, "must be a text")
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise SpecError(field, text, f"not a template ({e}; write {{{{ for a brace)") from None
    for _, name, spec, conversion in parts:
        if name is not None and (name not in DOCUMENT_FIELDS or spec or conversion):
            known = ", ".join(DOCUMENT_FIELDS)
            raise SpecError(field, text, f"unknown placeholder {{{name}}} (known: {known})")


def _check_document(raw: object, defaults: dict, at: str = "document") -> None:
    if not isinstance(raw, dict):
        raise SpecError(at, raw, "must be a mapping")
    for key, value in raw.items():
        if key not in defaults:
            raise SpecError(f"{at}.{key}", value, f"unknown ({', '.join(defaults)})")
        if isinstance(defaults[key], dict):
            _check_document(value, defaults[key], f"{at}.{key}")
        else:
            _check_template(f"{at}.{key}", value)


def is_study(raw: object) -> bool:
    return isinstance(raw, dict) and "arms" in raw


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass(frozen=True)
class Study:
    name: str
    raw: dict  # the study file as written (stored with the results, compared on resume)

    @property
    def arm_names(self) -> list[str]:
        return list(self.raw["arms"])

    @property
    def main(self) -> str:
        return self.arm_names[0]

    @property
    def findings(self) -> dict:
        return dict(self.raw.get("findings") or {})

    @property
    def document(self) -> dict:
        """The document's templates: the study file's ``document:`` over the defaults."""
        doc = _merge(DOCUMENT_DEFAULTS, self.raw.get("document") or {})
        return _blank_nulls(doc)

    def placeholders(self, arm: str) -> list[int]:
        shapes = (self.raw["arms"][arm].get("schedules") or {}).get("shapes") or []
        shapes = shapes if isinstance(shapes, list) else [shapes]
        found = [PLACEHOLDER.match(s) for s in shapes if isinstance(s, str)]
        return [int(m.group(1)) for m in found if m]

    def arm_raw(self, arm: str, ramps: list[dict]) -> dict:
        """The arm's spec in YAML form, ``best_ramp:k`` replaced by ``ramps[k-1]``."""
        raw = _merge(self.raw.get("base") or {}, self.raw["arms"][arm] or {})
        raw["name"] = f"{self.name}-{arm}"
        sched = raw.get("schedules")
        if isinstance(sched, dict) and isinstance(sched.get("shapes"), list):
            shapes = []
            for s in sched["shapes"]:
                m = PLACEHOLDER.match(s) if isinstance(s, str) else None
                shapes.append(copy.deepcopy(ramps[int(m.group(1)) - 1]) if m else s)
            sched["shapes"] = shapes
        return raw

    def arm_spec(self, arm: str, ramps: list[dict]) -> SweepSpec:
        """The arm's validated spec; the files it names are checked where it trains
        (sweep/run/preflight.py), not where its results are read."""
        try:
            return parse(self.arm_raw(arm, ramps))
        except SpecError as e:
            raise SpecError(f"arms.{arm}.{e.field}", e.value, e.why) from None


def _blank_nulls(doc: dict) -> dict:
    """An empty YAML value (``cite:``) is an empty text."""
    return {k: _blank_nulls(v) if isinstance(v, dict) else v or "" for k, v in doc.items()}


def ramp_entry(spec: SweepSpec, label: str) -> dict:
    """A shape entry that reproduces schedule ``label`` of ``spec`` under the same label
    (its tagged parameters as its own, so the tag comes out the same)."""
    sched = next(t.schedule for t in spec.trials() if t.schedule.label == label)
    entry: dict = {"shape": sched.shape, "ramp_rates": [sched.ramp_rate]}
    for k in SHAPE_PARAMS.get(sched.shape, ()):
        if k in SCALAR_PARAMS and f"-{SCALAR_PARAMS[k]}{tag_value(getattr(sched, k))}" in sched.tag:
            entry[k] = [getattr(sched, k)]
    return entry


def ramp_labels(spec: SweepSpec) -> list[str]:
    """The main arm's increasing-ramp candidates in grid order (the stand-ins a dry run and
    the validation use before the main arm has results)."""
    out = []
    for t in spec.trials():
        s = t.schedule
        if s.shape in RAMPS and not s.control and s.mode == "reshape" and s.label not in out:
            out.append(s.label)
    return out


def load(path: str | Path) -> Study:
    return parse_study(read_yaml(path))


def _check_findings(findings: object, arms: dict) -> None:
    if not isinstance(findings, dict):
        raise SpecError("findings", findings, "must be a mapping")
    for key, value in findings.items():
        if key not in FINDINGS_KEYS:
            raise SpecError(f"findings.{key}", value, f"unknown ({', '.join(FINDINGS_KEYS)})")
        if key.endswith("_arm") and value not in arms:
            raise SpecError(f"findings.{key}", value, f"not an arm ({', '.join(arms)})")


def parse_study(raw: dict) -> Study:
    """The validated study: every arm parses as a sweep spec (placeholders stood in for by
    the main arm's ramps), placeholders only in later arms and within the ramps there are."""
    unknown = set(raw) - {"study", "base", "arms", "findings", "document"}
    if unknown:
        key = sorted(unknown)[0]
        raise SpecError(key, raw[key], "unknown study key (study, base, arms, findings, document)")
    name = raw.get("study")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("study", name, "must be a name (letters, digits, _ . -)")
    if not isinstance(raw.get("base", {}), dict):
        raise SpecError("base", raw.get("base"), "must be a mapping")
    arms = raw.get("arms")
    if not isinstance(arms, dict) or not arms:
        raise SpecError("arms", arms, "must be a non-empty mapping of arm name to spec changes")
    for arm, over in arms.items():
        if not isinstance(arm, str) or not _NAME.match(arm):
            raise SpecError("arms", arm, "an arm's name must be letters, digits, _ . -")
        if not isinstance(over, dict):
            raise SpecError(f"arms.{arm}", over, "must be a mapping of spec changes")
        if "name" in over:
            raise SpecError(f"arms.{arm}.name", over["name"], "is set by the study")
    findings = raw.get("findings") or {}
    _check_findings(findings, arms)
    if raw.get("document") is not None:
        _check_document(raw["document"], DOCUMENT_DEFAULTS)
    study = Study(name, copy.deepcopy(raw))
    if study.placeholders(study.main):
        raise SpecError(
            f"arms.{study.main}.schedules.shapes",
            "best_ramp",
            "the main (first) arm cannot name its own best ramps",
        )
    main = study.arm_spec(study.main, [])
    ramps = ramp_labels(main)
    labels = {t.schedule.label for t in main.trials()}
    for key in ("btlm", "negative"):
        if key in findings and findings[key] not in labels:
            raise SpecError(f"findings.{key}", findings[key], f"not a schedule of arm {study.main}")
    for arm in study.arm_names[1:]:
        want = study.placeholders(arm)
        if want and max(want) > len(ramps) or 0 in want:
            raise SpecError(
                f"arms.{arm}.schedules.shapes",
                f"best_ramp:{max(want)}",
                f"arm {study.main} has {len(ramps)} increasing ramps",
            )
        study.arm_spec(arm, [ramp_entry(main, r) for r in ramps])
    return study


def adds_seeds(stored: object, want: dict) -> bool:
    """Whether study file ``want`` is ``stored`` with seeds added (to the base or to an
    arm), or its document's words changed, and nothing else: every finished trial then
    stands (and the stored file takes the new words)."""
    if not isinstance(stored, dict):
        return False

    def split(raw: dict) -> tuple[dict, list[list]]:
        out, seeds = copy.deepcopy(raw), []
        out.pop("document", None)
        for part in [out.get("base") or {}, *(out.get("arms") or {}).values()]:
            if isinstance(part, dict):
                seeds.append(list(part.pop("seeds", []) or []))
        return out, seeds

    (a, sa), (b, sb) = split(stored), split(want)
    return a == b and len(sa) == len(sb) and all(set(x) <= set(y) for x, y in zip(sa, sb))


def load_dir(study_dir: Path) -> Study:
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        why = f"is not a study's results directory (no {STUDY_FILE})"
        raise SpecError("DIR", str(study_dir), why)
    return parse_study(yaml.safe_load(path.read_text()))


def is_study_dir(path: Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()
