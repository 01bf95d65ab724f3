"""The report on a fake results directory with every field a trial now records: it leads
with the verdict and the controls, ranks in a real table, draws every figure, and never
raises on missing or undefined data."""

import html
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT, fake_records

from sweep.analysis import aggregate, metrics
from sweep.config import schedules, spec
from sweep.report.figures_tradeoff import exposure_survival
from sweep.report.sweep_report import write_report

# schedule -> (far_loss shift, id_loss shift, ctx_gain, copy drop beyond l_max, flops)
EFFECTS = {
    "constant": (0.0, 0.0, 0.05, 0.5, 1.0e9),
    "linear-r0.5": (-0.08, 0.002, 0.10, 0.8, 0.8e9),
    "geometric-r0.5": (-0.03, 0.02, 0.07, 0.6, 0.85e9),  # better far, costs id_loss
    "short_only": (0.4, 0.01, -0.2, 0.0, 0.6e9),  # the negative control
}
# mode -> far_loss shift on top of the schedule's
MODE_EFFECTS = {"reshape": 0.0, "truncate": 0.06, "window": -0.01, "doc_buckets": 0.0}
FIGURES = (
    "curves",
    "far_bands",
    "ctx_gain",
    "copy",
    "tradeoff",
    "exposure",
    "ramp",
    "evolution",
    "training",
    "schedules",
)


def figure_spec(seeds=(0, 1), controls=True, modes=("reshape",)) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["seeds"] = list(seeds)
    raw["schedules"]["modes"] = list(modes)
    raw["decision"] = {"margin": 0.02}  # the effects below are measured at this margin
    if controls:
        raw["schedules"]["controls"] = ["short_only"]
    return spec.parse(raw)


def copy_distances(l_max: int, length: int, span: int) -> list[int]:
    out, d = [], l_max // 2
    while d + 2 * span <= length:
        out.append(d)
        d *= 2
    return out


def exposure_of(plan: schedules.Plan, l_max: int) -> list[int]:
    """The exposure histogram a trial of ``plan`` records: a query's farthest attended key
    is its position in the row, or the window - 1 in window mode."""
    dist = []
    for step in plan.table():
        row = np.arange(step["length"])
        if plan.mode == "window":
            row = np.minimum(row, step["context"] - 1)
        dist += [np.tile(row, step["rows"]), np.arange(step["tail"])]
    return metrics.exposure_counts(np.concatenate(dist), l_max).tolist()


def effects(t: spec.TrialSpec) -> tuple:
    """EFFECTS of ``t``'s schedule, its mode's far shift added."""
    mode = t.schedule.mode
    far, *rest = EFFECTS[t.schedule.label.removesuffix(f"-{mode}")]
    return (far + MODE_EFFECTS[mode], *rest)


def build(
    d: Path,
    seeds=(0, 1),
    controls=True,
    only=None,
    new_fields=True,
    nan=False,
    n_docs=8,
    per_doc=2,
    n_repeat=4,
    modes=("reshape",),
) -> spec.SweepSpec:
    """Trial records with known effects (EFFECTS, MODE_EFFECTS) on shared eval windows:
    documents with their own difficulty, loss that rises past l_max, a sliding-window and
    a copy probe, and (new_fields) the position exposure of the schedule's plan."""
    sw = figure_spec(seeds, controls, modes)
    rng = np.random.default_rng(0)
    L = sw.schedules.l_max
    p = np.arange(1, sw.eval.length(L) + 1)
    n_nat = n_docs * per_doc
    sources = ["natural"] * n_nat + ["repeat"] * n_repeat
    windows = {
        "doc": [f"doc{i // per_doc}" for i in range(n_nat)] + [f"rep{i}" for i in range(n_repeat)],
        "source": sources,
        "offset": [0] * len(sources),
    }
    base = 2.5 + 1.5 / np.sqrt(p) + 0.3 * rng.standard_normal((len(sources), 1))
    base = base + 0.2 * rng.standard_normal((len(sources), len(p)))
    base[:, L:] += 0.15 * np.log2(p[L:] / L)  # extrapolation gets worse with distance

    def fields(t: spec.TrialSpec, losses: np.ndarray) -> dict:
        plan = schedules.plan(t.schedule, sw.budget.tokens, sw.budget.tokens_per_step)
        flops = effects(t)[4] * plan.total_tokens / sw.budget.tokens
        out = dict(
            per_sequence=metrics.per_sequence(losses, L),
            metrics={**metrics.all_metrics(losses.mean(axis=0), L), "flops": flops},
            history=[
                {"tokens": k * 4096, "loss": 5.0 - 2.0 * k / 10 + 0.1 * rng.random()}
                for k in range(1, 11)
            ],
            eval_windows=None,  # records from before the probes have neither
            tokens_by_length=None,
        )
        if new_fields:
            out |= probe_fields(sw, t, plan, losses, windows, rng, nan)
            out["per_sequence"] = {**metrics.per_sequence(losses, L), **out["per_sequence"]}
        return out

    trials = [t for t in sw.trials() if only is None or t.schedule.label in only]
    fake_records(
        d,
        sw,
        {t.schedule.label: effects(t)[0] for t in trials},
        id_shift={t.schedule.label: effects(t)[1] for t in trials},
        base=base,
        own_noise=0.01,
        seed_noise=0.003,
        own_rise=None,
        noise_by_name=True,
        trials=trials,
        fields=fields,
    )
    return sw


