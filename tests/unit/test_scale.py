"""Analysis of sweeps with many schedules: the per-schedule figures draw at most
``style.MAX_DRAWN`` (which ones, and the captions say so), and loaded records hold their
per-position series packed without changing a value."""

from array import array

import yaml
from support import ROOT, fake_records, smoke_spec

from sweep.analysis import aggregate, paired
from sweep.config import spec
from sweep.report import style
from sweep.report.sweep_report import write_report


def wide_spec(rates=(0.2, 0.4, 0.6, 0.8, 1.0)):
    """configs/smoke.yaml with 3 ramps x 5 rates: 17 schedules with the reference and the
    control."""
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"] |= {
        "shapes": ["constant", "linear", "root", "geometric"],
        "ramp_rates": list(rates),
        "controls": ["short_only"],
    }
    raw["seeds"] = [0, 1]
    return spec.parse(raw)


def test_figures_draw_the_reference_controls_and_best_up_to_the_cap(tmp_path):
    sw = wide_spec()
    far = {t.schedule.label: 0.001 * i for i, t in enumerate(sw.trials()) if t.seed == 0}
    fake_records(tmp_path, sw, far)
    s = aggregate.aggregate(tmp_path)
    assert len(s.schedules) == 17
    shown = style.drawn(s)
    assert len(shown) == style.MAX_DRAWN
    assert shown[:2] == [s.reference, "short_only"]
    ranked = [r["schedule"] for r in s.schedules if r["role"] != "control"]
    # after the reference, control, picks and candidates: the ranking's order
    assert set(ranked[: style.MAX_DRAWN - 2 - len(s.picks)]) <= set(shown)
    assert set(style._drawn_groups(s)) == set(shown)
    write_report(s)
    md = (tmp_path / "report.md").read_text()
    # every drawn per-schedule figure says so (this fake draws curves, bands, schedules)
    assert md.count(f"Drawn: {style.MAX_DRAWN} of the 17 schedules") >= 3
    assert f"In colour and named: {style.MAX_DRAWN} of the 17 schedules" in md
    assert "the other 5 grey" in md
    for name in ranked:  # the ranking still lists every schedule
        assert name in md


def test_small_sweeps_draw_everything_and_say_nothing(tmp_path):
    sw = wide_spec(rates=(0.5, 1.0))  # 1 + 3 x 2 + control = 8 schedules
    fake_records(tmp_path, sw)
    s = aggregate.aggregate(tmp_path)
    assert len(style.drawn(s)) == len(s.schedules) == 8
    assert style.drawn_note(s) == ""


def test_loaded_series_are_packed_with_the_same_values(tmp_path):
    import json

    fake_records(tmp_path, smoke_spec(seeds=(0, 1)))
    trials, skipped = paired.load_trials(tmp_path)
    assert trials and not skipped
    for t in trials:
        on_disk = json.loads((tmp_path / "trials" / t.id / "record.json").read_text())
        assert isinstance(t.record.curve, array)
        assert t.record.curve == array("d", on_disk["curve"])  # every value, exactly
        assert list(t.record.curve) == on_disk["curve"]
        per = t.record.per_sequence
        assert isinstance(per["far_loss"], array)
        assert list(per["far_loss"]) == on_disk["per_sequence"]["far_loss"]
