"""The negative controls: can the sweep tell a schedule that must fail from one that must
work, and on what (level or extrapolation)."""

from __future__ import annotations

import math

from sweep.config.fields import MODES
from sweep.config.shapes import NEGATIVE_CONTROL


def check_controls(rows: list[dict], reference: str) -> dict:
    """Can this sweep tell a schedule that must fail from one that must work, and on what?
    The negative control (short_only) is judged twice against the reference:

    - on level: its far_loss is worse beyond the paired 95% interval;
    - on shape: its deficit grows past its own trained length (own_excess, else
      far_excess, > 0 beyond the interval) while the reference still uses context up to
      l_max (the reference's context_use > 0 beyond its interval).

    ``sees`` is "extrapolation" when the shape leg holds, "level only" when only the level
    leg does, "nothing" when neither does (then ``discriminates`` is False). ctx_gain is
    reported, never required: an ALiBi model uses almost no context past l_max. With
    several modes there is one control per mode, each judged against the reference (of
    several in one mode, the one trained shortest): ``by_mode`` holds each verdict, the
    top-level fields are the reshape control's (else the first), ``discriminates`` is True
    only when every mode's control is told apart, and the sweep sees extrapolation only
    when every mode's control does. ``every`` holds every negative control's judgement."""
    negs = [r for r in rows if r["role"] == "control" and r["shape"] == NEGATIVE_CONTROL]
    if not negs:
        return {
            "negative": None,
            "discriminates": None,
            "sees": None,
            "by_mode": {},
            "summary": "no negative control in the spec (schedules.controls: [short_only]): "
            "whether this sweep can tell schedules apart is untested",
        }
    ref = next((r for r in rows if r["schedule"] == reference), None)
    by_mode: dict[str, dict] = {}
    order = {m: i for i, m in enumerate(MODES)}

    def key(r: dict) -> tuple:
        # per mode, the control trained shortest judges the sweep: the one that must fail
        # most clearly (short_only at l_min before short_only at l_max/4), fixed by the spec
        return order.get(r.get("mode", "reshape"), len(MODES)), r.get("own_length") or math.inf

    judged = [(neg, _control(neg, reference, ref)) for neg in sorted(negs, key=key)]
    for neg, c in judged:
        by_mode.setdefault(neg.get("mode", "reshape"), c)
    first = next(iter(by_mode.values()))  # reshape's when there is one: modes in order
    parts = [c["summary"] for c in by_mode.values()]
    # the advice once, from the first control not told apart (it reads alike for all)
    parts += [c["advice"] for c in by_mode.values() if c["advice"]][:1]
    every = [c["sees"] for c in by_mode.values()]
    discriminates = all(c["discriminates"] for c in by_mode.values())
    sees = (
        "extrapolation"
        if all(s == "extrapolation" for s in every)
        else "level only"
        if any(c["discriminates"] for c in by_mode.values())
        else "nothing"
    )
    return {
        **first,
        "discriminates": discriminates,
        "sees": sees,
        "by_mode": by_mode,
        "every": [c for _, c in judged],  # every negative control, each judged alike
        "summary": "; ".join(parts),
    }


def _above_zero(iv: dict | None) -> bool | None:
    """An interval wholly above zero (None: not measured)."""
    if iv is None or iv.get("mean") is None:
        return None
    return iv.get("lo") is not None and iv["lo"] > 0


def _control(neg: dict, reference: str, ref: dict | None) -> dict:
    vs = neg.get("vs_ref", {})
    far, gain = vs.get("far_loss"), vs.get("ctx_gain")
    far_ok = bool(_above_zero(far))
    excess_key = "own_excess" if neg.get("own_excess") else "far_excess"
    excess, use = neg.get(excess_key), (ref or {}).get("context_use_ci")
    excess_ok, use_ok = _above_zero(excess), _above_zero(use)
    shape_ok = None if excess_ok is None or use_ok is None else excess_ok and use_ok
    out = {
        "negative": neg["schedule"],
        "far_loss": far,
        "ctx_gain": gain,
        "far_separated": far_ok,
        excess_key: excess,
        "excess_key": excess_key,
        "excess_separated": excess_ok,
        "reference_context_use": use,
        "context_used": use_ok,
        "shape_separated": shape_ok,
        "sees": "extrapolation" if shape_ok else "level only" if far_ok else "nothing",
        "discriminates": far_ok or bool(shape_ok),
    }
    said = {True: "separated", False: "NOT separated", None: "not recorded"}
    used = {True: "> 0", False: "NOT > 0", None: "not recorded"}
    out["summary"] = (
        f"{neg['schedule']} - {reference}: far_loss {interval_text(far)} ({said[far_ok]}), "
        f"{excess_key} {interval_text(excess)} ({said[excess_ok]}), "
        f"{reference} context_use {interval_text(use)} ({used[use_ok]}), "
        f"ctx_gain {interval_text(gain)} (reported, not required)"
    )
    out["advice"] = "" if out["discriminates"] else _advice(far, neg["seeds"])
    return out


def sight(controls: dict) -> str:
    """The verdict's first line: what this sweep can see, and so what its picks are on."""
    sees = controls.get("sees")
    if sees is None:
        return "sight untested: no negative control, so nothing says what this sweep can see"
    c = controls
    shape = (
        f"{c['negative']} {c['excess_key']} {interval_text(c.get(c['excess_key']))}, "
        f"reference context_use {interval_text(c.get('reference_context_use'))}"
    )
    if sees == "extrapolation":
        return (
            f"sees extrapolation: the reference uses context up to l_max and the negative "
            f"control's deficit grows past its own trained length ({shape})"
        )
    if sees == "level only":
        why = (
            "its deficit grows past its own trained length, but the reference's use of "
            "context up to l_max is not established"
            if c.get("excess_separated") and not c.get("context_used")
            else "not because it extrapolates worse"
        )
        return (
            f"sees level only: the negative control is worse past l_max, {why} ({shape}: "
            "not both > 0 beyond their intervals); any pick below is on level (far_loss), "
            "not on extrapolation. Seeing extrapolation needs a proxy that uses its context "
            "up to l_max: more training tokens or seeds, a larger model, or long-range data "
            "(data.repeat_share)"
        )
    return "sees nothing: the negative control is not told apart from the reference"


def interval_text(iv: dict | None) -> str:
    if iv is None or iv.get("mean") is None:
        return "n/a"
    if iv.get("lo") is None:
        return f"{iv['mean']:+.4f} (no interval)"
    return f"{iv['mean']:+.4f} [{iv['lo']:+.4f}, {iv['hi']:+.4f}]"


def _advice(far: dict | None, seeds: int) -> str:
    """What to change when the negative control is not told apart."""
    wrong_way = far is not None and far.get("mean") is not None and far["mean"] <= 0
    if wrong_way:
        return (
            "the short-trained control is not worse past l_max at all: the proxy does not "
            "learn to use long context here; train more tokens (budget.tokens), a larger "
            "model, a BPE tokenizer (more context per token), or add long-range documents "
            "(data.repeat_share)"
        )
    return (
        "the control is worse but within the noise: add eval sequences (eval.sequences, "
        "eval.probe_sequences), seeds"
        + (" (one seed measures no seed noise)" if seeds < 2 else "")
        + ", or training tokens"
    )
