"""Studies: the study file (arms over a base spec, best-ramp placeholders), its refusals,
the findings on records with known differences, the transfer correlation and its
interval's coverage (the smoke study through the command line:
tests/e2e/test_study_e2e.py)."""

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT, fake_records, run_sweep, smoke_spec

from sweep import cli
from sweep.analysis import arms
from sweep.analysis.findings import compute
from sweep.analysis.records import TrialRecord
from sweep.analysis.transfer import spearman_transfer
from sweep.config import study_spec
from sweep.config.spec import load as load_spec
from sweep.report.study_report import write_study
from sweep.run import study

SMOKE = ROOT / "configs" / "study-smoke.yaml"


def smoke_raw() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def test_the_study_files_parse_and_arms_merge_over_the_base():
    for path in (ROOT / "configs" / "study-gpu.yaml", SMOKE):
        st = study_spec.load(path)
        specs = {a: st.arm_spec(a, _standins(st)) for a in st.arm_names}
        assert set(specs) == {"alibi", "window", "rope", "wide"}
        main = specs["alibi"]
        assert specs["wide"].model.mup_base_width == main.model.mup_base_width
    specs = {
        a: study_spec.load(SMOKE).arm_spec(a, _standins(study_spec.load(SMOKE))) for a in specs
    }
    main = specs["alibi"]
    assert specs["rope"].model.position == "rope" and main.model.position == "alibi"
    assert specs["wide"].model.d_model == 2 * main.model.d_model
    assert specs["wide"].model.mup_base_width == main.model.mup_base_width
    assert specs["window"].schedules.modes == ("window",)
    # what the arms do not change is the base's
    assert specs["rope"].eval == main.eval and specs["wide"].data == main.data
    assert {s.name for s in specs.values()} == {f"study-smoke-{a}" for a in specs}
    # the CPU study: the main arm on the calibrated regime (calibrate's rung 3: 8x its base
    # tokens), with both short-only controls, at E = 16 x l_max and 3 seeds
    cpu = study_spec.load(ROOT / "configs" / "study.yaml")
    assert cpu.arm_names == ["alibi"]
    full = cpu.arm_spec("alibi", [])
    assert full.eval.multiple == 16 and len(full.seeds) >= 3
    assert full.deepspeed.precision == "bf16"
    cal = load_spec(ROOT / "configs" / "calibrate.yaml")
    assert full.budget.tokens == cal.budget.tokens * cal.calibrate.token_factor**3
    assert full.model == cal.model and full.data == cal.data
    labels = {t.schedule.label for t in full.trials()}
    assert {"constant", "two_stage", "short_only", "short_only-ls64"} <= labels


def _standins(st: study_spec.Study) -> list[dict]:
    main = st.arm_spec(st.main, [])
    return [study_spec.ramp_entry(main, r) for r in study_spec.ramp_labels(main)]


def test_a_ramp_entry_reproduces_its_label_in_another_arm():
    raw = smoke_raw()
    raw["arms"]["alibi"]["schedules"]["shapes"] = ["constant", "two_stage", "root", "linear"]
    raw["arms"]["alibi"]["schedules"]["degree"] = [2.0, 3.0]
    st = study_spec.parse_study(raw)
    main = st.arm_spec("alibi", [])
    labels = study_spec.ramp_labels(main)
    assert "root-d3-r0.5" in labels and "linear-r1" in labels
    for label in labels:
        entry = study_spec.ramp_entry(main, label)
        rope = st.arm_spec("rope", [entry])
        assert label in {t.schedule.label for t in rope.trials()}
        other = labels[1] if label == labels[0] else labels[0]
        wide = st.arm_spec("wide", [entry, study_spec.ramp_entry(main, other)])
        assert label in {t.schedule.label for t in wide.trials()}


BAD = [
    ({"arms": {}}, "arms"),
    ({"study": "a b"}, "study"),
    ({"extra": 1}, "extra"),
    ({"arms": {"alibi": {"name": "x", "schedules": {}}}}, "arms.alibi.name"),
    ({"findings": {"rope_arm": "nope"}}, "findings.rope_arm"),
    ({"findings": {"btlm": "three_stage"}}, "findings.btlm"),
    ({"findings": {"colour": "red"}}, "findings.colour"),
]


@pytest.mark.parametrize("change,field", BAD)
def test_bad_study_files_exit_2_naming_the_field(tmp_path, capsys, change, field):
    raw = smoke_raw()
    for k, v in change.items():
        if k == "arms" and v:
            raw["arms"]["alibi"].update(v["alibi"])
        elif k == "findings":
            raw["findings"].update(v)
        else:
            raw[k] = v
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"spec error: {field}=" in err[0], err
    assert not (tmp_path / "r").exists()


