"""The study document (``study.md``) and its figures, from the findings
(sweep/analysis/findings.py): the setup, every schedule and control, the findings
(``study_findings``), what the proxy can see and cannot show, and what it cost. What a
paper found, its citations and where a larger study is are the study file's own words
(``document:``, sweep/config/study_spec.py).
Every sentence that states a result reads its sign from the interval: a difference whose
95% interval holds zero is "not told apart", whatever its mean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sweep.analysis.controls import interval_text as _iv
from sweep.analysis.findings import compute, load_arms
from sweep.analysis.intervals import Interval
from sweep.analysis.records import write_text_atomic
from sweep.config.study_spec import Study, load_dir
from sweep.report.figures_study import plot_study_bands, plot_study_curves, plot_transfer
from sweep.report.study_findings import (
    _ramp_against_two_stages,
    _reproduce_btlm,
    _reproduce_press,
    _summary,
    _transfer,
)
from sweep.report.study_words import _abs, _join, _para, _table, document_texts, reading
from sweep.run.calibrate import seeds_needed
from sweep.run.cost import non_embedding_params_of_config

FIG_DIR = "study"


def _curves(summary) -> dict[str, np.ndarray]:
    """Seed-mean per-position loss of every finished schedule of an arm's aggregate."""
    by: dict[str, list] = {}
    for t in summary.finished:
        by.setdefault(t.record.schedule, []).append(np.asarray(t.record.curve))
    return {k: np.mean(v, axis=0) for k, v in by.items()}


def _schedules(found: dict, study: Study) -> list[str]:
    """Every schedule of every arm on an absolute scale, beside its differences."""
    lines = [
        "## Every schedule",
        "",
        "Absolute losses (mean over seeds and evaluation windows, 95% interval over both), "
        "the reference's gain from context (context_use), and each schedule minus the "
        "reference on level (far_loss) and on shape (far_excess: its rise from near l_max "
        "to past l_max, minus the reference's; own_excess: its rise past its own trained "
        "length, minus the reference's).",
        "",
    ]
    head = [
        "schedule",
        "role",
        "id_loss",
        "far_loss",
        "context_use",
        "far_loss - ref",
        "far_excess",
        "own_excess",
        "outcome vs ref",
    ]
    for arm, rows in (found.get("schedules") or {}).items():
        blind = " (its own negative control failed)" if arm in found.get("blind_arms", []) else ""
        lines += [f"`{arm}` arm{blind}:", ""]
        body = [
            [
                f"`{r['schedule']}`",
                r["role"] + (f" (trained ≤ {r['own_length']})" if r.get("own_length") else ""),
                _abs(r.get("id_loss")),
                _abs(r.get("far_loss")),
                _iv(r.get("context_use")),
                _iv(r.get("far_vs_ref")) if r.get("far_vs_ref") else "",
                _iv(r.get("far_excess")) if r.get("far_excess") else "",
                _iv(r.get("own_excess")) if r.get("own_excess") else "",
                r.get("decision") or "",
            ]
            for r in rows
        ]
        lines += _table(head, body)
    return lines


def _controls(found: dict) -> list[str]:
    """Every control every arm trained, each judged on its own: the short-only controls
    by the control check (level and shape), the others on far_loss and far_excess."""
    lines = ["## Every control", ""]
    for arm, summ in (found.get("arms") or {}).items():
        controls = summ.get("controls") or {}
        every = controls.get("every") or []
        judged = {e["negative"] for e in every}
        lines.append(
            f"- `{arm}` arm: the sweep sees {controls['sees']}."
            if controls.get("sees")
            else f"- `{arm}` arm: no negative control in this arm."
        )
        lines += [f"  - {e['summary']}: sees {e['sees']}." for e in every]
        for r in (found.get("schedules") or {}).get(arm, []):
            if r["role"] != "control" or r["schedule"] in judged:
                continue
            lines.append(
                f"  - {r['schedule']} (must fail; not a short-only control, so it does not "
                f"judge the sweep): far_loss - reference {_iv(r.get('far_vs_ref'))} "
                f"({reading(r.get('far_vs_ref'))}), far_excess {_iv(r.get('far_excess'))}."
            )
    return [*lines, ""]


