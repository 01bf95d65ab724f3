"""The study document's own words (a study file's ``document:`` block): checked like the
rest of the study file (a bad key, type or placeholder exits 2 naming ``document.<...>``),
filled from the findings into the written document, and, when a study file has no such
block, the package's neutral texts, which claim nothing of any paper."""

from pathlib import Path

import pytest
import yaml
from support import ROOT, fake_records

from sweep import cli
from sweep.config import study_spec
from sweep.report.study_report import write_study
from sweep.report.study_words import template_values
from sweep.run import study

SMOKE = ROOT / "configs" / "study-smoke.yaml"
MAIN_FAR = {"short_only-ls16": 0.2, "two_stage": 0.05, "linear-r0.5": -0.03, "linear-r1": -0.01}
PAPER_WORDS = ("BTLM", "Press et al.", "SkyLadder", "study-gpu.yaml", "open question")


def smoke_raw() -> dict:
    return yaml.safe_load(SMOKE.read_text())


BAD = [
    ({"control": {"claim": "Here {nope} fails."}}, "document.control.claim", "{nope}"),
    ({"title": "{study.name}"}, "document.title", "unknown placeholder {study.name}"),
    ({"title": "{top:>4}"}, "document.title", "unknown placeholder {top}"),
    ({"title": "{study!r}"}, "document.title", "unknown placeholder {study}"),
    ({"ramp": {"window": "{0}"}}, "document.ramp.window", "unknown placeholder {0}"),
    ({"intro": "a { b"}, "document.intro", "not a template"),
    ({"colour": "red"}, "document.colour", "unknown (title, intro"),
    ({"limits": {"scale": 3}}, "document.limits.scale", "must be a text"),
    ({"limits": "none"}, "document.limits", "must be a mapping"),
    (["title"], "document", "must be a mapping"),
]


@pytest.mark.parametrize("document,field,why", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_a_bad_document_block_exits_2_naming_its_field(tmp_path, capsys, document, field, why):
    raw = smoke_raw()
    raw["document"] = document
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"spec error: {field}="), err
    assert why in err[0]
    shown = document if field == "document" else _leaf(document)
    assert repr(shown) in err[0]  # the value, as written
    assert not (tmp_path / "r").exists()


def _leaf(doc):
    while isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), dict):
        doc = next(iter(doc.values()))
    return next(iter(doc.values()))


def test_every_placeholder_the_check_accepts_is_filled():
    st = study_spec.load(SMOKE)
    values = template_values(st, {"bands": ["far_x2", "far_x4"], "reference": "constant"})
    assert set(values) == set(study_spec.DOCUMENT_FIELDS)
    assert (
        values["top"] == "4" and values["l_max"] == "64" and values["negative"] == "short_only-ls16"
    )
    assert values["rope_arm"] == "rope" and values["mup_base_width"] == "32"


def _render(tmp_path: Path, raw: dict) -> str:
    """The smoke study's document from fake main-arm records (the other arms not run)."""
    st = study_spec.parse_study(raw)
    d = tmp_path / "res" / st.name
    study.prepare(st, d, overwrite=False)
    fake_records(d / "alibi", st.arm_spec("alibi", []), MAIN_FAR, n_seq=24, own_rise=0.1)
    return write_study(d, tmp_path / "docs").read_text()


def test_a_study_files_own_words_are_the_documents(tmp_path):
    raw = smoke_raw()
    raw["document"] = {
        "title": "Doe's rows of {l_max} in `{study}`",
        "intro": "Doe (2024) says `{negative}` fails; rows hold {{l_max}} = {l_max} tokens.",
        "control": {
            "cite": "Doe 2024",
            "claim": "Doe: `{negative}` (trained at {own}) fails past {top}x l_max.",
            "summary": "(a) Doe's claim",
        },
        "ramp": {"title": "(c) Ramps, per Doe", "cite": None},
        "limits": {"scale": "against Doe's 7B", "rope_arm": "", "not_run": "See Doe's arms."},
    }
    text = _render(tmp_path, raw)
    lines = text.splitlines()
    assert lines[0] == "# Doe's rows of 64 in `study-smoke`"
    assert "Doe (2024) says `short_only-ls16` fails; rows hold {l_max} = 64 tokens." in lines
    # the title not given is the neutral default's, the citation after it
    head = "## (a) Short-only training against two stages and the reference at 4x l_max"
    assert f"{head} (Doe 2024)" in lines
    assert "Doe: `short_only-ls16` (trained at 16 tokens) fails past 4x l_max." in lines
    assert any(ln.startswith("- (a) Doe's claim reproduces") for ln in lines)
    assert "## (c) Ramps, per Doe" in lines  # an empty citation adds nothing
    assert "`stdlib` corpus, against Doe's 7B. The findings" in text
    # an arm whose description is blank is left out of the arms not run
    assert "- Not run in this study: the best ramp in window mode; a second muP width " in text
    assert "rotary positions against ALiBi" not in text and "See Doe's arms." in text
    assert not any(w in text for w in PAPER_WORDS)  # the smoke file's own words replaced


def test_without_a_document_block_the_document_claims_no_paper(tmp_path):
    raw = smoke_raw()
    with_words = _render(tmp_path / "with", raw)
    assert "(a) BTLM's finding reproduces" in with_words and "(Press et al.)" in with_words
    raw.pop("document")
    text = _render(tmp_path / "without", raw)
    assert not any(w in text for w in PAPER_WORDS), [w for w in PAPER_WORDS if w in text]
    lines = text.splitlines()
    assert lines[0] == "# Study `study-smoke`: a steady context-length ramp against two stages"
    assert "## (a) Short-only training against two stages and the reference at 4x l_max" in lines
    assert any(
        ln.startswith("- (a) Short-only training's failure past l_max reproduces") for ln in lines
    )
    assert "## (b) ALiBi against rotary positions past l_max" in lines
    # the computed parts are the same numbers, whatever the words
    said = [ln for ln in with_words.splitlines() if ln.startswith("- `short_only-ls16` - ")]
    assert said and all(ln in lines for ln in said)


def test_a_resume_with_new_words_keeps_the_trials_and_stores_the_words(tmp_path):
    """The document's words decide no trial: a study file that changes only them (or adds
    seeds) resumes its results directory, whose stored file then carries the new words."""
    raw = smoke_raw()
    old = {k: v for k, v in raw.items() if k != "document"}
    d = tmp_path / "study-smoke"
    study.prepare(study_spec.parse_study(old), d, overwrite=False)
    study.prepare(study_spec.parse_study(raw), d, overwrite=False)
    stored = yaml.safe_load((d / study_spec.STUDY_FILE).read_text())
    assert stored["document"] == raw["document"]
    assert study_spec.load_dir(d).document["control"]["cite"] == "BTLM"
    changed = {**raw, "base": {**raw["base"], "seeds": [5, 6]}}  # not the same trials
    with pytest.raises(study_spec.SpecError, match="different spec"):
        study.prepare(study_spec.parse_study(changed), d, overwrite=False)