def test_placeholders_are_refused_in_the_main_arm_and_beyond_its_ramps(tmp_path, capsys):
    raw = smoke_raw()
    raw["arms"]["rope"]["schedules"]["shapes"] = ["constant", "best_ramp:3"]
    with pytest.raises(study_spec.SpecError, match=r"arms\.rope\.schedules\.shapes.*2 increasing"):
        study_spec.parse_study(raw)
    raw = smoke_raw()
    raw["arms"]["alibi"]["schedules"]["shapes"].append("best_ramp:1")
    with pytest.raises(study_spec.SpecError, match="main"):
        study_spec.parse_study(raw)
    raw = smoke_raw()
    raw["arms"]["wide"]["model"]["d_model"] = -64  # an arm's own spec error, prefixed
    with pytest.raises(study_spec.SpecError, match=r"arms\.wide\.model\.d_model=-64"):
        study_spec.parse_study(raw)


# ----------------------------------------------------------------------------- findings

# Records as a study's arms hold them: 24 windows shared by every arm, each arm its own
# noise (seeded by its spec's name), no far deficit for a control unless named, and by
# default no shape metrics (records from before them); ``own_rise`` adds them.
ARM_RECORDS = dict(
    n_seq=24,
    own_noise=0.01,
    seed_noise=0.003,
    gain_noise=0.002,
    control_far=0.0,
    own_rise=None,
    noise_by_name=True,
    flops=(1e9, 1e9),
    wall_s=2.0,
)


MAIN_FAR = {"short_only-ls16": 0.2, "two_stage": 0.05, "linear-r0.5": -0.03, "linear-r1": -0.01}


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("study") / "study-smoke"
    st = study_spec.load(SMOKE)
    study.prepare(st, d, overwrite=False)
    fake_records(d / "alibi", st.arm_spec("alibi", []), MAIN_FAR, **ARM_RECORDS)
    specs = arms.resolved_specs(st, d)
    assert set(specs) == {"alibi", "window", "rope", "wide"}
    # rotary: 0.5 nats worse past l_max, 0.01 better within it
    rope = {lab: MAIN_FAR.get(lab, 0.0) + 0.5 for lab in ("constant", "two_stage", "linear-r0.5")}
    fake_records(
        d / "rope", specs["rope"], rope, id_shift={lab: -0.01 for lab in rope}, **ARM_RECORDS
    )
    fake_records(d / "window", specs["window"], {"linear-r0.5-window": -0.06}, **ARM_RECORDS)
    # the wide arm: every gain 1.5x, the same order
    wide = {k: 1.5 * v for k, v in MAIN_FAR.items()}
    fake_records(d / "wide", specs["wide"], wide, **ARM_RECORDS)
    (d / study_spec.RUNS_FILE).write_text(json.dumps({"started": 0, "wall_s": 600.0}) + "\n")
    return d


def _mean(d: dict, key: str = "far_loss") -> float:
    return d[key]["mean"]


def test_findings_recover_known_differences(fake_study):
    found = compute(study_spec.load_dir(fake_study), fake_study)
    assert found["best_ramps"] == ["linear-r0.5", "linear-r1"]
    a = found["btlm"]
    assert _mean(a["negative_vs_reference"]) == pytest.approx(0.2, abs=0.01)
    assert _mean(a["negative_vs_btlm"]) == pytest.approx(0.15, abs=0.01)
    assert _mean(a["btlm_vs_reference"]) == pytest.approx(0.05, abs=0.01)
    assert a["negative_vs_reference"]["far_loss"]["lo"] > 0
    assert a["controls"]["discriminates"] is True
    for band in found["bands"]:  # the shift is the same in every far band
        assert _mean(a["negative_vs_reference"], band) == pytest.approx(0.2, abs=0.01)
    assert abs(_mean(a["negative_vs_reference"], "id_loss")) < 0.01
    # (b) rope minus alibi, paired across arms on the same seeds and windows
    assert set(found["rope"]) == {"constant", "two_stage", "linear-r0.5"}
    for d in found["rope"].values():
        assert _mean(d) == pytest.approx(0.5, abs=0.01) and d["far_loss"]["lo"] > 0
        assert _mean(d, "id_loss") == pytest.approx(-0.01, abs=0.005)
    # (c) ramps against two stages, in the main arm, at width x2, in window mode
    c = found["ramp_vs_btlm"]
    assert c["best"] == "linear-r0.5"
    assert _mean(c["main"]["linear-r0.5"]) == pytest.approx(-0.08, abs=0.01)
    assert _mean(c["wide"]["linear-r0.5"]) == pytest.approx(-0.12, abs=0.01)
    assert c["window"]["label"] == "linear-r0.5-window"
    assert _mean(c["window"]["vs_btlm"]) == pytest.approx(-0.11, abs=0.01)
    assert _mean(c["window"]["vs_reshape"]) == pytest.approx(-0.03, abs=0.01)
    # transfer: same order at both widths; the gains are schedule minus reference
    # over the candidates only: the control's 0.2-nat gap would rank-correlate anything
    t = found["transfer"]
    assert t["labels"] == ["linear-r0.5", "linear-r1", "two_stage"]
    assert t["rho"] == pytest.approx(1.0)
    assert t["gain_a"]["two_stage"] == pytest.approx(0.05, abs=0.01)
    assert t["gain_b"]["two_stage"] == pytest.approx(0.075, abs=0.01)
    assert t["best_a"] == t["best_b"] == "linear-r0.5"
    # the fake arms draw their own noise: same trial spec, different curves
    assert found["repeats"] == [
        {"label": "constant", "arms": ["alibi", "window"], "pairs": 2, "identical": 0}
    ]
    assert found["cost"]["wall_s"] == 600.0
    assert found["cost"]["arms"]["alibi"]["trials"] == 10


