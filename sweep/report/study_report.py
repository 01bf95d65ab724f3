"""The study document (``study.md``) and its figures, from the findings
(sweep/analysis/findings.py).
Every sentence that states a result reads its sign from the interval: a difference whose
95% interval holds zero is "not told apart", whatever its mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep.analysis.aggregate import _iv
from sweep.analysis.records import write_text_atomic
from sweep.run.study import Study

FIG_DIR = "study"


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


def _f(v, nd: int = 4) -> str:
    return "n/a" if v is None else f"{v:+.{nd}f}"


def _row_iv(d: dict, key: str) -> str:
    return _iv(d.get(key)) if d else "n/a"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _curves(summary) -> dict[str, np.ndarray]:
    """Seed-mean per-position loss of every finished schedule of an arm's aggregate."""
    by: dict[str, list] = {}
    for t in summary.finished:
        by.setdefault(t.record["schedule"], []).append(np.asarray(t.record["curve"]))
    return {k: np.mean(v, axis=0) for k, v in by.items()}


def _said(d: dict, key: str = "far_loss") -> str:
    return f"{_row_iv(d, key)}: **{reading(d.get(key))}**"


def _ramp_rows(rows: dict) -> list[list[str]]:
    return [
        [f"`{r}`", _row_iv(d, "far_loss"), reading(d.get("far_loss")), _row_iv(d, "id_loss")]
        for r, d in rows.items()
    ]


def _summary(study: Study, found: dict) -> list[str]:
    """The answer first: each finding's reading in a sentence, from the same intervals
    as the sections below."""
    f = study.findings
    a = found.get("btlm", {})
    nr, nb = a.get("negative_vs_reference", {}), a.get("negative_vs_btlm", {})
    a_ok = reading(nr.get("far_loss")) == "worse" and reading(nb.get("far_loss")) == "worse"
    rope = found.get("rope") or {}
    b_ok = bool(rope) and all(reading(d.get("far_loss")) == "worse" for d in rope.values())
    c = found.get("ramp_vs_btlm", {})
    best = c.get("best")
    t = found.get("transfer") or {}
    out = [
        "## Summary",
        "",
        f"- (a) BTLM's finding {_reproduces(a_ok, a)} here: "
        f"`{f.get('negative')}` is worse past l_max than `{found.get('reference')}` "
        f"({_iv(nr.get('far_loss'))}) and than `{f.get('btlm')}` ({_iv(nb.get('far_loss'))})"
        + _shape_words(a)
        + ".",
    ]
    if rope:
        out.append(
            f"- (b) Press et al.'s finding {'reproduces' if b_ok else 'does NOT reproduce'}: "
            "rotary minus ALiBi past l_max is "
            + ", ".join(f"{_iv(d.get('far_loss'))} (`{k}`)" for k, d in rope.items())
            + "."
        )
    if best:
        out.append(_c_line(found, study))
    if t.get("rho") is not None:
        out.append(
            f"- Width transfer: Spearman {t['rho']:+.2f} [{t['lo']:+.2f}, {t['hi']:+.2f}] "
            f"over {len(t['labels'])} candidate schedules (controls left out); the best of "
            "them is "
            + ("the same" if t["best_a"] == t["best_b"] else "not the same")
            + f" at both widths (`{t['best_a']}`, `{t['best_b']}`)."
        )
    return [*out, ""]


def _outcome_words(j: dict) -> str:
    """One comparison as the decision layer reads it: interval at its level, outcome,
    and what would settle it."""
    lo, hi = j["interval"]
    said = f"{j['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}] at {100 * j['level']:.4g}%: **{j['outcome']}**"
    if j["outcome"] == "inconclusive":
        n = j.get("seeds_to_settle")
        said += (
            f" (about {n} seeds would likely settle it)"
            if n
            else " (not within 64 seeds at the measured variances)"
        )
    return said


