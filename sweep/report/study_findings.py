"""The study document's findings, a section each: the summary, (a) the short-only control
against two stages and the reference, (b) rotary against ALiBi, (c) a steady ramp against
two stages, and the width transfer. What a paper found, its citation and each section's
title and opening are the study file's words (``document:``, ``study_words.document_texts``);
the intervals, tables and readings are computed here."""

from __future__ import annotations

from sweep.analysis.controls import interval_text as _iv
from sweep.config.study_spec import Study
from sweep.report.study_words import (
    _against_two_stages,
    _heading,
    _join,
    _outcome_words,
    _para,
    _ramp_rows,
    _reproduces,
    _row_iv,
    _said,
    _schedule_row,
    _shape_words,
    _signed,
    _table,
    document_texts,
    reading,
)


def _summary(study: Study, found: dict) -> list[str]:
    """The answer first: each finding's reading in a sentence, from the same intervals
    as the sections below."""
    roles = study.findings
    btlm_found = found.get("btlm", {})
    nr = btlm_found.get("negative_vs_reference", {})
    nb = btlm_found.get("negative_vs_btlm", {})
    btlm_level = reading(nr.get("far_loss")) == "worse" and reading(nb.get("far_loss")) == "worse"
    rope = found.get("rope") or {}
    press_reproduced = bool(rope) and all(
        reading(d.get("far_loss")) == "worse" for d in rope.values()
    )
    best = found.get("ramp_vs_btlm", {}).get("best")
    transfer = found.get("transfer") or {}
    doc = document_texts(study, found)
    out = [
        "## Summary",
        "",
        f"- {_join(doc['control']['summary'], _reproduces(btlm_level, btlm_found))} here: "
        f"`{roles.get('negative')}` is worse past l_max than `{found.get('reference')}` "
        f"({_iv(nr.get('far_loss'))}) and than `{roles.get('btlm')}` ({_iv(nb.get('far_loss'))})"
        + _shape_words(btlm_found)
        + ".",
    ]
    if rope:
        word = "reproduces" if press_reproduced else "does NOT reproduce"
        out.append(
            f"- {_join(doc['positions']['summary'], word)}: rotary minus ALiBi past l_max is "
            + ", ".join(f"{_iv(d.get('far_loss'))} (`{k}`)" for k, d in rope.items())
            + "."
        )
    if best:
        out.append(_ramp_sentence(found, study))
    if transfer.get("rho") is not None:
        out.append(
            f"- {_join(doc['transfer']['summary'] + ':', 'Spearman')} {transfer['rho']:+.2f} "
            f"[{transfer['lo']:+.2f}, {transfer['hi']:+.2f}] over {len(transfer['labels'])} "
            "candidate schedules (controls left out); the best of them is "
            + ("the same" if transfer["best_a"] == transfer["best_b"] else "not the same")
            + f" at both widths (`{transfer['best_a']}`, `{transfer['best_b']}`)."
        )
    return [*out, ""]


def _ramp_sentence(found: dict, study: Study) -> str:
    """Finding (c) in a sentence: every ramp against two stages, four outcomes at the
    margin, the family's correction, and the fresh trials of an arm whose control held."""
    ramps = found.get("ramp_vs_btlm", {})
    decided = ramps.get("decided") or {}
    btlm = study.findings.get("btlm")
    label = document_texts(study, found)["ramp"]["summary"]
    if not decided.get("by_ramp"):
        return f"- {_join(label, 'No')} steady ramp could be compared with `{btlm}`."
    parts = [f"`{r}` {_outcome_words(judged)}" for r, judged in decided["by_ramp"].items()]
    selection = (
        " (one ramp: no selection)"
        if decided["comparisons"] == 1
        else f" (the best, `{ramps.get('best')}`, chosen on these trials)"
    )
    line = (
        f"- {_join(label, 'Steady')} ramp minus two stages (`{btlm}`) past l_max, at the margin "
        f"±{decided['margin']:.4f} nats ({ramps.get('margin_source', '')}; "
        f"{decided['correction']}): " + "; ".join(parts) + selection
    )
    wide = study.findings.get("wide_arm")
    wide_best = (ramps.get("wide") or {}).get(ramps.get("best"), {})
    if wide_best and wide not in found.get("blind_arms", []):
        line += (
            f"; on fresh trials at twice the width {_iv(wide_best.get('far_loss'))} "
            f"({reading(wide_best.get('far_loss'))})"
        )
    elif wide_best:
        line += f"; the `{wide}` arm's own control failed, so it confirms nothing"
    return line + "."