def test_the_document_states_signs_from_intervals_and_rebuilds_identically(fake_study, tmp_path):
    md = write_study(fake_study, tmp_path / "docs")
    text = md.read_text()
    m = re.search(r"`short_only-ls16` - `constant`, far_loss: ([+-][0-9.]+) \[", text)
    assert m and float(m.group(1)) == pytest.approx(0.2, abs=0.01)
    # worse past l_max, but these records carry no shape metrics: a reproduction on level
    assert "reproduced on level only at this scale" in text and "NOT reproduced" not in text
    assert "(a) BTLM's finding reproduces on level only here" in text
    assert "(the sweep sees level only)" in text
    # (c): four outcomes at the margin (half the control's gap), Bonferroni over 2 ramps
    m = re.search(
        r"at the margin ±(0\.\d+) nats .*?2 comparison\(s\) with two_stage, "
        r"Bonferroni: each interval at 97\.5%\): `linear-r0\.5` (-0\.\d+) \[",
        text,
    )
    assert m and float(m.group(1)) == pytest.approx(0.1, abs=0.01)
    assert float(m.group(2)) == pytest.approx(-0.08, abs=0.01)
    assert "at 97.5%: **inconclusive** (about" in text
    assert "(the best, `linear-r0.5`, chosen on these trials)" in text
    # every schedule on an absolute scale; every control, including the wide arm's
    assert re.search(r"\| `short_only-ls16` \| control \(trained ≤ 16\) \| 3\.0", text)
    assert text.count("short_only-ls16 - constant: far_loss") >= 3  # alibi, wide, (a)
    assert "- `rope` arm: no negative control in this arm." in text
    assert "Past l_max rotary is worse (`constant`)" in text
    assert "reproduced at this scale: rotary positions are worse" in text
    m = re.search(r"deficit averages \+0\.(\d+) nats up to 2 x l_max and \+0\.(\d+)", text)
    assert m and abs(int(m.group(1)) - int(m.group(2))) <= 10  # a flat +0.5: no growth
    assert "is better than two stages in the main arm" in text
    assert "**the same**" in text
    for fig in ("bands", "transfer"):
        png = tmp_path / "docs" / "study" / f"{fig}.png"
        assert png.is_file() and 0 < png.stat().st_size <= 300_000
        assert f"(study/{fig}.png)" in text
    # records without position bins (from before the shape metrics) draw no curves
    assert not (tmp_path / "docs" / "study" / "positions.png").exists()
    again = write_study(fake_study, tmp_path / "again")
    assert again.read_text() == text


def test_a_study_that_sees_extrapolation_shows_curves_with_bands(tmp_path):
    """Records as trials write them today: the control's loss rises 0.1 nats from its own
    length (16) to l_max and 0.2 past l_max; every model gains 0.05 from context."""
    d = tmp_path / "study-smoke"
    st = study_spec.load(SMOKE)
    study.prepare(st, d, overwrite=False)
    fake_records(d / "alibi", st.arm_spec("alibi", []), MAIN_FAR, **ARM_RECORDS | {"own_rise": 0.1})
    found = compute(st, d)
    c = found["btlm"]["controls"]
    assert c["sees"] == "extrapolation" and c["excess_key"] == "own_excess"
    assert c["own_excess"]["mean"] == pytest.approx(0.1, abs=0.01)
    curves = found["curves"]
    assert set(curves) == {"constant", "two_stage", "linear-r0.5", "linear-r1", "short_only-ls16"}
    ref, neg = curves["constant"], curves["short_only-ls16"]
    edges = ref["edges"]
    assert edges[-1] == 256 and edges[-2] == 128  # the last bin is (E/2, E], not a position
    v = neg["vs_ref"]
    for j, hi in enumerate(edges):
        assert ref["lo"][j] < ref["mean"][j] < ref["hi"][j]
        assert ref["mean"][j] == pytest.approx(3.0, abs=0.05)  # absolute, not a difference
        assert v["lo"][j] < v["mean"][j] < v["hi"][j]
        # the control's rise past its own length (16) and past l_max (64), each bin's band
        # narrower than the effect and excluding zero; below 16 the two models agree
        want = 0.2 if hi > 64 else 0.1 if hi > 16 else 0.0
        assert v["mean"][j] == pytest.approx(want, abs=0.01)
        if want:
            assert v["lo"][j] > want / 2 and v["hi"][j] - v["lo"][j] < 0.05
    rows = {r["schedule"]: r for r in found["schedules"]["alibi"]}
    assert rows["short_only-ls16"]["far_loss"]["mean"] == pytest.approx(3.2, abs=0.05)
    assert rows["short_only-ls16"]["own_length"] == 16
    text = write_study(d, tmp_path / "docs").read_text()
    assert "(a) BTLM's finding reproduces here" in text and "level only" not in text
    # its deficit rises 0.1 from its own length to l_max, then another 0.1 past l_max
    assert re.search(r"Past l_max its deficit keeps growing: far_excess \+0\.(09|10)", text)
    assert (tmp_path / "docs" / "study" / "positions.png").stat().st_size > 0
    assert "(study/positions.png)" in text