def probe_fields(sw, t, plan, losses, windows, rng, nan) -> dict:
    """What a trial records today beyond its losses: mode, exposure, the curve's SE, the
    ctx_gain and copy probes (``EFFECTS``), per-source metrics and an intermediate eval;
    ``nan``: undefined values where a record can hold them."""
    _, _, gain, copy_far, flops = effects(t)
    flops *= plan.total_tokens / sw.budget.tokens
    L, E = sw.schedules.l_max, losses.shape[1]
    p = np.arange(1, E + 1)
    natural = np.array(windows["source"]) == "natural"
    dists = copy_distances(L, E, sw.eval.copy_span)
    gain_mat = gain * np.log2(p[L:] / L + 1) + 0.05 * rng.standard_normal((len(losses), E - L))
    copy = np.array([1.0 if dd <= L else copy_far for dd in dists])
    copy = copy + 0.1 * rng.standard_normal((natural.sum(), len(dists)))
    mid = losses[: sw.eval.intermediate_sequences] + 0.1
    curve_se = metrics.position_se(losses)
    ctx_curve = gain_mat.mean(axis=0)
    if nan:
        curve_se[::3] = np.nan
        ctx_curve[5] = np.nan
        copy[:, -1] = np.nan
    by_source = {"natural": metrics.all_metrics(losses[natural].mean(axis=0), L)}
    if not natural.all() and not nan:
        by_source["repeat"] = metrics.all_metrics(losses[~natural].mean(axis=0), L)
    return dict(
        mode=t.schedule.mode,
        token_equal=t.schedule.mode != "truncate",
        tokens_trained=plan.total_tokens,
        train_wall_s=flops / 1e9 * (1.0 + 0.05 * rng.random()),
        exposure={"edges": metrics.exposure_edges(L), "counts": exposure_of(plan, L)},
        curve_se=curve_se.tolist(),
        ctx_gain_curve=ctx_curve.tolist(),
        copy_distances=dists,
        per_sequence={"ctx_gain": gain_mat.mean(axis=1).tolist(), "copy": copy.tolist()},
        eval_windows=windows,
        metrics_by_source=by_source,
        tokens_by_length={str(k): v for k, v in plan.tokens_by_length().items()},
        held_out_removed={"exact": 3, "near": 1, "kept": 40},
        evals=[
            {
                "tokens": sw.budget.tokens // 2,
                "fraction": 0.5,
                "seq_len": L,
                **metrics.all_metrics(mid.mean(axis=0), L),
                **({"far_loss": None} if nan else {}),
            }
        ],
    )


def ranking_rows(text: str) -> list[str]:
    table = re.search(r"<table id='ranking'>(.*?)</table>", text, re.S).group(1)
    return re.findall(r"<tr class='([^']*)'>", table)