def _sight(found: dict, study: Study) -> list[str]:
    """When the main arm does not see extrapolation, the document says so plainly before
    any finding, with what seeing it would take at this scale: the seeds at which each
    shape criterion that leans positive would likely clear zero (``calibrate.seeds_needed``,
    from its own variance components) and what those seeds cost here."""
    controls = (found.get("btlm") or {}).get("controls") or {}
    sees = controls.get("sees")
    if sees in (None, "extrapolation"):
        return []
    key = controls.get("excess_key") or "own_excess"
    crit = {
        f"the control's {key}": controls.get(key),
        "the reference's context_use": controls.get("reference_context_use"),
    }
    parts, need = [], []
    for name, iv in crit.items():
        held = bool(iv and iv.get("lo") is not None and iv["lo"] > 0)
        n = None if held else seeds_needed(iv)
        need.append(0 if held else n)
        tail = (
            "clears zero"
            if held
            else (
                f"about {n} seeds would likely clear zero"
                if n
                else "no number of seeds likely clears zero"
            )
        )
        parts.append(f"{name} {_iv(iv)} ({tail})")
    per_seed = _minutes_per_seed(found, study)
    if all(x is not None for x in need) and max(need) > 0:
        n = max(need)
        have = len(study.arm_spec(study.main, []).seeds)
        cost = (
            f"; at {per_seed:.0f} min of this machine per seed of the main arm, that is about "
            f"{n * per_seed / 60:.1f} h in all"
            if per_seed
            else ""
        )
        ask = (
            f"About {n} seeds in all ({max(n - have, 0)} more than this study's) would likely "
            f"see it at this scale{cost}."
        )
    else:
        ask = "More seeds of this regime are not likely to see it: a larger proxy is needed."
    return [
        "## What this proxy can see",
        "",
        f"**This study sees {sees}.** Its negative control is judged on shape as well as "
        "level (docs/design.md, The verdict): the proxy sees extrapolation only when the "
        "control's deficit grows past its own trained length and the reference uses its "
        "context up to l_max, each beyond its interval. Measured here: "
        + "; ".join(parts)
        + ". So every finding below is on level, not on extrapolation. "
        + _join(ask, document_texts(study, found)["sight"]),
        "",
    ]


def _minutes_per_seed(found: dict, study: Study) -> float | None:
    """Wall minutes of the main arm per seed: its trials' summed wall time over the
    trials run at once, divided by its seeds."""
    arm = (found.get("cost") or {}).get("arms", {}).get(study.main)
    spec = study.arm_spec(study.main, [])
    if not arm or not arm.get("trial_wall_s"):
        return None
    slots = max(1, spec.resources.max_concurrent_trials)
    return arm["trial_wall_s"] / slots / max(1, len(spec.seeds)) / 60