def test_an_unseparated_control_says_not_reproduced(tmp_path):
    d = tmp_path / "study-smoke"
    st = study_spec.load(SMOKE)
    study.prepare(st, d, overwrite=False)
    fake_records(d / "alibi", st.arm_spec("alibi", []), {"linear-r0.5": -0.03}, **ARM_RECORDS)
    text = write_study(d, tmp_path / "docs").read_text()
    assert "NOT reproduced at this scale" in text
    assert "not told apart" in text


# ----------------------------------------------------------------------------- transfer


def _sim(rng, ga, gb, seeds=3, docs=40, seed_sd=0.005, doc_sd=0.02, n_boot=400):
    def mats(g):
        ref = 3 + doc_sd * rng.standard_normal(docs) + doc_sd * rng.standard_normal((seeds, docs))
        own = {
            f"s{k}": ref
            + gk
            + seed_sd * rng.standard_normal((seeds, 1))
            + 0.3 * doc_sd * rng.standard_normal((seeds, docs))
            for k, gk in enumerate(g)
        }
        return own, ref

    a, ra = mats(ga)
    b, rb = mats(gb)
    return spearman_transfer(a, ra, b, rb, n_boot=n_boot, seed=int(rng.integers(2**31)))


def test_transfer_correlation_reads_order_not_level():
    rng = np.random.default_rng(0)
    t = _sim(rng, [0.0, 0.01, 0.02, 0.03], [0.06, 0.04, 0.02, 0.0], seed_sd=0.0005)
    assert t["rho"] == pytest.approx(-1.0) and t["hi"] < 0
    assert t["best_a"] == "s0" and t["best_b"] == "s3"
    two = spearman_transfer({"a": np.zeros((2, 3))}, np.zeros((2, 3)), {}, np.zeros((2, 3)))
    assert two["rho"] is None