def test_report_leads_with_verdict_and_draws_every_figure(tmp_path):
    build(tmp_path, seeds=(0, 1, 2, 3))  # a pick needs seeds enough to tell it apart
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is True, s.controls  # the fake data is as meant
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"], s.verdict
    md_path, html_path = write_report(s)
    text, md = html_path.read_text(), md_path.read_text()

    classes = ranking_rows(text)
    assert len(classes) == len(s.schedules) == 4
    assert "reference" in classes and "control" in classes and "candidate pick" in classes
    ranking = text.index("<table id='ranking'>")
    lines = s.verdict.split("\n")
    assert lines[0].startswith("sees ") and lines[1].startswith("1 pick(s)")  # sight, picks
    assert lines[2].startswith("best ramp linear-r0.5")  # then the user's question, directly
    assert text.index("<br>".join(map(html.escape, lines))) < ranking
    assert "sees: level only" in text  # the fake's control is worse at every distance alike
    assert "Bonferroni" in text and "margin 0.0200 nats: decision.margin" in text
    assert text.index(html.escape(s.controls["summary"])) < ranking
    assert "discriminates: yes" in text and "<pre" not in text
    assert "3 exact, 1 near duplicates (40 kept)" in text
    assert "<table id='natural'>" in text and "<table id='trials'>" in text
    assert text.count("<img ") == len(FIGURES)
    assert "b.imagesLoaded = " in text and "b.decisionInView = " in text

    assert s.controls["summary"] in md and "discriminates: yes" in md
    assert md.index(s.verdict.replace("\n", "  \n")) < md.index("## Ranking")
    assert md.index("## Ranking") < md.index("| rank |")
    assert "Natural text only" in md and "figure failed" not in md
    assert "flatter" not in md + text
    # one mode, all rows token-equal: no footnote to the ranking, no modes named
    assert "* token-unequal: " not in md + text and "id='unequal'" not in text
    assert "Modes compared" not in md
    for stem in FIGURES:
        png = tmp_path / "figures" / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert png.stat().st_size > 1000, stem
        assert f"figures/{stem}.png" in md


@pytest.mark.parametrize(
    "case",
    [
        dict(new_fields=False),  # records from before the probes
        dict(only={"linear-r0.5", "geometric-r0.5"}),  # no reference finished
        dict(only={"constant"}),  # one schedule
        dict(only={"linear-r0.5"}, controls=False),  # one schedule, not the reference
        dict(nan=True),  # undefined values where the record has them
        dict(seeds=(0,), controls=False),  # one seed, no control
        dict(n_docs=1, per_doc=1, n_repeat=0),  # one eval window: no interval anywhere
    ],
    ids=["old", "no-ref", "ref-only", "one-candidate", "nan", "one-seed", "one-window"],
)
def test_report_survives_missing_data(tmp_path, case):
    build(tmp_path, **case)
    s = aggregate.aggregate(tmp_path)
    md_path, html_path = write_report(s)
    md, text = md_path.read_text(), html_path.read_text()
    assert "figure failed" not in md, md
    assert len(ranking_rows(text)) == len(s.schedules)
    assert "discriminates: " in md and s.verdict.replace("\n", "  \n") in md
    for png in (tmp_path / "figures").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_exposure_survival_is_the_tail_fraction():
    """Fraction of trained query tokens whose farthest key is >= d back, at each lower
    edge d: the tail sum from d on over the total, so 1 at d = 0 and never rising."""
    d, frac = exposure_survival([0, 1, 2, 4], [1, 1, 2, 4])
    assert d.tolist() == [0, 1, 2, 4]
    assert frac.tolist() == [1.0, 7 / 8, 6 / 8, 4 / 8]
    # fractions instead of counts, and edges that also carry the last upper edge
    _, same = exposure_survival([0, 1, 2, 4, 8], [1 / 8, 1 / 8, 2 / 8, 4 / 8])
    assert np.allclose(same, frac)
    rng = np.random.default_rng(1)
    for _ in range(20):
        counts = rng.integers(0, 50, size=9)
        counts[rng.integers(0, 9)] += 1  # never all zero
        _, f = exposure_survival(metrics.exposure_edges(256), counts)
        assert f[0] == 1.0 and np.all(np.diff(f) <= 0)
        assert np.allclose(-np.diff(f), counts[:-1] / counts.sum())  # each bin's share
        assert np.isclose(f[-1], counts[-1] / counts.sum())
    for edges, counts in (([0, 1], [0, 0]), ([0, 1], []), ([0, 1, 2], [1, 2, 3, 4]), (None, [1])):
        assert exposure_survival(edges, counts) is None
    assert exposure_survival([0, 1], [1, -1]) is None