def _setup(study: Study, found: dict) -> list[str]:
    spec = study.arm_spec(study.main, [])
    model, budget, ev, lengths = spec.model, spec.budget, spec.eval, spec.schedules
    lines = [
        "## Setup",
        "",
        f"- Model: btlm-proxy ({model.position}, SwiGLU, muP base width {model.mup_base_width}), "
        f"d_model {model.d_model}, {model.n_layers} layers, {model.n_heads} heads; "
        f"precision {spec.deepspeed.precision} (DeepSpeed ZeRO-{spec.deepspeed.zero_stage}).",
        f"- Data: `{spec.data.corpus}` corpus, `{spec.data.tokenizer}` tokenizer; "
        f"{spec.data.repeat_share:.0%} of documents carry a copied span "
        f"(span {spec.data.repeat_span}, up to {spec.data.repeat_max_distance} tokens back).",
        f"- Budget: {budget.tokens:,} tokens per trial, {budget.tokens_per_step:,} tokens per step "
        f"(every schedule trains the same tokens); l_max {lengths.l_max}, l_min {lengths.l_min}.",
        f"- Evaluation: {ev.sequences} held-out windows of E = {ev.multiple} x l_max = "
        f"{spec.eval_length:,} tokens, the same windows for every trial of every arm; "
        f"far_loss is the mean loss over positions (l_max, E], also per band "
        f"({', '.join(found.get('bands', []))}).",
        f"- Seeds: {', '.join(map(str, spec.seeds))}. Intervals are paired 95% intervals over "
        "seeds and evaluation documents (docs/design.md, Intervals).",
        "",
        "Arms (each an ordinary sweep under the study's directory):",
        "",
    ]
    for arm in study.arm_names:
        rep = found.get("arms", {}).get(arm)
        scheds = sorted({t["schedule"] for t in rep["trials"]}) if rep else []
        lines.append(f"- `{arm}`: {', '.join(f'`{x}`' for x in scheds) or 'not run'}")
    lines.append("")
    return lines


def _cost(found: dict, command: str) -> list[str]:
    cost = found.get("cost", {})
    rows = [
        [
            f"`{arm}`",
            f"{v['finished']}/{v['trials']}",
            f"{v['tokens'] / 1e6:,.1f}M",
            f"{v['flops'] / 1e12:,.1f}",
            f"{v['trial_wall_s'] / 60:,.1f}",
        ]
        for arm, v in cost.get("arms", {}).items()
    ]
    tot = cost.get("arms", {}).values()
    runs = cost.get("runs", [])
    return [
        "## What it cost",
        "",
        *_table(["arm", "finished", "tokens trained", "TFLOPs", "trial minutes (sum)"], rows),
        f"In all {sum(v['tokens'] for v in tot) / 1e6:,.1f}M tokens and "
        f"{sum(v['flops'] for v in tot) / 1e12:,.0f} TFLOPs; wall time of the study "
        f"command: {cost.get('wall_s', 0) / 60:.1f} min over {len(runs)} run(s) on this "
        "machine (2 CPU cores, two trials at a time).",
        "",
        "## Reproduce",
        "",
        "```",
        command,
        f"sweep report results/{found.get('study', 'study')} --out docs",
        "```",
        "",
    ]


def _repeat_lines(found: dict) -> list[str]:
    reps = found.get("repeats") or []
    if not reps:
        return []
    said = "; ".join(
        f"`{r['label']}` in {r['arms'][0]} and {r['arms'][1]}: {r['identical']} of "
        f"{r['pairs']} seeds identical"
        for r in reps
    )
    return [
        "## Determinism across arms",
        "",
        "Trials two arms ran with the same schedule, seed and training spec must be the "
        f"same trial on a CPU (their per-position curves compared exactly): {said}.",
        "",
    ]


def _not_run(study: Study, found: dict) -> list[str]:
    """The study's standard arms that have no results here, named by what they test."""
    arms = found.get("arms", {})
    said = document_texts(study, found)["limits"]
    keys = ("rope_arm", "window_arm", "wide_arm")
    absent = [said[k] for k in keys if said[k] and study.findings.get(k) not in arms]
    if not absent:
        return []
    return [_join(f"- Not run in this study: {'; '.join(absent)}.", said["not_run"])]


