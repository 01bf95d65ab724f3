"""The trial record: one typed form that every stage writes and reads."""

import json

import pytest
from support import smoke_spec

from sweep.analysis.records import TrialRecord, read_record, record_path, write_record


def _trial():
    return smoke_spec().trials()[0]


def test_of_takes_the_identity_from_the_trial_spec(tmp_path):
    t = _trial()
    rec = write_record(tmp_path, TrialRecord.of(t, "running", started_at=12.5))
    on_disk = json.loads(record_path(tmp_path, t.trial_id).read_text())
    assert on_disk["trial_id"] == t.trial_id and on_disk["status"] == "running"
    assert on_disk["schedule"] == t.schedule.label and on_disk["seed"] == t.seed
    assert on_disk["l_max"] == t.schedule.l_max and on_disk["eval_length"] == t.eval_length
    assert on_disk["role"] == t.role and on_disk["started_at"] == 12.5
    # None fields are absent, not null: a running record says nothing of its losses
    assert "curve" not in on_disk and "error" not in on_disk and "extra" not in on_disk
    assert read_record(record_path(tmp_path, t.trial_id)) == rec


def test_a_field_that_is_not_a_record_field_is_refused():
    with pytest.raises(TypeError, match="far_los"):
        TrialRecord.of(_trial(), "finished", far_los=1.0)
    with pytest.raises(AssertionError):
        TrialRecord.of(_trial(), "finishd")


def test_the_spec_is_derived_once_from_the_stored_config(tmp_path):
    t = _trial()
    write_record(tmp_path, TrialRecord.of(t, "finished", tokens_trained=10))
    rec = read_record(record_path(tmp_path, t.trial_id))
    assert rec.spec == t and rec.sweep == t.sweep
    assert rec.spec is rec.spec  # parsed once, then cached
    assert rec.spec.eval_length == rec.eval_length
    assert rec.spec.plan().steps == t.plan().steps


def test_a_config_that_no_longer_parses_gives_no_spec_but_the_record_reads():
    d = TrialRecord.of(_trial(), "finished").to_dict()
    d["config"]["sweep"]["budget"] = {"tokens": "many"}
    rec = TrialRecord.from_dict(d)
    assert rec.spec is None and rec.sweep is None
    assert rec.schedule == d["schedule"]


def test_unknown_keys_round_trip_and_nulls_read_as_absent():
    d = TrialRecord.of(_trial(), "finished", error=None).to_dict()
    d |= {"a_newer_field": [1, 2], "wall_s": None}
    rec = TrialRecord.from_dict(d)
    assert rec.extra == {"a_newer_field": [1, 2]} and rec.wall_s is None
    assert rec.to_dict()["a_newer_field"] == [1, 2] and "wall_s" not in rec.to_dict()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1, 2]",
        '{"status": "finished"}',
        '{"trial_id": "a"}',
        '{"trial_id": "a", "status": "x"}',
    ],
)
def test_what_is_not_a_record_reads_as_none(tmp_path, text):
    path = tmp_path / "record.json"
    path.write_text(text)
    assert read_record(path) is None
    assert read_record(tmp_path / "missing.json") is None


def test_trained_length_and_tokens_at_a_length():
    rec = TrialRecord("a", "finished", tokens_by_length={"16": 100, "32": 0, "8": 50})
    assert rec.trained_length == 16  # 32 is listed with no tokens: not trained at
    assert rec.tokens_at(8) == 50 and rec.tokens_at(64) == 0
    assert TrialRecord("a", "finished", own_length=32, tokens_by_length={}).trained_length == 32
    assert TrialRecord("a", "failed").trained_length is None


def test_why_is_a_failures_error_or_a_stopped_trials_reason():
    assert TrialRecord("a", "failed", error="boom").why == "boom"
    assert TrialRecord("a", "stopped", reason="dominated").why == "dominated"
    assert TrialRecord("a", "finished").why == ""