@pytest.mark.parametrize(
    "modes", [("reshape", "truncate", "window"), ("reshape", "window")], ids=["truncate", "equal"]
)
def test_multi_mode_report(tmp_path, modes):
    """Several modes: the trade-off and exposure figures are drawn, the facts name the
    modes, and the ranking's * gets its footnote exactly when a row is token-unequal."""
    build(tmp_path, modes=modes)
    s = aggregate.aggregate(tmp_path)
    assert {r["mode"] for r in s.schedules} == set(modes)
    md_path, html_path = write_report(s)
    md, text = md_path.read_text(), html_path.read_text()
    assert "figure failed" not in md and "not drawn" not in md, md
    for stem in ("tradeoff", "exposure"):
        png = tmp_path / "figures" / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert f"figures/{stem}.png" in md
    assert "not a trend test" in md and "wall time" in md
    assert f"Modes compared ({len(modes)}): " in md
    assert all(f"{m} (" in md.split("Modes compared")[1].split("\n")[0] for m in modes)

    unequal = [r["schedule"] for r in s.schedules if not r["token_equal"]]
    assert bool(unequal) == ("truncate" in modes)
    if unequal:
        assert "id='unequal'" in text and "* token-unequal: " in text
        note = next(line for line in md.splitlines() if line.startswith("\\* token-unequal"))
        assert all(name in note for name in unequal) and "40960 tokens" in note
        # the table's * is a literal asterisk in markdown, not emphasis
        assert len(re.findall(r"\dk\\\*", md)) == len(unequal)
        assert not re.search(r"\dk\*", md.replace("**", ""))
    else:
        assert "* token-unequal: " not in md + text and "id='unequal'" not in text

    # the exposure curves: 1 at d = 0, never rising, and at l_max / 2 the row's
    # exposure_far, the x of the right panel (the two panels tell the same story)
    l_max = s.trials[0].record.l_max
    for r in s.schedules:
        d, frac = exposure_survival(r["exposure"]["edges"], r["exposure"]["fractions"])
        assert frac[0] == 1.0 and np.all(np.diff(frac) <= 1e-12)
        assert np.isclose(frac[list(d).index(l_max // 2)], r["exposure_far"]), r["schedule"]
    far = {r["schedule"]: r["exposure_far"] for r in s.schedules}
    assert far["short_only"] == 0.0 and far["constant"] == 0.5


def test_exposure_not_drawn_without_histograms(tmp_path):
    """Records from before the exposure histogram: the report says why the figure is
    missing, and the trade-off figure still draws (wall time marked not recorded)."""
    build(tmp_path, new_fields=False)
    s = aggregate.aggregate(tmp_path)
    md_path, html_path = write_report(s)
    md, text = md_path.read_text(), html_path.read_text()
    assert not (tmp_path / "figures" / "exposure.png").exists()
    section = md.split("## Position exposure and extrapolation\n", 1)[1].split("##", 1)[0]
    assert "not drawn: no position exposure recorded" in section
    assert "not drawn: no position exposure recorded" in text
    assert (tmp_path / "figures" / "tradeoff.png").stat().st_size > 20_000
    assert "figure failed" not in md


def test_a_schedules_colour_does_not_depend_on_the_results(tmp_path):
    """The same schedule gets the same colour in every figure of a sweep and in every
    sweep of the same grid, whatever the ranking (it once followed the ranking's order)."""
    from support import fake_records, smoke_spec

    from sweep.analysis.aggregate import aggregate
    from sweep.report.style import _styles

    looks = []
    for i, shifts in enumerate(({"linear-r0.5": -0.1}, {"geometric-r0.5": -0.1})):
        d = tmp_path / str(i)
        fake_records(d, smoke_spec(seeds=(0, 1)), shifts)
        s = aggregate(d)
        looks.append(_styles(s))
    assert looks[0] == looks[1]
    assert looks[0]["constant"]["color"] == "black"


def test_small_values_keep_their_digits_in_legends():
    from sweep.report.figures_sweep import _small

    assert _small(-0.00031) == "-3.10e-04" and _small(0.0002, sign=False) == "2.00e-04"
    assert _small(0.05) == "+0.0500" and _small(-0.0123) == "-0.0123" and _small(0.0) == "0"
    assert "0.000" not in _small(-4e-5)


CHROMIUM = __import__("shutil").which("chromium") or __import__("shutil").which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
@pytest.mark.parametrize("width", [800, 1280])
def test_the_report_reads_at_800_and_1280_px(tmp_path, width):
    """The decision column is in view without scrolling and nothing widens the page past
    the window (wide tables scroll in their own box; figures shrink to fit)."""
    import subprocess

    from support import fake_records, smoke_spec

    from sweep.report.sweep_report import write_report

    fake_records(tmp_path / "s", smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    _, html_path = write_report(aggregate.aggregate(tmp_path / "s"))
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            f"--window-size={width},2000",
            "--dump-dom",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-decision-in-view="yes"' in dom, width
    assert 'data-page-overflow="no"' in dom, width
    head = re.search(r"<table id=\"ranking\"><thead><tr>(.*?)</tr>", dom).group(1)
    assert re.findall(r"<th>(.*?)</th>", head)[:3] == ["rank", "schedule", "decision"]