def _limits(study: Study, found: dict) -> list[str]:
    spec = study.arm_spec(study.main, [])
    n = non_embedding_params_of_config(spec.model)
    wide = study.findings.get("wide_arm") in found.get("arms", {})
    said = document_texts(study, found)["limits"]
    return [
        "## What this does not show",
        "",
        f"- Scale: a {n / 1e6:.2f}M-parameter (non-embedding) proxy trained on "
        f"{spec.budget.tokens / 1e6:.1f}M `{spec.data.tokenizer}` tokens of the "
        f"`{spec.data.corpus}` corpus"
        + (f", {said['scale']}" if said["scale"] else "")
        + ". The findings are about this proxy"
        + (
            "; the width arm is the only evidence here of how they move with scale"
            if wide
            else "; nothing here says how they move with scale"
        )
        + (f" ({said['next_step']})" if said["next_step"] else "")
        + ".",
        f"- {len(spec.seeds)} seeds: intervals include seed noise, but with few seeds they "
        "are wide"
        + (", and rank statistics over a few schedules take few values." if wide else "."),
        *(
            [
                "- The best ramp is a winner among several on the same trials (see (c)); only "
                "the fresh trials of the other arms are free of that selection."
            ]
            if len(found.get("best_ramps") or []) > 1
            else []
        ),
        *_not_run(study, found),
        *(
            [
                "- Window mode on a CPU computes every masked score (SDPA), so it costs what "
                "constant costs here; its speed-up needs a block-sparse kernel on a GPU."
            ]
            if study.findings.get("window_arm") in found.get("arms", {})
            else []
        ),
        "",
    ]


def write_document(study: Study, found: dict, arms: dict, dest: Path) -> Path:
    """``arms``: each arm's aggregate (``aggregate.Summary``), for the curves."""
    found = {**found, "study": study.name}
    figdir = dest / FIG_DIR
    figdir.mkdir(parents=True, exist_ok=True)
    figs = []
    if found.get("arms"):
        rope = study.findings.get("rope_arm")
        curves = {study.main: _curves(arms[study.main])}
        if rope in arms:
            curves[rope] = _curves(arms[rope])
        spec = study.arm_spec(study.main, [])
        figs.append(
            plot_study_curves(curves, study, found, spec.schedules.l_max, figdir / "positions.png")
        )
        figs.append(plot_study_bands(found, study, figdir / "bands.png"))
        if found.get("transfer"):
            figs.append(plot_transfer(found["transfer"], figdir / "transfer.png"))
    figs = [p for p in figs if p is not None]
    doc = document_texts(study, found)
    lines = [
        f"# {doc['title']}",
        "",
        "Written by `sweep report` from the study's results; do not edit by hand.",
        "",
        *_para(doc["intro"]),
    ]
    if not found.get("arms"):
        lines += ["The main arm has no finished trials yet.", ""]
    else:
        lines += _summary(study, found)
        lines += _sight(found, study)
        lines += _setup(study, found)
        lines += [f"![{p.stem}]({FIG_DIR}/{p.name})" for p in figs] + [""]
        lines += _schedules(found, study)
        lines += _controls(found)
        lines += _reproduce_btlm(found, study)
        lines += _reproduce_press(found, study)
        lines += _ramp_against_two_stages(found, study)
        lines += _transfer(found, study)
        lines += _repeat_lines(found)
        lines += _limits(study, found)
    lines += _cost(found, f"sweep run configs/{study.name}.yaml")
    md = dest / f"{study.name}.md"
    write_text_atomic(md, "\n".join(lines))
    return md


def write_study(study_dir: Path, out: str | Path | None = None) -> Path:
    """Compute the findings and write ``study.md``, its figures and ``findings.json`` to
    ``out`` (default: the study's directory)."""
    study_dir = Path(study_dir)
    study = load_dir(study_dir)
    arms = load_arms(study, study_dir)
    found = compute(study, study_dir, arms)
    dest = Path(out) if out else study_dir
    dest.mkdir(parents=True, exist_ok=True)
    text = json.dumps(found, indent=1, default=_json_default)
    write_text_atomic(study_dir / "findings.json", text)
    return write_document(study, found, arms, dest)


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Interval):
        return x.to_dict()
    raise TypeError(type(x))
