"""The decision code on hand-built inputs whose right answer is known: what a record
contributes (trial_units), the controls check, and the pick rule. Written against the
survivors of a mutation run, so that each branch is pinned by a case that needs it."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats
from support import fake_records, row, smoke_spec

from sweep.analysis import aggregate, controls, paired, pick
from sweep.analysis.records import TrialRecord


def iv(mean, lo, hi, method="t over 10 documents"):
    return {"mean": mean, "lo": lo, "hi": hi, "half": (hi - lo) / 2, "df": 9.0, "method": method}


# ----------------------------------------------------------------------------- records


def known_record(**over) -> TrialRecord:
    """l_max 2, E 4; four windows from documents a, b, a, c (b a repeat document).
    ``over``: fields to change (None: leave the field out)."""
    rec = {
        "trial_id": "t-s0",
        "status": "finished",
        "l_max": 2,
        "eval_length": 4,
        "curve": [1.0, 2.0, 3.0, 4.0],
        "metrics": {"flops": 123.0},
        "tokens_by_length": {"2": 100, "1": 50},
        "per_sequence": {
            "id_loss": [1.0, 2.0, 3.0, 4.0],
            "near_loss": [1.0, 1.0, 1.0, 1.0],
            "far_loss": [2.0, 4.0, 6.0, 8.0],
            "ctx_gain": [0.1, 0.2, 0.3],  # the first three windows: a, b, a
            "copy": [[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]],  # natural windows: a, a, c
        },
        "copy_distances": [1, 2],
        "eval_windows": {
            "doc": ["a", "b", "a", "c"],
            "source": ["natural", "repeat", "natural", "natural"],
            "offset": [0, 0, 0, 0],
        },
    }
    rec.update(over)
    return TrialRecord.from_dict(rec)


def test_trial_units_average_windows_per_document():
    m, units = paired.trial_units(known_record())
    assert m["flops"] == 123.0 and m["tokens_at_l_max"] == 100.0
    assert m["far_loss"] == pytest.approx(3.5) and m["id_loss"] == pytest.approx(1.5)
    docs, far = units["far_loss"]
    assert docs == ("a", "b", "c") and far.tolist() == pytest.approx([4.0, 4.0, 8.0])
    assert units["delta"][1].tolist() == pytest.approx([3.0, 3.0, 7.0])  # far - near
    assert units["id_loss"][1].tolist() == pytest.approx([2.0, 2.0, 4.0])
    assert units["ctx_gain"][0] == ("a", "b")
    assert units["ctx_gain"][1].tolist() == pytest.approx([0.2, 0.2])
    assert m["ctx_gain"] == pytest.approx(0.2)
    # the copy probe runs on natural windows only: a, a, c (b is a repeat document)
    assert units["copy_d1"][0] == ("a", "c")
    assert units["copy_d1"][1].tolist() == pytest.approx([2.0, 5.0])
    assert units["copy_d2"][1].tolist() == pytest.approx([20.0, 50.0])
    assert m["copy_d1"] == pytest.approx(3.0) and m["copy_d2"] == pytest.approx(30.0)


def test_trial_units_without_the_optional_fields():
    rec = known_record(tokens_by_length={"1": 50}, eval_windows=None)
    rec.per_sequence = {k: v for k, v in rec.per_sequence.items() if k != "ctx_gain"}
    m, units = paired.trial_units(rec)
    assert m["tokens_at_l_max"] == 0.0 and "ctx_gain" not in m and "ctx_gain" not in units
    assert units["far_loss"][0] == ("#0", "#1", "#2", "#3")  # each window its own unit
    assert units["copy_d1"][0] == ("#0", "#1", "#2")  # all natural without sources


@pytest.mark.parametrize(
    "over",
    [
        {"curve": [1.0, 2.0, 3.0]},  # not eval_length long
        {"curve": [1.0, 2.0], "eval_length": 2},  # nothing past l_max
        {"eval_windows": {"doc": ["a"], "source": ["natural"]}},  # windows do not match
    ],
)
def test_malformed_records_are_refused(over):
    with pytest.raises(ValueError):
        paired.trial_units(known_record(**over))


# ----------------------------------------------------------------------------- controls


def control_rows(far=None, gain=None, with_vs=True, own=None, use=None):
    neg = {"schedule": "short_only", "shape": "short_only", "role": "control", "seeds": 1}
    if with_vs:
        neg["vs_ref"] = {k: v for k, v in (("far_loss", far), ("ctx_gain", gain)) if v}
    if own is not None:
        neg["own_excess"] = own
    ref = {"schedule": "constant", "shape": "constant", "role": "reference", "seeds": 1}
    if use is not None:
        ref["context_use_ci"] = use
    return [
        {"schedule": "short_only-cand", "shape": "short_only", "role": "candidate"},
        {"schedule": "reverse-r1", "shape": "reverse", "role": "control", "seeds": 1},
        neg,
        ref,
    ]


def test_controls_summary_in_words_and_numbers():
    c = controls.check_controls(
        control_rows(
            iv(0.05, 0.04, 0.06),
            iv(-0.03, -0.04, -0.02),
            own=iv(0.02, 0.01, 0.03),
            use=iv(0.1, 0.08, 0.12),
        ),
        "constant",
    )
    assert c["negative"] == "short_only"  # the control of that shape, not another
    assert c["discriminates"] is True and c["far_separated"] and c["shape_separated"]
    assert c["sees"] == "extrapolation" and c["excess_key"] == "own_excess"
    assert c["far_loss"]["mean"] == 0.05 and c["ctx_gain"]["mean"] == -0.03
    assert c["summary"] == (
        "short_only - constant: far_loss +0.0500 [+0.0400, +0.0600] (separated), "
        "own_excess +0.0200 [+0.0100, +0.0300] (separated), "
        "constant context_use +0.1000 [+0.0800, +0.1200] (> 0), "
        "ctx_gain -0.0300 [-0.0400, -0.0200] (reported, not required)"
    )
    assert controls.sight(c).startswith(
        "sees extrapolation: the reference uses context up to l_max and the negative "
        "control's deficit grows past its own trained length (short_only own_excess +0.0200"
    )


def test_an_interval_touching_zero_does_not_separate():
    c = controls.check_controls(
        control_rows(
            iv(0.05, 0.0, 0.1),
            iv(-0.03, -0.06, 0.0),
            own=iv(0.02, 0.0, 0.04),
            use=iv(0.1, 0.0, 0.2),
        ),
        "constant",
    )
    assert c["far_separated"] is False and c["excess_separated"] is False
    assert c["context_used"] is False and c["shape_separated"] is False
    assert c["discriminates"] is False and c["sees"] == "nothing"
    assert c["summary"].count("NOT separated") == 2 and "(NOT > 0)" in c["summary"]
    assert "; the control is worse but within the noise" in c["summary"]
    assert "(one seed measures no seed noise)" in c["summary"]
    assert controls.sight(c).startswith("sees nothing")


def test_a_control_no_worse_at_all_gets_other_advice():
    c = controls.check_controls(control_rows(iv(-0.01, -0.02, 0.0), None), "constant")
    assert c["discriminates"] is False and c["shape_separated"] is None
    assert "ctx_gain n/a (reported, not required)" in c["summary"]
    assert "far_excess n/a (not recorded)" in c["summary"]
    assert "not worse past l_max at all" in c["summary"]


def test_without_shape_records_far_loss_decides_on_level():
    """Older records (no context_use, no bins): judged on level, and said so."""
    c = controls.check_controls(control_rows(iv(0.05, 0.04, 0.06), None), "constant")
    assert c["discriminates"] is True and c["shape_separated"] is None
    assert c["sees"] == "level only"
    assert c["summary"].endswith("ctx_gain n/a (reported, not required)")


def test_shape_needs_both_the_excess_and_the_references_context_use():
    for own, use, sees in (
        (iv(0.02, 0.01, 0.03), iv(0.1, 0.08, 0.12), "extrapolation"),
        (iv(0.02, 0.01, 0.03), iv(0.01, -0.01, 0.03), "level only"),
        (iv(0.002, -0.01, 0.014), iv(0.1, 0.08, 0.12), "level only"),
    ):
        c = controls.check_controls(
            control_rows(iv(0.05, 0.04, 0.06), None, own=own, use=use), "constant"
        )
        assert c["sees"] == sees, (own, use)
    # the excess alone, with the level not separated, still sees extrapolation
    c = controls.check_controls(
        control_rows(
            iv(0.01, -0.01, 0.03), None, own=iv(0.02, 0.01, 0.03), use=iv(0.1, 0.08, 0.12)
        ),
        "constant",
    )
    assert c["sees"] == "extrapolation" and c["discriminates"] is True


def test_of_two_short_only_controls_the_one_trained_shortest_judges():
    """short_only at 64 comes first in the ranking (lower far_loss) but short_only at 32
    is the control that must fail most clearly: it judges the sweep, whatever the order;
    both are judged and kept in ``every``."""
    rows = control_rows(
        iv(0.05, 0.04, 0.06), None, own=iv(0.02, 0.01, 0.03), use=iv(0.1, 0.08, 0.12)
    )
    rows[2]["own_length"] = 32
    ls64 = {**rows[2], "schedule": "short_only-ls64", "own_length": 64}
    ls64["own_excess"] = iv(0.002, -0.01, 0.014)
    for order in ([ls64, *rows], [*rows, ls64]):
        c = controls.check_controls(order, "constant")
        assert c["negative"] == "short_only" and c["sees"] == "extrapolation"
        assert [e["negative"] for e in c["every"]] == ["short_only", "short_only-ls64"]
        assert [e["sees"] for e in c["every"]] == ["extrapolation", "level only"]


def test_control_without_a_reference_to_compare():
    c = controls.check_controls(control_rows(with_vs=False), "constant")
    assert c["discriminates"] is False and c["far_loss"] is None
    assert "far_loss n/a (NOT separated)" in c["summary"]


# ----------------------------------------------------------------------------- pick rule


def cand(
    name, far, id_loss=2.0, flops=0.5, role="candidate", method="t over 10 documents", seeds=2
):
    r = {"schedule": name, "role": role, "id_loss": id_loss, "far_loss": 3.0, "flops": flops}
    r["seeds"] = seeds
    if far is not None:
        r["far_loss"] = 3.0 + far[0]
        r["vs_ref"] = {"far_loss": iv(*far, method=method)}
    return r


REF = {"schedule": "constant", "role": "reference", "id_loss": 2.0, "far_loss": 3.0, "flops": 1.0}
SEPARATED = {"discriminates": True, "summary": "ctl"}


def widened(far, m):
    """The bounds of a 95% t interval on 9 df (``iv``) at the Bonferroni level for m."""
    mean, lo, hi = far
    k = stats.t.ppf(1 - 0.025 / m, 9) / stats.t.ppf(0.975, 9)
    return [mean - (hi - lo) / 2 * k, mean + (hi - lo) / 2 * k]


def test_the_rule_goes_past_every_kind_of_reject_to_the_pick():
    rows = [
        cand("costly", (-0.2, -0.25, -0.15), id_loss=2.02),  # beats the reference, too costly
        cand("no-interval", None, id_loss=1.0),  # no paired interval: not judged
        cand("dear", (-0.1, -0.15, -0.05), flops=0.6),  # dominated by "good" (dearer)
        cand("good", (-0.1, -0.15, -0.05)),
        cand("ctl", (-0.3, -0.35, -0.25), id_loss=1.0, flops=0.1, role="control"),
        REF,
    ]
    d = pick.decide(rows, "constant", SEPARATED)
    assert [p["schedule"] for p in d.picks] == ["good"] and d.candidates == []
    assert d.comparisons == 3 and d.level == pytest.approx(1 - 0.05 / 3)  # costly, dear, good
    assert d.margin == pick.DEFAULT_MARGIN
    assert d.verdict == (
        "1 pick(s) worth scaling: good; costly (+0.0200) lean better past l_max but lose "
        "more than 0.01 nats of id_loss; against constant: 3 better; 3 comparison(s) with "
        "constant, Bonferroni: each interval at 98.33%; margin 0.0100 nats (the default "
        "0.01 (no negative control told apart))"
    )
    p = d.picks[0]
    assert p["far_gain"] == pytest.approx(0.1)
    assert p["far_interval"] == pytest.approx(widened((-0.1, -0.15, -0.05), 3))
    assert p["id_cost"] == pytest.approx(0.0) and p["outcome"] == "better"
    assert "0.50x the reference FLOPs" in p["rationale"]
    assert "beats the reference constant (3.0000) by 0.1000" in p["rationale"]
    assert "at 98.33% (family-wise 95%" in p["rationale"]
    assert not rows[4]["pareto"]  # a control never shapes or joins the front
    assert not rows[2]["pareto"] and rows[3]["pareto"]
    assert rows[3]["decision"]["outcome"] == "better" and "decision" not in rows[4]


def test_reasons_when_nothing_is_picked():
    rows = [
        cand("costly", (-0.2, -0.25, -0.15), id_loss=2.03),
        cand("close", (-0.005, -0.02, 0.01)),
        cand("tie", (0.0, -0.02, 0.02)),
        cand("worse", (0.01, -0.01, 0.03)),
        REF,
    ]
    d = pick.decide(rows, "constant", {"discriminates": None, "summary": "u"})
    assert d.picks == [] and [c["schedule"] for c in d.candidates] == ["close"]
    lo, hi = widened((-0.005, -0.02, 0.01), 4)
    assert d.verdict == (
        f"no pick; candidates to confirm: close (-0.0050 [{lo:+.4f}, {hi:+.4f}] at 98.75%, "
        "inconclusive: more seeds (the variances behind the interval are not recorded)); "
        "costly (+0.0300) lean better past l_max but lose more than 0.01 nats of id_loss; "
        "against constant: 1 better, 3 inconclusive (u); 4 comparison(s) with constant, "
        "Bonferroni: each interval at 98.75%; margin 0.0100 nats (the default 0.01 (no "
        "negative control told apart))"
    )


def test_the_margin_is_the_specs_or_half_the_controls_gap():
    rows = [cand("good", (-0.1, -0.15, -0.05)), dict(REF)]
    gap = {"discriminates": True, "far_separated": True, "far_loss": iv(0.3, 0.2, 0.4)}
    d = pick.decide(rows, "constant", {**gap, "summary": "s"})
    assert d.margin == pytest.approx(0.15) and d.picks == []  # -0.1 is not beyond 0.15
    assert "half the negative control's far_loss gap +0.3000" in d.verdict
    assert rows[0]["decision"]["outcome"] == "inconclusive"
    d = pick.decide(rows, "constant", {**gap, "summary": "s"}, margin=0.02)
    assert d.margin == 0.02 and [p["schedule"] for p in d.picks] == ["good"]
    assert "margin 0.0200 nats (decision.margin)" in d.verdict


def test_equivalent_and_worse_are_outcomes_never_candidates():
    rows = [cand("same", (0.001, -0.004, 0.006)), cand("bad", (0.1, 0.05, 0.15)), dict(REF)]
    d = pick.decide(rows, "constant", SEPARATED, margin=0.02)
    assert [r["decision"]["outcome"] for r in rows[:2]] == ["equivalent", "worse"]
    assert d.picks == [] and d.candidates == []
    assert "against constant: 1 equivalent, 1 worse" in d.verdict


def test_only_the_reference():
    d = pick.decide([dict(REF)], "constant", SEPARATED)
    assert d.picks == [] and d.comparisons == 0 and d.verdict.startswith("no pick; 0 comparison")


def test_no_reference_no_pick():
    d = pick.decide([cand("a", (-1, -2, -0.5))], "constant", SEPARATED)
    assert (
        d.picks == []
        and d.candidates == []
        and d.verdict == ("no pick: the reference schedule 'constant' has no finished trial")
    )


def test_underpowered_says_why_and_picks_nothing():
    rows = [cand("good", (-0.1, -0.15, -0.05)), dict(REF)]
    d = pick.decide(rows, "constant", {"discriminates": False, "summary": "s"})
    assert d.picks == [] and d.candidates == [] and d.verdict == "underpowered, no pick: s"


# ----------------------------------------------------------------------------- from records


def test_rows_carry_their_own_intervals_and_keys(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path)
    r = row(s, "linear-r0.5")
    assert r["ramp_rate"] == 0.5 and r["trial_ids"] == ["linear-r0.5-s0", "linear-r0.5-s1"]
    for key in ("id_loss", "far_loss", "ctx_gain", "context_use", "slope"):
        ci = r[f"{key}_ci"]
        assert ci["lo"] < r[key] < ci["hi"] and ci["mean"] == pytest.approx(r[key], abs=1e-6)
    assert row(s, "short_only")["role"] == "control"


def test_an_explicit_reference_is_the_reference(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    s = aggregate.aggregate(tmp_path, reference="linear-r0.5")
    assert row(s, "linear-r0.5")["role"] == "reference" and "vs_ref" not in row(s, "linear-r0.5")
    assert row(s, "constant")["vs_ref"]["far_loss"]["mean"] == pytest.approx(0.1, abs=0.01)


def test_controls_are_listed_last_even_when_their_far_loss_is_lowest(tmp_path):
    fake_records(
        tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": 0.1}, own_rise=0.0, control_far=-0.05
    )
    s = aggregate.aggregate(tmp_path)
    assert [r["role"] for r in s.schedules][-1] == "control"
    assert s.controls["discriminates"] is False


def test_no_reference_records(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    for f in tmp_path.glob("trials/constant-*/record.json"):
        f.unlink()
    s = aggregate.aggregate(tmp_path)
    assert s.picks == [] and "has no finished trial" in s.verdict
    assert all("vs_ref" not in r for r in s.schedules)


def test_seeds_the_reference_lacks_are_left_out_of_the_pairing(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    (tmp_path / "trials" / "constant-s1" / "record.json").unlink()
    s = aggregate.aggregate(tmp_path)
    far = row(s, "linear-r0.5")["vs_ref"]["far_loss"]
    assert "1 seed" in far["method"] and far["mean"] == pytest.approx(-0.1, abs=0.02)


@pytest.mark.parametrize("where", ["linear-r0.5-s1", "constant-s1"])
def test_a_seed_without_ctx_gain_drops_only_that_comparison(tmp_path, where):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    f = tmp_path / "trials" / where / "record.json"
    rec = json.loads(f.read_text())
    del rec["per_sequence"]["ctx_gain"]
    f.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    r = row(s, "linear-r0.5")
    assert "ctx_gain" not in r["vs_ref"] and "far_loss" in r["vs_ref"]
    assert ("ctx_gain_ci" in r) is (where == "constant-s1")


def test_per_document_means_weight_each_document_once(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1}, n_seq=4)
    f = tmp_path / "trials" / "linear-r0.5-s0" / "record.json"
    rec = json.loads(f.read_text())
    rec["eval_windows"]["doc"] = ["a.py", "a.py", "a.py", "b.py"]
    rec["per_sequence"]["far_loss"] = [1.0, 2.0, 3.0, 10.0]
    f.write_text(json.dumps(rec))
    _, units = paired.trial_units(TrialRecord.from_dict(rec))
    assert units["far_loss"][1].tolist() == pytest.approx([2.0, 10.0])
    assert np.mean(units["far_loss"][1]) == pytest.approx(6.0)


def test_edges_of_the_rule():
    ref = {**REF, "flops": 2.0}
    rows = [
        ref,  # the reference first: the rule must look past it, not stop
        cand("at-limit", (-0.1, -0.15, -0.05), id_loss=2.0078125),  # exactly epsilon worse
    ]
    picks = pick.decide(rows, "constant", SEPARATED, epsilon=0.0078125).picks
    assert [p["schedule"] for p in picks] == ["at-limit"]
    assert "0.25x the reference FLOPs" in picks[0]["rationale"]
    # an interval that reaches zero is not beyond it
    touching = [dict(REF), cand("touching", (-0.1, -0.2, 0.0))]
    assert pick.decide(touching, "constant", SEPARATED, margin=0.0).picks == []


def test_lists_in_the_verdict_are_comma_separated():
    rows = [
        cand("c1", (-0.2, -0.25, -0.15), id_loss=2.03),
        cand("c2", (-0.2, -0.25, -0.15), id_loss=2.04),
        cand("n1", (-0.005, -0.02, 0.01)),
        cand("n2", (-0.004, -0.02, 0.01), id_loss=1.99),  # on the front: lower id_loss
        dict(REF),
    ]
    verdict = pick.decide(rows, "constant", SEPARATED).verdict
    assert "c1 (+0.0300), c2 (+0.0400) lean better" in verdict
    assert (
        "candidates to confirm: n1 (-0.0050 [" in verdict and "recorded)), n2 (-0.0040 [" in verdict
    )


def test_advice_edges():
    tie = controls.check_controls(control_rows(iv(0.0, -0.01, 0.01), None), "constant")
    assert "not worse past l_max at all" in tie["summary"]  # zero is not worse
    two = control_rows(iv(0.01, -0.01, 0.03), None)
    two[2]["seeds"] = 2
    c = controls.check_controls(two, "constant")
    assert c["summary"].endswith(
        "add eval sequences (eval.sequences, eval.probe_sequences), seeds, or training tokens"
    )


def test_field_order_in_a_record_does_not_matter():
    rec = known_record()
    per = rec.per_sequence
    rec.per_sequence = {"copy": per["copy"], "ctx_gain": per["ctx_gain"], **per}
    _, units = paired.trial_units(rec)
    assert {"id_loss", "far_loss", "delta", "ctx_gain", "copy_d1"} <= set(units)


def test_the_words_a_user_acts_on():
    none = controls.check_controls([dict(REF)], "constant")
    assert none == {
        "negative": None,
        "discriminates": None,
        "sees": None,
        "by_mode": {},
        "summary": "no negative control in the spec (schedules.controls: [short_only]): "
        "whether this sweep can tell schedules apart is untested",
    }
    assert controls._advice(iv(-0.01, -0.02, 0.0), 1) == (
        "the short-trained control is not worse past l_max at all: the proxy does not "
        "learn to use long context here; train more tokens (budget.tokens), a larger "
        "model, a BPE tokenizer (more context per token), or add long-range documents "
        "(data.repeat_share)"
    )
    assert controls._advice(iv(0.01, -0.01, 0.03), 1) == (
        "the control is worse but within the noise: add eval sequences (eval.sequences, "
        "eval.probe_sequences), seeds (one seed measures no seed noise), or training tokens"
    )


def test_what_a_malformed_record_is_told():
    for over, why in (
        ({"curve": [1.0, 2.0, 3.0]}, "curve length does not match eval_length"),
        ({"eval_windows": {"doc": ["a"]}}, "eval_windows does not match per_sequence"),
    ):
        with pytest.raises(ValueError) as err:
            paired.trial_units(known_record(**over))
        assert str(err.value) == why
    rec = known_record(copy_distances=None)  # copy values without distances: no keys
    m, units = paired.trial_units(rec)
    assert not any(k.startswith("copy") for k in [*m, *units])


def test_each_mode_is_vouched_for_by_its_own_control():
    good, bad = (iv(0.05, 0.04, 0.06), iv(-0.03, -0.04, -0.02)), (iv(0.01, -0.01, 0.03), None)

    def neg(mode, far, gain):
        name = "short_only" if mode == "reshape" else f"short_only-{mode}"
        vs = {k: v for k, v in (("far_loss", far), ("ctx_gain", gain)) if v}
        return {"schedule": name, "shape": "short_only", "role": "control", "seeds": 1,
                "mode": mode, "vs_ref": vs}  # fmt: skip

    rows = [neg("window", *bad), neg("reshape", *good)]
    c = controls.check_controls(rows, "constant")
    assert c["negative"] == "short_only" and c["far_separated"]  # reshape's at the top
    assert c["discriminates"] is False  # not every mode's control is told apart
    assert c["by_mode"]["window"]["discriminates"] is False
    assert c["by_mode"]["reshape"]["discriminates"] is True
    # reshape's first (the modes' order), the advice once, after every control's numbers
    assert c["summary"].startswith("short_only - constant: far_loss +0.0500")
    assert "; short_only-window - constant: far_loss +0.0100" in c["summary"]
    assert c["summary"].count("add eval sequences") == 1
    cands = [
        {**cand("linear-r1", (-0.06, -0.07, -0.05)), "mode": "reshape"},
        {**cand("linear-r1-window", (-0.08, -0.09, -0.07), flops=0.4), "mode": "window"},
    ]
    d = pick.decide([dict(REF), *cands], "constant", c)
    picks, verdict = d.picks, d.verdict
    # the window candidate is better, but its mode's control could not tell apart
    assert [p["schedule"] for p in picks] == ["linear-r1"]
    assert "mode(s) window left out: their control was not told apart" in verdict
    c2 = controls.check_controls([neg("window", *bad), neg("reshape", *bad)], "constant")
    d = pick.decide([dict(REF), *cands], "constant", c2)
    picks, verdict = d.picks, d.verdict
    assert picks == [] and verdict.startswith("underpowered, no pick")


def _neg(mode, far, gain, with_mode=True):
    name = "short_only" if mode == "reshape" else f"short_only-{mode}"
    vs = {k: v for k, v in (("far_loss", far), ("ctx_gain", gain)) if v}
    row = {"schedule": name, "shape": "short_only", "role": "control", "seeds": 1, "vs_ref": vs}
    return row | ({"mode": mode} if with_mode else {})


GOOD = (iv(0.05, 0.04, 0.06), iv(-0.03, -0.04, -0.02))
BAD = (iv(0.01, -0.01, 0.03), None)


def test_records_without_a_mode_are_reshape():
    c = controls.check_controls([_neg("reshape", *BAD, with_mode=False)], "constant")
    assert list(c["by_mode"]) == ["reshape"] and c["discriminates"] is False
    # a reshape candidate from such a record is left out with its blind mode ...
    cands = [
        cand("linear-r1", (-0.02, -0.03, -0.01)),  # no "mode" key: reshape
        {**cand("linear-r1-window", (-0.02, -0.03, -0.01), flops=0.6), "mode": "window"},
    ]
    ok = controls.check_controls(
        [_neg("reshape", *BAD, with_mode=False), _neg("window", *GOOD)], "constant"
    )
    d = pick.decide([dict(REF), *cands], "constant", ok)
    picks, verdict = d.picks, d.verdict
    assert [p["schedule"] for p in picks] == ["linear-r1-window"]
    assert "mode(s) reshape left out" in verdict
    # ... and cannot push the others off the front
    rows = [dict(REF), *cands]
    pick.decide(rows, "constant", ok)
    assert [r["schedule"] for r in rows if r["pareto"]] == ["linear-r1-window"]


def test_without_a_reshape_control_the_first_mode_leads():
    c = controls.check_controls([_neg("doc_buckets", *GOOD), _neg("window", *GOOD)], "constant")
    assert c["negative"] == "short_only-window"  # the modes' order: window before doc_buckets
    assert list(c["by_mode"]) == ["window", "doc_buckets"] and c["discriminates"] is True


def test_advice_once_and_every_blind_mode_named():
    rows = [_neg("reshape", *GOOD), _neg("window", *BAD), _neg("doc_buckets", *BAD)]
    c = controls.check_controls(rows, "constant")
    assert c["summary"].count("add eval sequences") == 1
    cands = [{**cand("linear-r1", (-0.02, -0.03, -0.01)), "mode": "reshape"}]
    verdict = pick.decide([dict(REF), *cands], "constant", c).verdict
    assert "mode(s) doc_buckets, window left out" in verdict


def test_exposure_fractions_of_a_record():
    def rec(exposure):
        return TrialRecord("t-s0", "finished", exposure=exposure)

    got = paired.exposure_fractions(rec({"edges": [0, 1, 2, 4], "counts": [1, 1, 2, 4]}))
    assert got.tolist() == [0.125, 0.125, 0.25, 0.5]
    assert paired.exposure_fractions(rec(None)) is None
    assert paired.exposure_fractions(rec({"counts": [0, 0]})) is None
    assert paired.exposure_fractions(rec({"counts": [0, 1]})).tolist() == [0, 1]
    m, _ = paired.trial_units(known_record(exposure={"edges": [0, 1], "counts": [1, 3]}))
    assert m["exposure_far"] == 0.75  # l_max 2: the bin from l_max / 2 = 1 on


# ----------------------------------------------------------------- what confirming takes


def test_to_boundary_is_the_distance_to_the_nearer_margin_edge():
    assert pick._to_boundary(-0.003, 0.01) == pytest.approx(0.007)  # to -0.01
    assert pick._to_boundary(0.004, 0.01) == pytest.approx(0.006)  # to +0.01
    assert pick._to_boundary(-0.02, 0.01) == pytest.approx(0.01)  # past -0.01
    assert pick._to_boundary(0.0, 0.01) == pytest.approx(0.01)


def test_what_confirming_a_candidate_takes_in_each_case():
    one = cand("a", (-0.05, -0.08, -0.02), seeds=1)
    assert pick._to_confirm(one, "better", 3, 0.01) == (
        "retrain on at least 2 fresh seeds: one seed measures no seed noise"
    )
    two = cand("a", (-0.05, -0.08, -0.02), seeds=2)
    assert pick._to_confirm(two, "better", None, 0.01) == (
        "better beyond the margin; confirm on fresh seeds"
    )
    assert pick._to_confirm(two, "inconclusive", "unknown", 0.01).startswith(
        "more seeds (the variances behind the interval are not recorded)"
    )
    assert pick._to_confirm(two, "inconclusive", 7, 0.01) == (
        "about 7 seeds would likely settle it (from the measured variances)"
    )
    near = cand("a", (-0.0097, -0.05, 0.03), seeds=2)
    said = pick._to_confirm(near, "inconclusive", None, 0.01)
    assert said.startswith("not within 64 seeds at the measured variances: its difference lies ")
    assert "lies 0.0003 nats from the margin's edge (±0.0100)" in said
    assert said.endswith(
        "so only a much narrower interval settles it (more eval windows and seeds)"
    )


def test_a_candidate_no_seed_count_settles_says_how_far_it_lies_from_the_margin(tmp_path):
    """Through the whole decision: a multi-seed candidate just inside -margin with seed
    noise far wider than its distance to the edge: no number of seeds up to 64 settles
    it, and what confirming it takes names that distance and the margin."""
    sw = smoke_spec(seeds=(0, 1))
    sw = dataclasses.replace(sw, decision=dataclasses.replace(sw.decision, margin=0.02))
    # the same draws twice: the first measures the noise's offset, the second puts the
    # measured difference 0.0001 inside -margin
    fake_records(tmp_path / "a", sw, {"linear-r0.5": 0.0}, seed_noise=0.02)
    off = row(aggregate.aggregate(tmp_path / "a"), "linear-r0.5")["vs_ref"]["far_loss"]["mean"]
    fake_records(tmp_path / "b", sw, {"linear-r0.5": -0.0199 - off}, seed_noise=0.02)
    s = aggregate.aggregate(tmp_path / "b")
    assert row(s, "linear-r0.5")["vs_ref"]["far_loss"]["mean"] == pytest.approx(-0.0199)
    got = {c["schedule"]: c for c in s.candidates}
    said = got["linear-r0.5"]["to_confirm"]
    assert said.startswith("not within 64 seeds at the measured variances")
    assert "lies 0.0001 nats from the margin's edge (±0.0200)" in said


def test_a_judged_comparison_without_variances_has_no_seed_count():
    far = iv(-0.05, -0.08, -0.02)
    judged, settle = pick.judge_comparison(far, 0.95, 0.975, 0.01)
    assert settle == "unknown" and judged["seeds_to_settle"] is None
    assert set(judged) == {"outcome", "interval", "level", "margin", "seeds_to_settle"}
    far["components"] = {
        "seeds": 2,
        "sequences": 40,
        "seed": 1e-4,
        "sequence": 1e-4,
        "residual": 1e-4,
    }
    judged, settle = pick.judge_comparison(far, 0.95, 0.975, 0.01)
    assert judged["seeds_to_settle"] == settle and (settle is None or isinstance(settle, int))


def test_a_control_without_the_references_context_use_is_not_judged_on_shape():
    # own_excess measured and NOT above zero, the reference's context_use missing: the shape
    # leg is unknown (None), not failed
    c = controls.check_controls(
        control_rows(iv(0.05, 0.04, 0.06), None, own=iv(0.0, -0.01, 0.01)), "constant"
    )
    assert c["excess_separated"] is False and c["context_used"] is None
    assert c["shape_separated"] is None and c["sees"] == "level only"


def test_the_sight_line_says_which_shape_leg_failed():
    grows = controls.check_controls(
        control_rows(
            iv(0.05, 0.04, 0.06), None, own=iv(0.03, 0.01, 0.05), use=iv(0.007, -0.006, 0.02)
        ),
        "constant",
    )
    line = controls.sight(grows)
    assert line.startswith(
        "sees level only: the negative control is worse past l_max, its deficit grows past "
        "its own trained length, but the reference's use of context up to l_max is not "
        "established"
    )
    flat = controls.check_controls(
        control_rows(iv(0.05, 0.04, 0.06), None, own=iv(0.0, -0.01, 0.01), use=iv(0.1, 0.08, 0.12)),
        "constant",
    )
    assert "worse past l_max, not because it extrapolates worse" in controls.sight(flat)


def test_each_controls_own_judgement_and_words_are_kept():
    c = controls.check_controls(
        control_rows(iv(0.05, 0.0, 0.1), None, own=iv(0.02, 0.0, 0.04)), "constant"
    )
    (own,) = c["every"]
    assert own["sees"] == "nothing" and c["by_mode"]["reshape"]["sees"] == "nothing"
    assert "constant context_use n/a (not recorded)" in own["summary"]
    told = controls.check_controls(control_rows(iv(0.05, 0.04, 0.06), None), "constant")
    assert told["every"][0]["sees"] == "level only"


def test_the_sight_line_in_full():
    neither = controls.check_controls(
        control_rows(
            iv(0.05, 0.04, 0.06), None, own=iv(0.0, -0.01, 0.01), use=iv(0.007, -0.006, 0.02)
        ),
        "constant",
    )
    assert controls.sight(neither) == (
        "sees level only: the negative control is worse past l_max, not because it "
        "extrapolates worse (short_only own_excess +0.0000 [-0.0100, +0.0100], reference "
        "context_use +0.0070 [-0.0060, +0.0200]: not both > 0 beyond their intervals); any "
        "pick below is on level (far_loss), not on extrapolation. Seeing extrapolation needs "
        "a proxy that uses its context up to l_max: more training tokens or seeds, a larger "
        "model, or long-range data (data.repeat_share)"
    )


def test_an_inconclusive_comparison_that_leans_worse_is_no_candidate():
    rows = [
        cand("up", (0.004, -0.05, 0.058), id_loss=1.99, seeds=2),  # inconclusive, leans worse
        cand("down", (-0.004, -0.058, 0.05), seeds=2),  # inconclusive, leaning better
        dict(REF),
    ]
    d = pick.decide(rows, "constant", SEPARATED, margin=0.01)
    assert next(r for r in rows if r["schedule"] == "up")["pareto"]  # on the front: the
    assert [c["schedule"] for c in d.candidates] == ["down"]  # sign alone keeps it out


def test_a_picks_rationale_states_the_id_loss_limit():
    rows = [cand("good", (-0.2, -0.25, -0.15), id_loss=2.001), dict(REF)]
    d = pick.decide(rows, "constant", SEPARATED, margin=0.01)
    (p,) = d.picks
    assert "(limit +0.01); 2 seeds" in p["rationale"]
    assert d.margin_source == "decision.margin" and d.comparisons == 1
    assert d.correction == "1 comparison(s) with constant, Bonferroni: each interval at 95%"