def _c_line(found: dict, study: Study) -> str:
    """Finding (c) in a sentence: every ramp against two stages, four outcomes at the
    margin, the family's correction, and the fresh trials of an arm whose control held."""
    c = found.get("ramp_vs_btlm", {})
    dec = c.get("decided") or {}
    btlm = study.findings.get("btlm")
    if not dec.get("by_ramp"):
        return f"- (c) No steady ramp could be compared with `{btlm}`."
    parts = [f"`{r}` {_outcome_words(j)}" for r, j in dec["by_ramp"].items()]
    selection = (
        " (one ramp: no selection)"
        if dec["comparisons"] == 1
        else f" (the best, `{c.get('best')}`, chosen on these trials)"
    )
    line = (
        f"- (c) Steady ramp minus two stages (`{btlm}`) past l_max, at the margin "
        f"±{dec['margin']:.4f} nats ({c.get('margin_source', '')}; {dec['correction']}): "
        + "; ".join(parts)
        + selection
    )
    wide = study.findings.get("wide_arm")
    wide_best = (c.get("wide") or {}).get(c.get("best"), {})
    if wide_best and wide not in found.get("blind_arms", []):
        line += (
            f"; on fresh trials at twice the width {_iv(wide_best.get('far_loss'))} "
            f"({reading(wide_best.get('far_loss'))})"
        )
    elif wide_best:
        line += f"; the `{wide}` arm's own control failed, so it confirms nothing"
    return line + "."


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


def _abs(iv: dict | None) -> str:
    if not iv or iv.get("mean") is None:
        return "n/a"
    if iv.get("lo") is None:
        return f"{iv['mean']:.4f}"
    return f"{iv['mean']:.4f} [{iv['lo']:.4f}, {iv['hi']:.4f}]"