def _reproduce_btlm(found: dict, study: Study) -> list[str]:
    btlm_found = found.get("btlm", {})
    roles = study.findings
    neg, btlm, ref = roles.get("negative"), roles.get("btlm"), found.get("reference")
    nr, nb, br = (
        btlm_found.get("negative_vs_reference", {}),
        btlm_found.get("negative_vs_btlm", {}),
        btlm_found.get("btlm_vs_reference", {}),
    )
    keys = ["id_loss", "far_loss", *found.get("bands", []), "ctx_gain"]
    doc = document_texts(study, found)["control"]
    lines = [
        _heading(doc),
        "",
        *_para(doc["claim"]),
        f"- `{neg}` - `{ref}`, far_loss: {_said(nr)}.",
        f"- `{neg}` - `{btlm}`, far_loss: {_said(nb)}.",
        f"- `{btlm}` - `{ref}`, far_loss: {_said(br)}; id_loss {_row_iv(br, 'id_loss')}.",
        f"- The sweep's own control check: {btlm_found.get('controls', {}).get('summary', 'n/a')}.",
        "",
    ]
    rows = [
        [f"`{k}`", _row_iv(nr, k), _row_iv(nb, k), _row_iv(br, k)]
        for k in keys
        if k in nr or k in br
    ]
    lines += _table(["metric", f"{neg} - {ref}", f"{neg} - {btlm}", f"{btlm} - {ref}"], rows)
    level = reading(nr.get("far_loss")) == "worse" and reading(nb.get("far_loss")) == "worse"
    word = _reproduces(level, btlm_found)
    lines += [
        "Reading: "
        + (
            f"{word.replace('reproduces', 'reproduced')} at this scale: short-only training "
            "is worse past l_max than both two stages and constant, each interval excluding "
            f"zero{_shape_words(btlm_found)}."
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
    doc = document_texts(study, found)["positions"]
    if not rope:
        return [_heading(doc, ran=False), "", "Not run.", ""]
    keys = ["id_loss", *found.get("bands", []), "far_loss"]
    rows = [[f"`{lab}`", *(_row_iv(d, k) for k in keys)] for lab, d in rope.items()]
    far = {lab: reading(d.get("far_loss")) for lab, d in rope.items()}
    idl = {lab: reading(d.get("id_loss")) for lab, d in rope.items()}
    lines = [
        _heading(doc),
        "",
        *_para(doc["claim"]),
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
        near, far = ((d.get(k) or {}).get("mean") for k in (band_keys[0], band_keys[-1]))
        if near is not None and far is not None:
            first.append(near)
            last.append(far)
    if not first:
        return ""
    lo, hi = band_keys[0].removeprefix("far_x"), band_keys[-1].removeprefix("far_x")
    wider = sum(far > near for near, far in zip(first, last))
    return (
        f"The deficit averages {sum(first) / len(first):+.3f} nats up to {lo} x l_max and "
        f"{sum(last) / len(last):+.3f} up to {hi} x l_max; larger in the farthest band "
        f"than in the nearest for {wider} of {len(first)} schedules."
    )


def _ramp_against_two_stages(found: dict, study: Study) -> list[str]:
    """Finding (c): every ramp of the main arm against two stages, at the second width and
    in window mode when those arms ran, and the reading of the best ramp."""
    ramps = found.get("ramp_vs_btlm", {})
    btlm = study.findings.get("btlm")
    best = ramps.get("best")
    decided = ramps.get("decided") or {}
    several = len(ramps.get("main") or {}) > 1
    doc = document_texts(study, found)["ramp"]
    lines = [
        _heading(doc),
        "",
        *_para(doc["claim"]),
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
    if decided.get("by_ramp"):
        lines += [
            f"Each comparison is one of four outcomes at the equivalence margin "
            f"±{decided['margin']:.4f} nats ({ramps.get('margin_source', '')}): better "
            "(interval wholly below -margin), equivalent (wholly inside ±margin, TOST), worse, "
            f"or inconclusive. {decided['correction']} (family-wise 95%).",
            "",
        ]
    head = ["ramp", "far_loss - two_stage (95%)", "outcome (family-wise)", "id_loss - two_stage"]
    rows = [
        [
            f"`{r}`",
            _row_iv(d, "far_loss"),
            _outcome_words(decided["by_ramp"][r]) if r in decided.get("by_ramp", {}) else "n/a",
            _row_iv(d, "id_loss"),
        ]
        for r, d in (ramps.get("main") or {}).items()
    ]
    lines += _table(head, rows)
    lines += _other_arms_ramps(found, study)
    lines += [_best_ramp_reading(ramps), ""]
    return lines


def _other_arms_ramps(found: dict, study: Study) -> list[str]:
    """The ramps at the second width and in window mode, when those arms ran; an arm whose
    own negative control failed is said to confirm nothing."""
    ramps = found.get("ramp_vs_btlm", {})
    btlm = study.findings.get("btlm")
    wide = ramps.get("wide") or {}
    blind = found.get("blind_arms", [])
    failed = " Its own negative control failed, so it confirms nothing."
    lines = []
    if wide:
        arm = study.findings.get("wide_arm")
        lines += [
            f"At the second width (`{arm}` arm, fresh trials):" + (failed if arm in blind else ""),
            "",
            *_table(
                ["ramp", "far_loss - two_stage", "reading", "id_loss - two_stage"], _ramp_rows(wide)
            ),
        ]
    win = ramps.get("window")
    if win:
        vs_btlm, vs_reshape = win["vs_btlm"], win["vs_reshape"]
        said = document_texts(study, found)["ramp"]["window"]
        mode = f"`{win['label']}`" + (f": {said}" if said else "")
        lines += [
            f"In window mode ({mode}): minus `{btlm}` far_loss "
            f"{_row_iv(vs_btlm, 'far_loss')} ({reading(vs_btlm.get('far_loss'))}); minus the "
            f"same ramp reshaped {_row_iv(vs_reshape, 'far_loss')} "
            f"({reading(vs_reshape.get('far_loss'))})."
            + (failed if study.findings.get("window_arm") in blind else ""),
            "",
        ]
    return lines


def _best_ramp_reading(ramps: dict) -> str:
    """The best ramp's reading past l_max: in the main arm (with its outcome at the
    margin) and, when it ran, at the second width."""
    best = ramps.get("best")
    decided = ramps.get("decided") or {}
    main_best = ramps.get("main", {}).get(best, {})
    wide_best = (ramps.get("wide") or {}).get(best, {})
    judged = (decided.get("by_ramp") or {}).get(best)
    side = reading(main_best.get("far_loss"))
    if judged and judged["outcome"] == "equivalent" and side in ("better", "worse"):
        # the interval excludes zero but lies inside the margin: a real difference too
        # small to matter at this margin, never "better" without that qualification
        main = (
            f"{'lower' if side == 'better' else 'higher'} than two stages in the main arm, "
            f"its interval excluding zero, but by less than the margin "
            f"±{decided['margin']:.4f}: equivalent at the margin (family-wise)"
        )
    else:
        main = f"{_against_two_stages(main_best)} in the main arm" + (
            f" ({judged['outcome']} at the margin, family-wise)" if judged else ""
        )
    return f"Reading: past l_max the best ramp `{best}` is {main}" + (
        f", and {_against_two_stages(wide_best)} at the second width (fresh trials)."
        if wide_best
        else "."
    )


def _transfer(found: dict, study: Study) -> list[str]:
    transfer = found.get("transfer")
    doc = document_texts(study, found)["transfer"]
    if not transfer:
        return [_heading(doc, ran=False), "", "The width arm has not run.", ""]
    wide = study.findings.get("wide_arm")
    main_spec = study.arm_spec(study.main, [])
    labels, best_a, best_b = transfer["labels"], transfer["best_a"], transfer["best_b"]
    gain_a, gain_b = transfer["gain_a"], transfer["gain_b"]
    rows = [[f"`{lab}`", _signed(gain_a[lab]), _signed(gain_b[lab])] for lab in labels]
    rho = (
        "n/a"
        if transfer["rho"] is None
        else f"{transfer['rho']:+.2f} [{transfer['lo']:+.2f}, {transfer['hi']:+.2f}]"
    )
    picks = transfer.get("picks", {})
    same = best_a == best_b
    method = (
        "Gain = the schedule's far_loss minus the reference's at that width (seed means). The "
        f"correlation is over the candidate schedules only ({len(labels)}): a control's "
        "large gap would make any ranking look transferred."
    )
    return [
        _heading(doc),
        "",
        _join(doc["claim"], method),
        "",
        *_table(["schedule", f"gain at d_model {main_spec.model.d_model}", "gain at x2"], rows),
        f"- Spearman rank correlation of the gains across widths: {rho} "
        f"({transfer.get('method', '')}; {len(labels)} schedules: the statistic takes few "
        "values).",
        f"- Best schedule among these at each width: `{best_a}` and `{best_b}`: "
        + ("**the same**." if same else "**different**."),
        f"- The negative control at the second width: "
        f"{found.get('arms', {}).get(wide, {}).get('controls', {}).get('summary', 'n/a')}.",
        f"- The sweeps' own picks: {study.main}: {', '.join(picks.get(study.main, [])) or 'none'}; "
        f"{wide}: {', '.join(picks.get(wide, [])) or 'none'}.",
        "",
    ]
