"""The report on a fake results directory with every field a trial now records: it leads
with the verdict and the controls, ranks in a real table, draws every figure, and never
raises on missing or undefined data."""

import html
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT

from sweep import aggregate, metrics, schedules, spec
from sweep.report import write_report
from sweep.trial import write_record

# schedule -> (far_loss shift, id_loss shift, ctx_gain, copy drop beyond l_max, flops)
EFFECTS = {
    "constant": (0.0, 0.0, 0.05, 0.5, 1.0e9),
    "linear-r0.5": (-0.08, 0.002, 0.10, 0.8, 0.8e9),
    "geometric-r0.5": (-0.03, 0.02, 0.07, 0.6, 0.85e9),  # better far, costs id_loss
    "short_only": (0.4, 0.01, -0.2, 0.0, 0.6e9),  # the negative control
}
FIGURES = (
    "curves",
    "far_bands",
    "ctx_gain",
    "copy",
    "tradeoff",
    "ramp",
    "evolution",
    "training",
    "schedules",
)


def smoke_spec(seeds=(0, 1), controls=True) -> spec.SweepSpec:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["seeds"] = list(seeds)
    if controls:
        raw["schedules"]["controls"] = ["short_only"]
    return spec.parse(raw)


def copy_distances(l_max: int, length: int, span: int) -> list[int]:
    out, d = [], l_max // 2
    while d + 2 * span <= length:
        out.append(d)
        d *= 2
    return out


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
) -> spec.SweepSpec:
    """Trial records with known effects (EFFECTS) on shared eval windows: documents with
    their own difficulty, loss that rises past l_max, a sliding-window and a copy probe."""
    sw = smoke_spec(seeds, controls)
    rng = np.random.default_rng(0)
    L = sw.schedules.l_max
    E = sw.eval.length(L)
    p = np.arange(1, E + 1)
    n_nat = n_docs * per_doc
    n = n_nat + n_repeat
    docs = [f"doc{i // per_doc}" for i in range(n_nat)] + [f"rep{i}" for i in range(n_repeat)]
    sources = ["natural"] * n_nat + ["repeat"] * n_repeat
    natural = np.array(sources) == "natural"
    base = 2.5 + 1.5 / np.sqrt(p) + 0.3 * rng.standard_normal((n, 1))
    base = base + 0.2 * rng.standard_normal((n, E))
    base[:, L:] += 0.15 * np.log2(p[L:] / L)  # extrapolation gets worse with distance
    dists = copy_distances(L, E, sw.eval.copy_span)
    k_mid = sw.eval.intermediate_sequences
    for t in sw.trials():
        label = t.schedule.label
        if only is not None and label not in only:
            continue
        far, id_shift, gain, copy_far, flops = EFFECTS[label]
        losses = base + 0.003 * rng.standard_normal() + 0.01 * rng.standard_normal((n, E))
        losses[:, :L] += id_shift
        losses[:, L:] += far
        curve = losses.mean(axis=0)
        fields = dict(
            tokens_trained=sw.budget.tokens,
            wall_s=1.0,
            curve=curve.tolist(),
            per_sequence=metrics.per_sequence(losses, L),
            metrics={**metrics.all_metrics(curve, L), "flops": flops},
            history=[
                {"tokens": k * 4096, "loss": 5.0 - 2.0 * k / 10 + 0.1 * rng.random()}
                for k in range(1, 11)
            ],
        )
        if new_fields:
            gain_mat = gain * np.log2(p[L:] / L + 1) + 0.05 * rng.standard_normal((n, E - L))
            copy = np.array([1.0 if dd <= L else copy_far for dd in dists])
            copy = copy + 0.1 * rng.standard_normal((n_nat, len(dists)))
            mid = losses[:k_mid] + 0.1
            curve_se = metrics.position_se(losses)
            ctx_curve = gain_mat.mean(axis=0)
            if nan:
                curve_se[::3] = np.nan
                ctx_curve[5] = np.nan
                copy[:, -1] = np.nan
            plan = schedules.plan(t.schedule, sw.budget.tokens, sw.budget.tokens_per_step)
            fields.update(
                curve_se=curve_se.tolist(),
                ctx_gain_curve=ctx_curve.tolist(),
                copy_distances=dists,
                per_sequence={
                    **fields["per_sequence"],
                    "ctx_gain": gain_mat.mean(axis=1).tolist(),
                    "copy": copy.tolist(),
                },
                eval_windows={"doc": docs, "source": sources, "offset": [0] * n},
                metrics_by_source={
                    "natural": metrics.all_metrics(losses[natural].mean(axis=0), L),
                    **(
                        {"repeat": metrics.all_metrics(losses[~natural].mean(axis=0), L)}
                        if n_repeat and not nan
                        else {}
                    ),
                },
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
        write_record(d, t, "finished", **fields)
    return sw


def ranking_rows(text: str) -> list[str]:
    table = re.search(r"<table id='ranking'>(.*?)</table>", text, re.S).group(1)
    return re.findall(r"<tr class='([^']*)'>", table)


def test_report_leads_with_verdict_and_draws_every_figure(tmp_path):
    build(tmp_path)
    s = aggregate.aggregate(tmp_path)
    assert s.controls["discriminates"] is True, s.controls  # the fake data is as meant
    assert [p["schedule"] for p in s.picks] == ["linear-r0.5"], s.verdict
    md_path, html_path = write_report(s)
    text, md = html_path.read_text(), md_path.read_text()

    classes = ranking_rows(text)
    assert len(classes) == len(s.schedules) == 4
    assert "reference" in classes and "control" in classes and "candidate pick" in classes
    ranking = text.index("<table id='ranking'>")
    assert text.index(html.escape(s.verdict)) < ranking
    assert text.index(html.escape(s.controls["summary"])) < ranking
    assert "discriminates: yes" in text and "<pre" not in text
    assert "3 exact, 1 near duplicates (40 kept)" in text
    assert "<table id='natural'>" in text and "<table id='trials'>" in text
    assert text.count("<img ") == len(FIGURES)
    assert "document.body.dataset.imagesLoaded" in text

    assert s.controls["summary"] in md and "discriminates: yes" in md
    assert md.index(s.verdict) < md.index("## Ranking") < md.index("| rank |")
    assert "Natural text only" in md and "figure failed" not in md
    assert "flatter" not in md + text
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
    assert "discriminates: " in md and s.verdict in md
    for png in (tmp_path / "figures").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