def _controls(found: dict) -> list[str]:
    """Every control every arm trained, each judged on its own: the short-only controls
    by the control check (level and shape), the others on far_loss and far_excess."""
    lines = ["## Every control", ""]
    for arm, summ in (found.get("arms") or {}).items():
        c = summ.get("controls") or {}
        every = c.get("every") or []
        judged = {e["negative"] for e in every}
        lines.append(
            f"- `{arm}` arm: the sweep sees {c['sees']}."
            if c.get("sees")
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
    from sweep.run.calibrate import seeds_needed

    c = (found.get("btlm") or {}).get("controls") or {}
    sees = c.get("sees")
    if sees in (None, "extrapolation"):
        return []
    key = c.get("excess_key") or "own_excess"
    crit = {
        f"the control's {key}": c.get(key),
        "the reference's context_use": c.get("reference_context_use"),
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
        + f". So every finding below is on level, not on extrapolation. {ask} "
        "`configs/study-gpu.yaml` is the same study on a proxy sized for one GPU "
        "(14M parameters, BPE tokens, l_max 1,024).",
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
    m, b, e, s = spec.model, spec.budget, spec.eval, spec.schedules
    lines = [
        "## Setup",
        "",
        f"- Model: btlm-proxy ({m.position}, SwiGLU, muP base width {m.mup_base_width}), "
        f"d_model {m.d_model}, {m.n_layers} layers, {m.n_heads} heads; "
        f"precision {spec.deepspeed.precision} (DeepSpeed ZeRO-{spec.deepspeed.zero_stage}).",
        f"- Data: `{spec.data.corpus}` corpus, `{spec.data.tokenizer}` tokenizer; "
        f"{spec.data.repeat_share:.0%} of documents carry a copied span "
        f"(span {spec.data.repeat_span}, up to {spec.data.repeat_max_distance} tokens back).",
        f"- Budget: {b.tokens:,} tokens per trial, {b.tokens_per_step:,} tokens per step "
        f"(every schedule trains the same tokens); l_max {s.l_max}, l_min {s.l_min}.",
        f"- Evaluation: {e.sequences} held-out windows of E = {e.multiple} x l_max = "
        f"{e.length(s.l_max):,} tokens, the same windows for every trial of every arm; "
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


def _reproduces(level: bool, a: dict) -> str:
    """BTLM's finding is about shape: "reproduces" only when the arm's control check sees
    extrapolation (the control's own_excess and the reference's context_use > 0 beyond
    their intervals); worse past l_max alone is a reproduction on level only."""
    if not level:
        return "does NOT reproduce"
    sees = (a.get("controls") or {}).get("sees")
    return "reproduces" if sees == "extrapolation" else "reproduces on level only"


def _shape_words(a: dict) -> str:
    c = a.get("controls") or {}
    if c.get("sees") is None or c.get("excess_key") is None:
        return (
            "; on shape it was not measured (records from before the shape metrics: no "
            "own_excess, no context_use), so this is a finding on level only"
        )
    key = c["excess_key"]
    return (
        f"; on shape, its {key} is {_iv(c.get(key))} and the reference's context_use "
        f"{_iv(c.get('reference_context_use'))} (the sweep sees {c['sees']})"
    )


def _schedule_row(found: dict, label: str | None) -> dict:
    """The first arm's row of schedule ``label`` in the findings' tables ({} when none)."""
    rows = (r for arm in (found.get("schedules") or {}).values() for r in arm)
    return next((r for r in rows if r["schedule"] == label), {})


def _own(found: dict, label: str | None) -> str:
    """A schedule's longest trained length, as its record says (e.g. "32 tokens")."""
    own = _schedule_row(found, label).get("own_length")
    return f"{own} tokens" if own else "its short length"


def _reproduce_btlm(found: dict, study: Study) -> list[str]:
    a = found.get("btlm", {})
    f = study.findings
    neg, btlm, ref = f.get("negative"), f.get("btlm"), found.get("reference")
    nr, nb, br = (
        a.get("negative_vs_reference", {}),
        a.get("negative_vs_btlm", {}),
        a.get("btlm_vs_reference", {}),
    )
    keys = ["id_loss", "far_loss", *found.get("bands", []), "ctx_gain"]
    top = found["bands"][-1].removeprefix("far_x") if found.get("bands") else "?"
    lines = [
        f"## (a) Short-only training against two stages and constant at {top}x l_max (BTLM)",
        "",
        f"BTLM: a model trained at 2,048 only does not extrapolate well; two stages (75% of "
        f"tokens at l_max/4, then l_max) do. Here `{neg}` trains at {_own(found, neg)} "
        f"throughout, `{btlm}` is BTLM's schedule, `{ref}` trains at l_max throughout.",
        "",
        f"- `{neg}` - `{ref}`, far_loss: {_said(nr)}.",
        f"- `{neg}` - `{btlm}`, far_loss: {_said(nb)}.",
        f"- `{btlm}` - `{ref}`, far_loss: {_said(br)}; id_loss {_row_iv(br, 'id_loss')}.",
        f"- The sweep's own control check: {a.get('controls', {}).get('summary', 'n/a')}.",
        "",
    ]
    rows = [
        [f"`{k}`", _row_iv(nr, k), _row_iv(nb, k), _row_iv(br, k)]
        for k in keys
        if k in nr or k in br
    ]
    lines += _table(["metric", f"{neg} - {ref}", f"{neg} - {btlm}", f"{btlm} - {ref}"], rows)
    level = reading(nr.get("far_loss")) == "worse" and reading(nb.get("far_loss")) == "worse"
    word = _reproduces(level, a)
    lines += [
        "Reading: "
        + (
            f"{word.replace('reproduces', 'reproduced')} at this scale: short-only training "
            "is worse past l_max than both two stages and constant, each interval excluding "
            f"zero{_shape_words(a)}."
            if level
            else "NOT reproduced at this scale with intervals excluding zero; the sweep's "
            "control check above says what it lacks."
        )
        + _past_l_max(found, neg),
        "",
    ]
    return lines


def _past_l_max(found: dict, neg: str | None) -> str:
    """Where the control's deficit grows: past its own length only, or past l_max too
    (BTLM's finding is about the latter). far_excess is its rise from near l_max to past
    l_max against the reference's; ~0 means the deficit is flat past l_max."""
    fe = _schedule_row(found, neg).get("far_excess")
    if not fe or fe.get("lo") is None:
        return ""
    if fe["lo"] > 0:
        return f" Past l_max its deficit keeps growing: far_excess {_iv(fe)}."
    return (
        f" Past l_max its deficit does not grow: far_excess {_iv(fe)} (the same gap in "
        "every far band, table above), so where it rises is between its own trained length "
        "and l_max (own_excess), not past l_max."
    )


def _reproduce_press(found: dict, study: Study) -> list[str]:
    rope = found.get("rope")
    if not rope:
        return ["## (b) ALiBi against rotary positions past l_max", "", "Not run.", ""]
    keys = ["id_loss", *found.get("bands", []), "far_loss"]
    rows = [[f"`{lab}`", *(_row_iv(d, k) for k in keys)] for lab, d in rope.items()]
    far = {lab: reading(d.get("far_loss")) for lab, d in rope.items()}
    idl = {lab: reading(d.get("id_loss")) for lab, d in rope.items()}
    lines = [
        "## (b) ALiBi against rotary positions past l_max (Press et al.)",
        "",
        "Each schedule trained again with rotary positions (`rope` arm; same data, seeds "
        "and evaluation windows), paired with its ALiBi trial: rope minus alibi, positive "
        "means rotary is worse.",
        "",
        *_table(["schedule", *keys], rows),
        "Past l_max rotary is "
        + ", ".join(f"{far[lab]} (`{lab}`)" for lab in far)
        + "; within l_max (id_loss) it is "
        + ", ".join(f"{idl[lab]} (`{lab}`)" for lab in idl)
        + ". "
        + _growth(rope, found.get("bands", [])),
        "",
        "Reading: "
        + (
            "reproduced at this scale: rotary positions are worse than ALiBi past l_max "
            "for every schedule, each interval excluding zero."
            if far and all(v == "worse" for v in far.values())
            else "NOT reproduced for every schedule at this scale (see the rows above)."
        ),
        "",
    ]
    return lines


def _growth(rope: dict, band_keys: list[str]) -> str:
    """How rotary's deficit moves with the distance past l_max: the nearest band against
    the farthest (seed means; each band's interval is in the table)."""
    if len(band_keys) < 2:
        return ""
    first, last = [], []
    for d in rope.values():
        a, b = ((d.get(k) or {}).get("mean") for k in (band_keys[0], band_keys[-1]))
        if a is not None and b is not None:
            first.append(a)
            last.append(b)
    if not first:
        return ""
    lo, hi = band_keys[0].removeprefix("far_x"), band_keys[-1].removeprefix("far_x")
    wider = sum(b > a for a, b in zip(first, last))
    return (
        f"The deficit averages {sum(first) / len(first):+.3f} nats up to {lo} x l_max and "
        f"{sum(last) / len(last):+.3f} up to {hi} x l_max; larger in the farthest band "
        f"than in the nearest for {wider} of {len(first)} schedules."
    )


def _ramp_against_two_stages(found: dict, study: Study) -> list[str]:
    c = found.get("ramp_vs_btlm", {})
    btlm = study.findings.get("btlm")
    best = c.get("best")
    dec = c.get("decided") or {}
    several = len(c.get("main") or {}) > 1
    lines = [
        "## (c) A steady ramp against two stages (the open question)",
        "",
        f"Every increasing ramp of the main arm minus `{btlm}` (negative: the ramp is better), "
        + (
            f"best far_loss first. The best, `{best}`, was chosen on these same trials, so "
            "its own row is optimistic (a winner among several); only fresh trials of "
            "another arm whose own control held are free of that selection."
            if several
            else "one ramp, so no selection is involved."
        ),
        "",
    ]
    if dec.get("by_ramp"):
        lines += [
            f"Each comparison is one of four outcomes at the equivalence margin "
            f"±{dec['margin']:.4f} nats ({c.get('margin_source', '')}): better (interval "
            "wholly below -margin), equivalent (wholly inside ±margin, TOST), worse, or "
            f"inconclusive. {dec['correction']} (family-wise 95%).",
            "",
        ]
    head = ["ramp", "far_loss - two_stage (95%)", "outcome (family-wise)", "id_loss - two_stage"]
    rows = [
        [
            f"`{r}`",
            _row_iv(d, "far_loss"),
            _outcome_words(dec["by_ramp"][r]) if r in dec.get("by_ramp", {}) else "n/a",
            _row_iv(d, "id_loss"),
        ]
        for r, d in (c.get("main") or {}).items()
    ]
    lines += _table(head, rows)
    wide = c.get("wide") or {}
    blind = found.get("blind_arms", [])
    failed = " Its own negative control failed, so it confirms nothing."
    if wide:
        arm = study.findings.get("wide_arm")
        lines += [
            f"At the second width (`{arm}` arm, fresh trials):" + (failed if arm in blind else ""),
            "",
            *_table(
                ["ramp", "far_loss - two_stage", "reading", "id_loss - two_stage"], _ramp_rows(wide)
            ),
        ]
    win = c.get("window")
    if win:
        vb, vr = win["vs_btlm"], win["vs_reshape"]
        lines += [
            f"In window mode (`{win['label']}`: rows of l_max, attention limited to the "
            f"schedule's length, SkyLadder's way): minus `{btlm}` far_loss "
            f"{_row_iv(vb, 'far_loss')} ({reading(vb.get('far_loss'))}); minus the same ramp "
            f"reshaped {_row_iv(vr, 'far_loss')} ({reading(vr.get('far_loss'))})."
            + (failed if study.findings.get("window_arm") in blind else ""),
            "",
        ]
    main_best = c.get("main", {}).get(best, {})
    wide_best = wide.get(best, {})
    said = {
        "better": "better than",
        "worse": "worse than",
        "not told apart": "not told apart from",
    }

    def vs(d: dict) -> str:
        s = reading(d.get("far_loss"))
        return f"{said.get(s, s + ' against')} two stages"

    j = (dec.get("by_ramp") or {}).get(best)
    side = reading(main_best.get("far_loss"))
    if j and j["outcome"] == "equivalent" and side in ("better", "worse"):
        # the interval excludes zero but lies inside the margin: a real difference too
        # small to matter at this margin, never "better" without that qualification
        main = (
            f"{'lower' if side == 'better' else 'higher'} than two stages in the main arm, "
            f"its interval excluding zero, but by less than the margin "
            f"±{dec['margin']:.4f}: equivalent at the margin (family-wise)"
        )
    else:
        main = f"{vs(main_best)} in the main arm" + (
            f" ({j['outcome']} at the margin, family-wise)" if j else ""
        )
    lines += [
        f"Reading: past l_max the best ramp `{best}` is {main}"
        + (f", and {vs(wide_best)} at the second width (fresh trials)." if wide_best else "."),
        "",
    ]
    return lines


def _transfer(found: dict, study: Study) -> list[str]:
    t = found.get("transfer")
    if not t:
        return ["## Width transfer", "", "The width arm has not run.", ""]
    wide = study.findings.get("wide_arm")
    main_spec = study.arm_spec(study.main, [])
    rows = [[f"`{lab}`", _f(t["gain_a"][lab]), _f(t["gain_b"][lab])] for lab in t["labels"]]
    rho = "n/a" if t["rho"] is None else f"{t['rho']:+.2f} [{t['lo']:+.2f}, {t['hi']:+.2f}]"
    picks = t.get("picks", {})
    same = t["best_a"] == t["best_b"]
    return [
        "## Width transfer",
        "",
        f"The reference, two stages, the two best ramps and the negative control again at "
        f"d_model x2 (`{wide}` arm: muP base width {main_spec.model.mup_base_width} kept, "
        "the same tokens, not the same tokens per parameter). Gain = the schedule's far_loss "
        "minus the reference's at that width (seed means). The correlation is over the "
        f"candidate schedules only ({len(t['labels'])}): a control's large gap would make "
        "any ranking look transferred.",
        "",
        *_table(["schedule", f"gain at d_model {main_spec.model.d_model}", "gain at x2"], rows),
        f"- Spearman rank correlation of the gains across widths: {rho} "
        f"({t.get('method', '')}; {len(t['labels'])} schedules: the statistic takes few "
        "values).",
        f"- Best schedule among these at each width: `{t['best_a']}` and `{t['best_b']}`: "
        + ("**the same**." if same else "**different**."),
        f"- The negative control at the second width: "
        f"{found.get('arms', {}).get(wide, {}).get('controls', {}).get('summary', 'n/a')}.",
        f"- The sweeps' own picks: {study.main}: {', '.join(picks.get(study.main, [])) or 'none'}; "
        f"{wide}: {', '.join(picks.get(wide, [])) or 'none'}.",
        "",
    ]


def _cost(found: dict, command: str) -> list[str]:
    c = found.get("cost", {})
    rows = [
        [
            f"`{arm}`",
            f"{v['finished']}/{v['trials']}",
            f"{v['tokens'] / 1e6:,.1f}M",
            f"{v['flops'] / 1e12:,.1f}",
            f"{v['trial_wall_s'] / 60:,.1f}",
        ]
        for arm, v in c.get("arms", {}).items()
    ]
    tot = c.get("arms", {}).values()
    runs = c.get("runs", [])
    return [
        "## What it cost",
        "",
        *_table(["arm", "finished", "tokens trained", "TFLOPs", "trial minutes (sum)"], rows),
        f"In all {sum(v['tokens'] for v in tot) / 1e6:,.1f}M tokens and "
        f"{sum(v['flops'] for v in tot) / 1e12:,.0f} TFLOPs; wall time of the study "
        f"command: {c.get('wall_s', 0) / 60:.1f} min over {len(runs)} run(s) on this "
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
    what = {
        "rope_arm": "rotary positions against ALiBi (Press et al.)",
        "window_arm": "the best ramp in window mode (SkyLadder)",
        "wide_arm": "a second muP width (does the ranking transfer?)",
    }
    absent = [w for k, w in what.items() if study.findings.get(k) not in arms]
    if not absent:
        return []
    return [
        f"- Not run in this study: {'; '.join(absent)}. `configs/study-gpu.yaml` has those "
        "arms, at a scale sized for one GPU."
    ]


def _limits(study: Study, found: dict) -> list[str]:
    from sweep.run.orchestrate import non_embedding_params

    spec = study.arm_spec(study.main, [])
    n = non_embedding_params(spec.model)
    wide = study.findings.get("wide_arm") in found.get("arms", {})
    return [
        "## What this does not show",
        "",
        f"- Scale: a {n / 1e6:.2f}M-parameter (non-embedding) proxy trained on "
        f"{spec.budget.tokens / 1e6:.1f}M `{spec.data.tokenizer}` tokens of the "
        f"`{spec.data.corpus}` corpus, against BTLM's 2.6B parameters and 627B tokens. The "
        "findings are about this proxy"
        + (
            "; the width arm is the only evidence here of how they move with scale"
            if wide
            else "; nothing here says how they move with scale"
        )
        + " (configs/study-gpu.yaml is the next step: a 14M-parameter proxy, BPE tokens, "
        "l_max 1,024).",
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
    from sweep.report.figures import plot_study_bands, plot_study_curves, plot_transfer

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
    lines = [
        f"# Study `{study.name}`: does a steady context-length ramp beat two stages?",
        "",
        "Written by `sweep report` from the study's results; do not edit by hand.",
        "",
        "BTLM-3B-8K trained 470B tokens at 2,048 and then 157B at 8,192 with ALiBi; its "
        "2,048-only model does not extrapolate well, the two-stage model extrapolates to "
        "about 10k. Would increasing the context length steadily through training flatten "
        "the loss-versus-position curve further? This study asks the question of a small "
        "proxy, and checks first that the proxy reproduces what is already known"
        + (
            ", then that its answer holds at a second width."
            if study.findings.get("wide_arm") in study.arm_names
            else "."
        ),
        "",
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