def test_row_spearman_is_scipys_spearman_ties_included():
    from scipy import stats

    from sweep.analysis.transfer import _row_spearman

    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (50, 5)).astype(float)  # many ties
    y = rng.standard_normal((50, 5))
    x, y = x[np.ptp(x, axis=1) > 0], y[np.ptp(x, axis=1) > 0]
    want = [stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(_row_spearman(x, y), want, atol=1e-12)


@pytest.mark.parametrize(
    "truth,gb", [(0.8, [0.0, 0.02, 0.01, 0.03]), (1.0, [0.0, 0.01, 0.02, 0.03])]
)
def test_transfer_interval_coverage(truth, gb):
    """Nominal 95%: how often the interval holds the true correlation of the true gains
    (0.8: one pair swapped between widths; 1.0: the same order) with training noise of
    half the gaps between schedules, 3 seeds, 40 documents. Measured 0.997 for both at 300
    repeats; at seed noise equal to the gaps it under-covers: 0.92 (true 0.8) and 0.88
    (true 1.0, at the bound): a percentile interval of a bounded, discrete statistic from
    3 seeds (docs/design.md, Studies)."""
    rng = np.random.default_rng(1)
    hits = []
    for _ in range(300):
        t = _sim(rng, [0.0, 0.01, 0.02, 0.03], gb, n_boot=1000)
        hits.append(t["lo"] - 1e-9 <= truth <= t["hi"] + 1e-9)
    assert np.mean(hits) >= 0.93


# ----------------------------------------------------------------------------- dry run


def test_the_gpu_study_validates_by_dry_run(capsys):
    # here (2 CPUs, no GPU) the dry run refuses what the run would refuse, in one line
    assert cli.main(["run", str(ROOT / "configs" / "study-gpu.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spec error: resources.") and "\n" not in err
    # its plan, arm by arm, lists without the machine's checks
    study.dry_run(study_spec.load(ROOT / "configs" / "study-gpu.yaml"))
    out = capsys.readouterr().out
    for arm in ("alibi", "window", "rope", "wide"):
        assert f"== arm {arm}: study-gpu-{arm}" in out
    assert "PFLOPs of training" in out and "nothing started" in out
    st = study_spec.load(ROOT / "configs" / "study-gpu.yaml")
    main = st.arm_spec("alibi", [])
    assert main.schedules.l_max >= 1024 and main.data.tokenizer == "bpe"
    assert main.eval.length(main.schedules.l_max) == 16 * main.schedules.l_max


def test_transfer_edge_cases_and_the_fields_it_returns():
    z = np.zeros((2, 3))
    assert spearman_transfer({"a": z, "b": z}, z, {"a": z, "b": z}, z) == {
        "labels": ["a", "b"],
        "rho": None,
        "lo": None,
        "hi": None,
        "why": "under 3 schedules",
    }
    rng = np.random.default_rng(5)
    a = {k: rng.standard_normal((2, 6)) + g for k, g in (("x", 0.0), ("y", 1.0), ("z", 2.0))}
    b = {**{k: v + 0.5 for k, v in a.items()}, "only_b": z}  # a label on one side only
    t = spearman_transfer(a, np.zeros((2, 6)), b, np.zeros((2, 6)), n_boot=200)
    assert t["labels"] == ["x", "y", "z"] and t["rho"] == pytest.approx(1.0)  # 3 is enough
    assert t["boot"] == 200 and "200 resamples" in t["method"]
    assert t["best_a"] == t["best_b"] == "x"
    # a width whose schedules never differ has no ranks to correlate: no interval
    flat = {k: np.zeros((2, 6)) for k in a}
    t = spearman_transfer(a, np.zeros((2, 6)), flat, np.zeros((2, 6)), n_boot=50)
    assert t["boot"] == 0 and np.isnan(t["lo"]) and np.isnan(t["hi"])


def test_transfer_interval_is_the_percentile_interval_of_the_resamples(monkeypatch):
    """Resample b keeps every seed and only document b: the resampled rhos are then the
    per-document rhos, so the interval must be their 2.5 and 97.5 percentiles."""
    from scipy import stats

    from sweep.analysis import transfer

    rng = np.random.default_rng(7)
    n_d = 40
    a = {k: rng.standard_normal((3, n_d)) for k in "pqrs"}
    b = {k: rng.standard_normal((3, n_d)) for k in "pqrs"}
    zero = np.zeros((3, n_d))

    def weights(_rng, n_boot, n):
        if n == 3:  # seeds: all of them, equally
            return np.full((n_boot, n), 1 / 3)
        return np.eye(n)[np.arange(n_boot) % n]  # documents: one each

    monkeypatch.setattr(transfer, "_draw_weights", weights)
    t = spearman_transfer(a, zero, b, zero, n_boot=n_d)
    per_doc = []
    for d in range(n_d):
        xa = [a[k][:, d].mean() for k in "pqrs"]
        xb = [b[k][:, d].mean() for k in "pqrs"]
        per_doc.append(stats.spearmanr(xa, xb).statistic)
    lo, hi = np.quantile(per_doc, [0.025, 0.975])
    assert (t["lo"], t["hi"]) == pytest.approx((lo, hi))
    t50 = spearman_transfer(a, zero, b, zero, level=0.5, n_boot=n_d)
    assert (t50["lo"], t50["hi"]) == pytest.approx(tuple(np.quantile(per_doc, [0.25, 0.75])))


def test_resampling_weights_draw_every_unit_with_replacement():
    from sweep.analysis.transfer import _draw_weights

    w = _draw_weights(np.random.default_rng(0), 4000, 5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert np.allclose(w * 5, np.round(w * 5))  # whole draws out of 5
    np.testing.assert_allclose(w.mean(axis=0), 0.2, atol=0.01)  # unit 0 drawn as often
    assert (w == 0).any() and (w >= 0.4).any()  # with replacement: some left out, some twice


def test_a_difference_is_read_from_its_interval_alone():
    from sweep.report.study_words import reading as _sign

    assert _sign(None) == _sign({}) == _sign({"mean": None}) == "not measured"
    assert _sign({"mean": 0.1, "lo": None, "hi": None}) == "no interval"
    assert _sign({"mean": 0.1, "lo": 0.0, "hi": 0.2}) == "not told apart"  # touches zero
    assert _sign({"mean": -0.1, "lo": -0.2, "hi": 0.0}) == "not told apart"
    assert _sign({"mean": 0.1, "lo": 1e-9, "hi": 0.2}) == "worse"
    assert _sign({"mean": -0.1, "lo": -0.2, "hi": -1e-9}) == "better"


def test_transfer_is_seeded_and_skips_resamples_without_two_ranks():
    rng = np.random.default_rng(9)
    gaps = (("x", 0.3), ("y", 0.1), ("z", 0.2), ("u", 0.4), ("v", 0.5), ("w", 0.6))
    a = {k: rng.standard_normal((3, 8)) + g for k, g in gaps}
    b = {k: v + rng.standard_normal((3, 8)) for k, v in a.items()}
    zero = np.zeros((3, 8))
    one = spearman_transfer(a, zero, b, zero, n_boot=300, seed=4)
    assert one == spearman_transfer(a, zero, b, zero, n_boot=300, seed=4)  # reproducible
    assert one != spearman_transfer(a, zero, b, zero, n_boot=300, seed=5)  # and seeded
    assert one["best_a"] == "y"  # the lowest gain, not the first label
    # every schedule the same within each document: no resample has two ranks at a
    # width, though the documents differ from each other
    same = rng.standard_normal((3, 8))
    for flat_a in (True, False):
        fa = {k: same for k in a} if flat_a else a
        fb = b if flat_a else {k: same for k in a}
        t = spearman_transfer(fa, zero, fb, zero, n_boot=100)
        assert t["boot"] == 0 and np.isnan(t["lo"])


# ----------------------------------------------------------------------------- (c) and curves


def _trials(label: str, shift: float, seeds=(0, 1, 2), docs=20, bins=None, seed_sd=0.01):
    """Constructed finished trials of one schedule: far_loss per document is 3 + shift +
    a seed offset + document noise (the same documents, the same draws for every label
    apart from ``shift``); ``bins``: (edges, per-bin shift) for position bins."""
    from sweep.analysis.paired import Trial

    rng = np.random.default_rng(7)
    doc = 0.05 * rng.standard_normal(docs)
    out = []
    for s in seeds:
        own = np.random.default_rng([s, zlib.crc32(label.encode())])
        far = 3 + shift + seed_sd * own.standard_normal() + doc + 0.01 * own.standard_normal(docs)
        ids = tuple(f"d{i}" for i in range(docs))
        rec = TrialRecord(f"{label}-s{s}", "finished", schedule=label, seed=s)
        t = Trial(rec)
        t.units = {"far_loss": (ids, far)}
        if bins is not None:
            edges, per_bin = bins
            t.bins = (edges, ids, far[:, None] - 3 + np.asarray(per_bin)[None, :] + 2.0)
        out.append(t)
    return out


def test_ramps_against_two_stages_are_four_outcomes_at_a_family_wise_level():
    from sweep.analysis import decision
    from sweep.analysis.findings import ramps_vs_btlm

    by = {
        "two_stage": _trials("two_stage", 0.0),
        "fast": _trials("fast", -0.4),  # far beyond the margin: better
        "same": _trials("same", 0.0005, seed_sd=0.0),  # well inside it: equivalent
        "worse": _trials("worse", 0.4),
    }
    out = ramps_vs_btlm(by, ["fast", "absent", "same", "worse"], "two_stage", 0.1)
    assert out["comparisons"] == 3  # "absent" has no trials: not compared
    assert out["level"] == pytest.approx(1 - 0.05 / 4)  # Bonferroni over the 4 ramps asked
    assert out["margin"] == 0.1
    assert out["correction"] == (
        "3 comparison(s) with two_stage, Bonferroni: each interval at 98.75%"
    )
    got = out["by_ramp"]
    assert set(got) == {"fast", "same", "worse"}
    assert [got[k]["outcome"] for k in ("fast", "same", "worse")] == [
        "better",
        "equivalent",
        "worse",
    ]
    assert got["fast"]["mean"] == pytest.approx(-0.4, abs=0.02)
    assert got["worse"]["mean"] == pytest.approx(0.4, abs=0.02)
    # the interval is the 95% one widened to the family's level, around the same mean
    from sweep.analysis.intervals import paired_interval
    from sweep.analysis.paired import paired_matrix

    d = paired_matrix(by["fast"], by["two_stage"], "far_loss")
    iv95 = paired_interval(d)
    lo, hi = got["fast"]["interval"]
    assert lo < iv95.lo and hi > iv95.hi and (lo + hi) / 2 == pytest.approx(iv95.mean)
    assert (lo, hi) == pytest.approx(decision.rescale(iv95.to_dict(), 0.95, out["level"]))
    assert got["fast"]["level"] == out["level"] and got["fast"]["margin"] == 0.1
    # nothing to compare against, or no margin: no comparisons at all
    assert ramps_vs_btlm(by, ["fast"], None, 0.05) == {}
    assert ramps_vs_btlm(by, ["fast"], "missing", 0.05) == {}
    assert ramps_vs_btlm(by, ["fast"], "two_stage", None) == {}
    one = ramps_vs_btlm(by, ["same"], "two_stage", 0.05)
    assert one["level"] == pytest.approx(0.95) and one["comparisons"] == 1


def test_an_inconclusive_ramp_says_how_many_seeds_would_settle_it():
    from sweep.analysis.findings import ramps_vs_btlm

    by = {"two_stage": _trials("two_stage", 0.0), "r": _trials("r", -0.1, seed_sd=0.08)}
    j = ramps_vs_btlm(by, ["r"], "two_stage", 0.05)["by_ramp"]["r"]
    assert j["outcome"] == "inconclusive"
    assert isinstance(j["seeds_to_settle"], int) and j["seeds_to_settle"] > 3


def test_an_undefined_comparison_is_skipped_and_the_next_ramp_still_judged():
    from sweep.analysis.findings import ramps_vs_btlm

    broken = _trials("broken", -0.1)
    for t in broken:  # a non-finite far_loss: the paired interval is undefined
        ids, far = t.units["far_loss"]
        t.units["far_loss"] = (ids, np.where(np.arange(len(far)) == 0, np.nan, far))
    by = {"two_stage": _trials("two_stage", 0.0), "broken": broken, "fast": _trials("f", -0.4)}
    out = ramps_vs_btlm(by, ["broken", "fast"], "two_stage", 0.1)
    assert set(out["by_ramp"]) == {"fast"} and out["comparisons"] == 1
    assert out["by_ramp"]["fast"]["outcome"] == "better"


def test_position_curves_are_absolute_with_bands_and_paired_against_the_reference():
    from sweep.analysis.findings import _bin_matrix, position_curves

    edges = [8, 16, 32, 64]
    by = {
        "constant": _trials("constant", 0.0, bins=(edges, [0.3, 0.2, 0.1, 0.1]), seed_sd=0.002),
        "short": _trials("short", 0.0, bins=(edges, [0.3, 0.2, 0.2, 0.4]), seed_sd=0.002),
        "nobins": _trials("nobins", 0.0),
    }
    curves = position_curves(by, "constant")
    assert set(curves) == {"constant", "short"}  # a schedule without bins draws nothing
    ref, short = curves["constant"], curves["short"]
    assert ref["edges"] == edges and ref["seeds"] == 3 and "vs_ref" not in ref
    assert ref["mean"] == pytest.approx([2.3, 2.2, 2.1, 2.1], abs=0.03)
    for c in (ref, short):
        assert all(lo < m < hi for lo, m, hi in zip(c["lo"], c["mean"], c["hi"]))
    v = short["vs_ref"]
    assert v["mean"] == pytest.approx([0.0, 0.0, 0.1, 0.3], abs=0.01)
    assert v["lo"][3] > 0.25 and v["hi"][0] > 0 > v["lo"][0]
    # paired: the shared document noise cancels, so the band of the difference is far
    # narrower than the band of either absolute curve
    assert v["hi"][3] - v["lo"][3] < ref["hi"][3] - ref["lo"][3]
    # bins on other edges, or other documents, are not paired
    other = {**by, "short": _trials("short", 0.0, bins=([8, 16, 64], [0.3, 0.2, 0.3]))}
    assert "vs_ref" not in position_curves(other, "constant")["short"]
    assert _bin_matrix([]) is None
    mixed = by["constant"][:1] + _trials("constant", 0.0, seeds=(1,), bins=([8, 64], [0, 0]))
    assert _bin_matrix(mixed) is None
    got = _bin_matrix(by["short"])
    assert got is not None and got[0] == edges and sorted(got[1]) == [0, 1, 2]
    assert _bin_matrix(by["short"] + by["nobins"][:1]) is None
    # the reference's seeds pair with the schedule's common seeds only
    part = {"constant": by["constant"], "short": by["short"][:2]}
    assert position_curves(part, "constant")["short"]["seeds"] == 2


def test_a_study_that_sees_level_only_says_so_before_its_findings(tmp_path):
    """The control is worse past l_max by the same amount everywhere (no rise past its own
    length): level only, said plainly, with what more seeds would or would not do."""
    d = tmp_path / "study-smoke"
    st = study_spec.load(SMOKE)
    study.prepare(st, d, overwrite=False)
    fake_records(d / "alibi", st.arm_spec("alibi", []), MAIN_FAR, **ARM_RECORDS | {"own_rise": 0.0})
    text = write_study(d, tmp_path / "docs").read_text()
    assert text.index("## What this proxy can see") < text.index("## (a)")
    section = text.split("## What this proxy can see")[1].split("\n## ")[0]
    assert "**This study sees level only.**" in section
    assert re.search(
        r"the reference's context_use \+0\.0[45]\d+ \[\+[0-9.]+, [^]]+\] \(clears zero\)", section
    )
    assert "own_excess" in section and "no number of seeds likely clears zero" in section
    assert "a larger proxy is needed" in section
    assert "every finding below is on level, not on extrapolation" in section
    assert "configs/study-gpu.yaml" in section


def test_the_schedule_table_carries_each_rows_absolute_and_paired_numbers(tmp_path):
    from sweep.analysis.aggregate import aggregate
    from sweep.analysis.findings import schedule_table

    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    s = aggregate(tmp_path)
    table = schedule_table(s)
    assert [r["schedule"] for r in table] == [r["schedule"] for r in s.schedules]
    for got, row in zip(table, s.schedules):
        assert got["role"] == row["role"] and got["seeds"] == row["seeds"] == 2
        assert got["own_length"] == row.get("own_length")
        for k in ("id_loss", "far_loss", "context_use"):
            assert got[k] == row[f"{k}_ci"] and got[k]["lo"] < got[k]["mean"] < got[k]["hi"]
        assert got["far_vs_ref"] == (row.get("vs_ref") or {}).get("far_loss")
        assert got["far_excess"] == row.get("far_excess")
        assert got["own_excess"] == row.get("own_excess")
        assert got["decision"] == (row.get("decision") or {}).get("outcome")
    by = {r["schedule"]: r for r in table}
    assert by["constant"]["far_vs_ref"] is None and by["constant"]["role"] == "reference"
    assert by["linear-r0.5"]["far_vs_ref"]["mean"] == pytest.approx(-0.1, abs=0.02)
    assert by["linear-r0.5"]["decision"] in ("better", "inconclusive")
    assert by["short_only"]["own_length"] == 16 and by["short_only"]["own_excess"]["mean"] > 0
    assert by["short_only"]["far_loss"]["mean"] == pytest.approx(3.1, abs=0.03)


def test_own_rise_needs_the_bins_at_the_own_length():
    from sweep.analysis.paired import Trial, own_rise_units

    t = Trial(TrialRecord("x-s0", "finished", seed=0))
    t.bins = ([8, 64], ("d0", "d1"), np.array([[3.0, 3.1], [3.0, 3.2]]))
    assert own_rise_units(16, 64)(t) is None  # no edge at 16: cannot be formed
    t.bins = ([8, 16, 64], ("d0", "d1"), np.array([[3.0, 3.0, 3.1], [3.0, 3.0, 3.3]]))
    docs, rise = own_rise_units(16, 64)(t)
    assert docs == ("d0", "d1") and rise.tolist() == pytest.approx([0.1, 0.3])
    t.bins = None
    assert own_rise_units(16, 64)(t) is None


def test_a_control_flat_past_l_max_is_said_to_rise_only_before_it():
    from sweep.report.study_findings import _past_l_max

    flat = {"schedules": {"a": [{"schedule": "n", "far_excess": iv_dict(0.0003, -0.0117, 0.0122)}]}}
    said = _past_l_max(flat, "n")
    assert said.startswith(" Past l_max its deficit does not grow: far_excess +0.0003 [-0.0117")
    assert "between its own trained length and l_max" in said
    assert _past_l_max(flat, "another") == ""


def iv_dict(mean, lo, hi):
    return {"mean": mean, "lo": lo, "hi": hi}


def test_the_short_gpu_study_validates_by_dry_run(tmp_path, capsys):
    """configs/study-gpu-short.yaml: refused here for its GPUs, in one line; with this
    machine's resources in their place, the run's own checks pass it (the held-out
    windows of E + 1 BPE tokens, the plan of its 12 trials)."""
    path = ROOT / "configs" / "study-gpu-short.yaml"
    assert cli.main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spec error: resources.") and "\n" not in err
    st = study_spec.load(path)
    raw = st.arm_raw("alibi", [])
    assert raw["resources"]["gpus_per_worker"] == 0.25
    raw["resources"] = {"workers_per_trial": 1, "cpus_per_worker": 1, "gpus_per_worker": 0,
                        "max_concurrent_trials": 1}  # fmt: skip
    cpu = tmp_path / "short.yaml"
    cpu.write_text(yaml.safe_dump(raw))
    # in a process of its own: the plan's printer holds the stdout of its import time
    r = run_sweep("run", str(cpu), "--dry-run", "--results", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "evaluating on 128 windows of E+1 = 8193 tokens" in out
    assert "12 trials" in out and "nothing started" in out
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("record.json"))


def test_a_ramp_below_two_stages_but_inside_the_margin_is_read_as_equivalent_not_better():
    """An interval that excludes zero and lies inside ±margin: a real difference too small
    to matter at the margin; the reading never says "better" on its own."""
    from sweep.report.study_findings import _ramp_against_two_stages

    st = study_spec.load(SMOKE)
    far = {"mean": -0.0101, "lo": -0.0164, "hi": -0.0037}
    judged = {"mean": -0.0101, "interval": [-0.0164, -0.0037], "level": 0.95,
              "outcome": "equivalent"}  # fmt: skip
    decided = {"margin": 0.0273, "correction": "1 comparison(s)", "by_ramp": {"linear-r1": judged}}
    found = {
        "ramp_vs_btlm": {
            "best": "linear-r1",
            "main": {"linear-r1": {"far_loss": far, "id_loss": far}},
            "decided": decided,
            "margin_source": "half the control's gap",
        }
    }
    text = "\n".join(_ramp_against_two_stages(found, st))
    assert (
        "Reading: past l_max the best ramp `linear-r1` is lower than two stages in the main "
        "arm, its interval excluding zero, but by less than the margin ±0.0273: equivalent "
        "at the margin (family-wise)."
    ) in text
    assert "better than two stages" not in text
    judged["outcome"] = "better"  # beyond the margin: plainly better
    text = "\n".join(_ramp_against_two_stages(found, st))
    assert "is better than two stages in the main arm (better at the margin" in text
