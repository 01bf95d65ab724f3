"""Aggregator: reads only the results directory, recomputes every metric from the stored
per-sequence values, averages seeds, compares each schedule with the reference on the
same eval windows (paired intervals over seeds and documents), checks that the negative
control is told apart from the reference, and picks the schedules worth scaling.

The objective is far_loss, held-out loss past l_max (lower is better). delta and slope
describe the curve's shape and never decide anything."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from sweep.analysis import decision, metrics
from sweep.analysis.intervals import Interval, paired_interval
from sweep.analysis.records import read_record, write_json_atomic
from sweep.config.spec import FEW_HELD_OUT, MODES, NEGATIVE_CONTROL, RAMPS

EPSILON = 0.01  # nats of id_loss a pick may give up against the reference
CONFIRM_DIR = "confirm"  # the confirmation stage's own results directory, in a sweep's
DEFAULT_MARGIN = 0.01  # nats of far_loss, when no negative control sets the margin
LEVEL = 0.95  # family-wise: every comparison of a sweep together
OBJECTIVE = "far_loss"
PARETO_KEYS = ("id_loss", "far_loss", "flops")


class EmptyResults(ValueError):
    pass


@dataclass
class Trial:
    record: dict
    metrics: dict = field(default_factory=dict)
    # metric -> (unit ids, values): per eval document, what the intervals resample
    units: dict = field(default_factory=dict)
    # (edges, unit ids, per-document bin means): what the own_excess pairing reads
    bins: tuple | None = None

    @property
    def own_length(self) -> int | None:
        """The longest length the trial trained at (its own trained length)."""
        if self.record.get("own_length"):
            return int(self.record["own_length"])
        by_len = {int(k): v for k, v in (self.record.get("tokens_by_length") or {}).items()}
        return max((k for k, v in by_len.items() if v > 0), default=None)

    @property
    def id(self) -> str:
        return self.record["trial_id"]

    @property
    def status(self) -> str:
        return self.record.get("status", "?")

    @property
    def why(self) -> str:
        """Why a trial did not finish: a failure's error or a stopped trial's reason."""
        return str(self.record.get("error") or self.record.get("reason") or "")

    @property
    def role(self) -> str:
        return self.record.get("role", "candidate")


@dataclass
class Summary:
    sweep_dir: Path
    trials: list[Trial]
    skipped: list[dict]
    schedules: list[dict]
    reference: str
    picks: list[dict]
    verdict: str
    controls: dict = field(default_factory=dict)
    decision: Decision | None = None
    confirmation: dict | None = None

    @property
    def candidates(self) -> list[dict]:
        return self.decision.candidates if self.decision else []

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "finished"]

    @property
    def name(self) -> str:
        """The sweep's name from its spec (a copied or renamed directory keeps it)."""
        for t in self.trials:
            name = ((t.record.get("config") or {}).get("sweep") or {}).get("name")
            if name:
                return str(name)
        return self.sweep_dir.name

    def to_dict(self) -> dict:
        return {
            "sweep": self.name,
            "objective": OBJECTIVE,
            "reference": self.reference,
            "verdict": self.verdict,
            "sees": self.controls.get("sees"),
            "controls": self.controls,
            "picks": self.picks,
            "candidates": self.candidates,
            "decision": self.decision.to_dict() if self.decision else None,
            "confirmation": self.confirmation,
            "ranking": [
                {k: v for k, v in r.items() if not k.startswith("_")} for r in self.schedules
            ],
            "trials": [
                {
                    "trial_id": t.id,
                    "status": t.status,
                    "role": t.role,
                    "schedule": t.record.get("schedule"),
                    "seed": t.record.get("seed"),
                    "error": t.record.get("error"),
                    "tokens_trained": t.record.get("tokens_trained"),
                    "wall_s": t.record.get("wall_s"),
                    "metrics": t.metrics,
                }
                for t in self.trials
            ],
            "skipped": self.skipped,
        }


def _by_doc(values: np.ndarray, docs: list[str]) -> tuple[tuple, np.ndarray]:
    """Windows of the same document are not independent: average them per document, so
    the interval's unit is the document."""
    keys = sorted(set(docs))
    idx = {k: i for i, k in enumerate(keys)}
    sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
    np.add.at(sums, [idx[d] for d in docs], values)
    np.add.at(counts, [idx[d] for d in docs], 1)
    return tuple(keys), sums / counts


def trial_units(rec: dict) -> tuple[dict[str, float], dict[str, tuple]]:
    """Metrics and per-document values of one finished record, from its curve and its
    per-sequence values (never from its stored summary numbers, which could be stale)."""
    curve = np.asarray(rec["curve"], dtype=np.float64)
    l_max = int(rec["l_max"])
    if len(curve) != int(rec["eval_length"]) or len(curve) <= l_max:
        raise ValueError("curve length does not match eval_length")
    m = metrics.all_metrics(curve, l_max)
    m["flops"] = float(rec["metrics"]["flops"])
    per = rec.get("per_sequence") or {}
    n = len(per.get("far_loss", []))
    docs = (rec.get("eval_windows") or {}).get("doc") or [f"#{i}" for i in range(n)]
    sources = (rec.get("eval_windows") or {}).get("source") or ["natural"] * n
    if len(docs) != n:
        raise ValueError("eval_windows does not match per_sequence")
    units: dict[str, tuple] = {}
    for key, vals in per.items():
        if key in ("ctx_gain", "copy"):
            continue
        units[key] = _by_doc(np.asarray(vals, dtype=np.float64), docs)
    if "far_loss" in per:
        near = np.asarray(per["near_loss"])
        units["delta"] = _by_doc(np.asarray(per["far_loss"]) - near, docs)
        # each far band's rise over near_loss: paired against the reference's, far_excess
        for name, _, _ in metrics.bands(len(curve), l_max):
            if name in per:
                units[f"{name}_rise"] = _by_doc(np.asarray(per[name]) - near, docs)
    if per.get("context_use"):
        m["context_use"] = float(np.mean(per["context_use"]))
    if per.get("ctx_gain"):
        gain = np.asarray(per["ctx_gain"], dtype=np.float64)
        units["ctx_gain"] = _by_doc(gain, docs[: len(gain)])
        m["ctx_gain"] = float(gain.mean())
    if per.get("copy"):
        copy = np.asarray(per["copy"], dtype=np.float64)
        nat = [d for d, s in zip(docs, sources) if s == "natural"][: len(copy)]
        for j, dist in enumerate(rec.get("copy_distances", [])):
            units[f"copy_d{dist}"] = _by_doc(copy[:, j], nat)
            m[f"copy_d{dist}"] = float(copy[:, j].mean())
    by_len = rec.get("tokens_by_length") or {}
    m["tokens_at_l_max"] = float(by_len.get(str(l_max), 0))
    # Cost as trained: truncate trains fewer tokens than the budget, and wall time is what
    # the anchors' speed claims are about.
    for key in ("tokens_trained", "train_wall_s"):
        if _finite(rec.get(key)):
            m[key] = float(rec[key])
    if exposure_fractions(rec) is not None:
        exp = rec["exposure"]
        m["exposure_far"] = metrics.exposure_far(exp["edges"], exp["counts"], l_max)
    return m, units


def trial_bins(rec: dict) -> tuple | None:
    """The record's per-sequence position-bin means, averaged per document: (edges,
    document ids, (documents x bins) values); None for a record without them."""
    pb = rec.get("position_bins")
    if not pb:
        return None
    docs = (rec.get("eval_windows") or {}).get("doc") or [f"#{i}" for i in range(len(pb["values"]))]
    vals = np.asarray(pb["values"], dtype=np.float64)
    if len(docs) != len(vals):
        raise ValueError("position_bins does not match eval_windows")
    keys = sorted(set(docs))
    where = {k: i for i, k in enumerate(keys)}
    idx = np.array([where[d] for d in docs])
    sums = np.zeros((len(keys), vals.shape[1]))
    np.add.at(sums, idx, vals)
    counts = np.bincount(idx, minlength=len(keys))[:, None]
    return list(pb["edges"]), tuple(keys), sums / counts


def exposure_fractions(rec: dict) -> np.ndarray | None:
    """The record's position-exposure histogram as fractions of its trained query tokens
    (None for a record without one)."""
    counts = np.asarray((rec.get("exposure") or {}).get("counts") or [], dtype=np.float64)
    if not len(counts) or counts.sum() <= 0:
        return None
    return counts / counts.sum()


def load_trials(sweep_dir: Path) -> tuple[list[Trial], list[dict]]:
    """Every readable record; unreadable or malformed ones are reported, never fatal."""
    trials, skipped = [], []
    for path in sorted(Path(sweep_dir).glob("trials/*/record.json")):
        rec = read_record(path)
        if not isinstance(rec, dict) or "trial_id" not in rec or "status" not in rec:
            skipped.append({"path": str(path), "reason": "unreadable or incomplete record"})
            continue
        t = Trial(rec)
        if t.status == "finished":
            try:
                t.metrics, t.units = trial_units(rec)
                t.bins = trial_bins(rec)
            except (KeyError, TypeError, ValueError) as exc:
                skipped.append({"path": str(path), "reason": f"malformed record: {exc}"})
                continue
        trials.append(_compact(t))
    return trials, skipped


# A record's per-position series, held as packed doubles once loaded: as JSON-parsed lists
# of floats they take 32 bytes a value, 60% of a study record's memory (2,000 records:
# gigabytes). array.array keeps the list's behaviour the readers rely on (len, slices,
# truth, ==, np.asarray) at 8 bytes a value, with the same float64 values.
SERIES = ("curve", "curve_se", "ctx_gain_curve")


def _compact(t: Trial) -> Trial:
    """Pack the record's series and its flat per-sequence lists in place."""

    def pack(d: dict, keys) -> None:
        for key in keys:
            v = d.get(key)
            if isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
                d[key] = array("d", v)

    pack(t.record, SERIES)
    per = t.record.get("per_sequence")
    if isinstance(per, dict):
        pack(per, list(per))
    return t


def units_matrix(trials: list[Trial], key) -> np.ndarray | None:
    """(seeds x documents) values of ``key`` (a units name, or a function of a trial that
    gives (unit ids, values) or None), when every seed has them on the same units."""
    got = [key(t) if callable(key) else t.units.get(key) for t in trials]
    if not got or any(g is None for g in got) or len({g[0] for g in got}) != 1:
        return None
    return np.stack([g[1] for g in got])


def paired_matrix(a: list[Trial], b: list[Trial], key) -> np.ndarray | None:
    """(seeds x documents) differences a - b on ``key`` over the seeds both have."""
    sa, sb = {t.record["seed"]: t for t in a}, {t.record["seed"]: t for t in b}
    common = sorted(set(sa) & set(sb))
    ma = units_matrix([sa[s] for s in common], key)
    mb = units_matrix([sb[s] for s in common], key)
    if ma is None or mb is None or ma.shape != mb.shape:
        return None
    return ma - mb


def _paired(a: list[Trial], b: list[Trial], key) -> Interval | None:
    """Interval of a - b on ``key`` over the seeds both have, paired by document."""
    d = paired_matrix(a, b, key)
    return None if d is None else paired_interval(d)


def own_rise_units(own: int, l_max: int):
    """The function of a trial giving its per-document own_rise at length ``own`` (mean
    loss over (own, l_max] minus over (own / 2, own]), or None without the bins."""

    def get(t: Trial) -> tuple | None:
        if t.bins is None:
            return None
        edges, docs, vals = t.bins
        r = metrics.own_rise(vals, edges, own, l_max)
        return None if r is None else (docs, r)

    return get


INTERVAL_KEYS = ("id_loss", "far_loss", "ctx_gain", "context_use", "slope")


def schedule_rows(trials: list[Trial], reference: str) -> list[dict]:
    """One row per schedule: seed means, each with its own interval, and its paired
    difference from the reference (schedule minus reference) for every stored metric."""
    by_sched: dict[str, list[Trial]] = {}
    for t in trials:
        by_sched.setdefault(t.record["schedule"], []).append(t)
    ref = by_sched.get(reference)
    rows = []
    for name, ts in by_sched.items():
        row = {
            "schedule": name,
            "shape": ts[0].record["shape"],
            "ramp_rate": ts[0].record["ramp_rate"],
            "role": "reference" if name == reference else ts[0].role,
            "mode": ts[0].record.get("mode", "reshape"),
            # truncate trains fewer tokens than the budget: not a token-equal comparison
            "token_equal": bool(ts[0].record.get("token_equal", True)),
            "attention_kernel": ts[0].record.get("attention_kernel", "sdpa"),
            "seeds": len(ts),
            "trial_ids": [t.id for t in ts],
        }
        keys = [k for k in ts[0].metrics if all(k in t.metrics for t in ts)]
        for key in keys:
            row[key] = float(np.mean([t.metrics[key] for t in ts]))
        fracs = [f for f in map(exposure_fractions, (t.record for t in ts)) if f is not None]
        if fracs and len({len(f) for f in fracs}) == 1:
            row["exposure"] = {
                "edges": ts[0].record["exposure"]["edges"],
                "fractions": np.mean(fracs, axis=0).tolist(),
            }
        for key in INTERVAL_KEYS:
            mat = units_matrix(ts, key)
            if mat is not None:
                row[f"{key}_ci"] = paired_interval(mat).to_dict()
                if key == "context_use":  # a criterion of calibrate: what more seeds would do
                    row[f"{key}_ci"]["components"] = decision.variance_components(mat)
        if ref is not None and name != reference:
            row["vs_ref"] = {}
            for key in ts[0].units:
                d = paired_matrix(ts, ref, key)
                if d is not None:
                    row["vs_ref"][key] = paired_interval(d).to_dict()
                if d is not None and key == OBJECTIVE:  # what seeds_to_settle needs
                    row["vs_ref"][key]["components"] = decision.variance_components(d)
            _excess(row, ts, ref)
        rows.append(row)
    rows.sort(key=lambda r: (r["role"] == "control", _or_inf(r.get(OBJECTIVE))))
    return rows


def _excess(row: dict, ts: list[Trial], ref: list[Trial]) -> None:
    """The shape metrics of a schedule against the reference, each a paired interval:
    far_excess, (far_loss - near_loss) of the schedule minus the same of the reference
    (a difference in differences: ~0 for a uniformly worse model), per far band in
    far_excess_bands; and for a schedule trained only below l_max, own_excess, its rise
    from (L/2, L] to (L, l_max] past its own length L, minus the reference's same rise."""
    vs = row["vs_ref"]
    if "delta" in vs:
        row["far_excess"] = vs["delta"]
    row["far_excess_bands"] = {
        k.removesuffix("_rise"): v for k, v in vs.items() if k.endswith("_rise")
    }
    own, l_max = ts[0].own_length, int(ts[0].record["l_max"])
    row["own_length"] = own
    if own is not None and own < l_max:
        d = paired_matrix(ts, ref, own_rise_units(own, l_max))
        if d is not None:  # with its variance components: what more seeds would do
            comp = decision.variance_components(d)
            row["own_excess"] = paired_interval(d).to_dict() | {"components": comp}


def _or_inf(v) -> float:
    return float(v) if v is not None and math.isfinite(v) else math.inf


def pareto_front(rows: list[dict], keys=PARETO_KEYS) -> list[str]:
    """Schedules no other schedule beats on every key (all minimised)."""
    front = []
    for r in rows:
        dominated = any(
            all(o[k] <= r[k] for k in keys) and any(o[k] < r[k] for k in keys)
            for o in rows
            if o is not r
        )
        if not dominated:
            front.append(r["schedule"])
    return front


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
        f"{neg['schedule']} - {reference}: far_loss {_iv(far)} ({said[far_ok]}), "
        f"{excess_key} {_iv(excess)} ({said[excess_ok]}), "
        f"{reference} context_use {_iv(use)} ({used[use_ok]}), "
        f"ctx_gain {_iv(gain)} (reported, not required)"
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
        f"{c['negative']} {c['excess_key']} {_iv(c.get(c['excess_key']))}, "
        f"reference context_use {_iv(c.get('reference_context_use'))}"
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


def _iv(iv: dict | None) -> str:
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


@dataclass
class Decision:
    """What the pick rule concluded: picks (at least 2 seeds, better beyond the margin on
    a family-wise corrected interval), candidates to confirm (the rest that lean better),
    the verdict's words and how the comparisons were made."""

    picks: list[dict]
    candidates: list[dict]
    verdict: str
    margin: float | None = None
    margin_source: str = ""
    comparisons: int = 0
    level: float = LEVEL
    correction: str = ""
    head_to_head: dict | None = None  # the best ramp against two_stage and the reference
    stability: dict | None = None  # pairwise decision accuracy over seed halves

    def to_dict(self) -> dict:
        return {
            "margin": self.margin,
            "margin_source": self.margin_source,
            "comparisons": self.comparisons,
            "level": self.level,
            "correction": self.correction,
            "head_to_head": self.head_to_head,
            "stability": self.stability,
        }


def best_ramp(trials: list[Trial], rows: list[dict], reference: str, margin) -> dict | None:
    """The user's question answered directly: the ramp (a growing shape, not a control)
    with the lowest far_loss, against two_stage (BTLM's recipe) and against the reference,
    each as better / equivalent / worse / inconclusive at the margin on its paired 95%
    interval. The ramp was chosen on these trials (the lowest far_loss of several), so the
    comparison is optimistic for it; the verdict says so."""
    ramps = [r for r in rows if r["shape"] in RAMPS and r["role"] != "control"]
    if not ramps or margin is None:
        return None
    best = min(ramps, key=lambda r: _or_inf(r.get(OBJECTIVE)))
    by_sched: dict[str, list[Trial]] = {}
    for t in trials:
        by_sched.setdefault(t.record["schedule"], []).append(t)
    others = [r["schedule"] for r in rows if r["shape"] == "two_stage" and r["role"] != "control"]
    out: dict = {"ramp": best["schedule"], "of": len(ramps), "margin": margin, "versus": {}}
    words = []
    for other in [*others[:1], reference]:
        iv = _paired(by_sched[best["schedule"]], by_sched.get(other, []), OBJECTIVE)
        if iv is None or other == best["schedule"]:
            continue
        outcome = decision.classify(iv.lo, iv.hi, margin)
        out["versus"][other] = {**iv.to_dict(), "outcome": outcome}
        words.append(f"against {other} {_iv(iv.to_dict())}, {outcome}")
    if not words:
        return None
    out["summary"] = (
        f"best ramp {best['schedule']} (lowest far_loss of {len(ramps)} ramps, chosen on these "
        f"trials): " + "; ".join(words) + f" (paired 95%, margin {margin:.4f})"
    )
    return out


def stability(trials: list[Trial], rows: list[dict]) -> dict | None:
    """Pairwise decision accuracy (DataDecide 2025): over many splits of the seeds into
    halves, the share of schedule pairs (controls left out) that both halves order the
    same way on far_loss. Needs at least 4 seeds common to the schedules compared."""
    names = [r["schedule"] for r in rows if r["role"] != "control"]
    per: dict[str, dict] = {n: {} for n in names}
    for t in trials:
        if t.record["schedule"] in per and OBJECTIVE in t.metrics:
            per[t.record["schedule"]][t.record["seed"]] = t.metrics[OBJECTIVE]
    common = sorted(set.intersection(*(set(v) for v in per.values()))) if per else []
    if len(common) < 4 or len(names) < 2:
        return None
    values = np.array([[per[n][s] for s in common] for n in names])
    return {**decision.decision_stability(values), "seeds": len(common), "schedules": names}


def decision_margin(margin: float | None, controls: dict) -> tuple[float, str]:
    """The equivalence margin in nats and where it comes from: the spec's
    ``decision.margin``; else half the negative control's far_loss gap when the control is
    told apart on level (a schedule that moves far_loss by less than half of what never
    training long costs is not worth a full run); else DEFAULT_MARGIN."""
    if margin is not None:
        return float(margin), "decision.margin"
    far = controls.get("far_loss") or {}
    if controls.get("far_separated") and far.get("mean") and far["mean"] > 0:
        return far["mean"] / 2, f"half the negative control's far_loss gap {far['mean']:+.4f}"
    return DEFAULT_MARGIN, f"the default {DEFAULT_MARGIN} (no negative control told apart)"


def decide(
    rows: list[dict],
    reference: str,
    controls: dict,
    epsilon: float = EPSILON,
    margin: float | None = None,
    level: float = LEVEL,
) -> Decision:
    """The pick rule. Every candidate (not the reference, not a control, not in a mode
    whose own control was blind) with a far_loss interval is compared with the reference;
    with m such comparisons each interval is widened to the Bonferroni level
    1 - (1 - level) / m and read as better / equivalent / worse / inconclusive at
    ``margin`` (``decision.classify``). A pick is better, on the Pareto front of
    (id_loss, far_loss, flops), at most ``epsilon`` worse on id_loss, and measured on at
    least 2 seeds: one seed measures no seed noise, so what would be a pick is a
    candidate to confirm. Nothing when the negative control was not told apart."""
    ref = next((r for r in rows if r["schedule"] == reference), None)
    if ref is None:
        why = f"no pick: the reference schedule {reference!r} has no finished trial"
        return Decision([], [], why)
    by_mode = controls.get("by_mode") or {}
    # A mode whose own control was not told apart cannot vouch for its candidates (nor
    # push others off the front).
    blind = sorted(m for m, c in by_mode.items() if c["discriminates"] is False)
    ranked = [r for r in rows if r["role"] != "control"]
    eligible = [r for r in ranked if r.get("mode", "reshape") not in blind]
    front = set(pareto_front(eligible or ranked))
    for r in rows:
        r["pareto"] = r["schedule"] in front
    if controls.get("discriminates") is False and len(blind) == len(by_mode):
        return Decision([], [], f"underpowered, no pick: {controls['summary']}")
    margin, source = decision_margin(margin, controls)
    compared = [
        r
        for r in eligible
        if r is not ref and (r.get("vs_ref", {}).get(OBJECTIVE) or {}).get("hi") is not None
    ]
    m = len(compared)
    sim = decision.simultaneous_level(level, max(m, 1))
    correction = (
        f"{m} comparison(s) with {reference}, Bonferroni: each interval at {100 * sim:.4g}%"
    )
    picks, candidates, too_costly, outcomes = [], [], [], {}
    for r in compared:
        far = r["vs_ref"][OBJECTIVE]
        r["decision"], settle = _judge(far, level, sim, margin)
        outcome, (lo, hi) = r["decision"]["outcome"], r["decision"]["interval"]
        outcomes.setdefault(outcome, []).append(r["schedule"])
        id_cost = r["id_loss"] - ref["id_loss"]
        leans = outcome == "better" or (outcome == "inconclusive" and far["mean"] < 0)
        if not leans:
            continue
        if id_cost > epsilon:
            too_costly.append(f"{r['schedule']} (+{id_cost:.4f})")
            continue
        if not r["pareto"]:
            continue
        entry = {
            "schedule": r["schedule"],
            "outcome": outcome,
            "far_gain": -far["mean"],
            "far_interval": [lo, hi],
            "id_cost": id_cost,
            "seeds": r["seeds"],
            "level": sim,
        }
        if outcome == "better" and r["seeds"] >= 2:
            entry["rationale"] = _rationale(r, ref, reference, entry, margin, epsilon)
            picks.append(entry)
        else:
            entry["to_confirm"] = _to_confirm(r, outcome, settle, margin)
            candidates.append(entry)
    candidates.sort(key=lambda c: -c["far_gain"])
    verdict = _verdict(picks, candidates, too_costly, outcomes, reference, controls, blind, epsilon)
    verdict += f"; {correction}; margin {margin:.4f} nats ({source})"
    return Decision(picks, candidates, verdict, margin, source, m, sim, correction)


def _judge(far: dict, level: float, sim: float, margin: float) -> tuple[dict, int | str | None]:
    """One comparison with the reference: its interval at the simultaneous level, its
    outcome at the margin, and the seeds that would likely settle it ("unknown" when the
    interval came without its variance components)."""
    lo, hi = decision.rescale(far, level, sim)
    comp = far.get("components")
    settle = decision.seeds_to_settle(far["mean"], comp, margin, sim) if comp else "unknown"
    judged = {
        "outcome": decision.classify(lo, hi, margin),
        "interval": [lo, hi],
        "level": sim,
        "margin": margin,
        "seeds_to_settle": settle if isinstance(settle, int) else None,
    }
    return judged, settle


def _rationale(r: dict, ref: dict, reference: str, e: dict, margin: float, eps: float) -> str:
    lo, hi = e["far_interval"]
    return (
        f"{r['schedule']} is on the Pareto front of (id_loss, far_loss, flops); its far_loss "
        f"{r['far_loss']:.4f} nats beats the reference {reference} ({ref['far_loss']:.4f}) "
        f"by {e['far_gain']:.4f}, interval of the difference [{lo:+.4f}, {hi:+.4f}] at "
        f"{100 * r['decision']['level']:.4g}% (family-wise 95%; "
        f"{r['vs_ref'][OBJECTIVE]['method']}), wholly below -{margin:.4f}; its id_loss "
        f"{r['id_loss']:.4f} is {e['id_cost']:+.4f} nats from the reference (limit +{eps}); "
        f"{r['seeds']} seeds; it costs {r['flops'] / ref['flops']:.2f}x the reference FLOPs."
    )


def _to_boundary(mean: float, margin: float) -> float:
    """How far a difference lies from the nearer of -margin and +margin: what an interval's
    half-width must fall below for the comparison to settle."""
    return min(abs(mean + margin), abs(mean - margin))


def _to_confirm(r: dict, outcome: str, settle, margin: float) -> str:
    """What confirming a candidate takes."""
    if r["seeds"] < 2:
        return "retrain on at least 2 fresh seeds: one seed measures no seed noise"
    if outcome == "better":
        return "better beyond the margin; confirm on fresh seeds"
    if settle == "unknown":
        return "more seeds (the variances behind the interval are not recorded)"
    if settle is not None:
        return f"about {settle} seeds would likely settle it (from the measured variances)"
    gap = _to_boundary(r["vs_ref"][OBJECTIVE]["mean"], margin)
    return (
        f"not within 64 seeds at the measured variances: its difference lies {gap:.4f} nats "
        f"from the margin's edge (±{margin:.4f}), so only a much narrower interval settles "
        "it (more eval windows and seeds)"
    )


def _verdict(picks, candidates, too_costly, outcomes, reference, controls, blind, eps) -> str:
    power = "" if controls.get("discriminates") else f" ({controls['summary']})"
    if blind:
        power = (
            f" (mode(s) {', '.join(blind)} left out: their control was not told apart; "
            f"{controls['summary']})"
        )
    parts = []
    if picks:
        parts.append(
            f"{len(picks)} pick(s) worth scaling: {', '.join(p['schedule'] for p in picks)}"
        )
    else:
        parts.append("no pick")
    if candidates:
        one_seed = any(c["seeds"] < 2 for c in candidates)
        parts.append(
            ("one seed: " if one_seed else "")
            + "candidates to confirm: "
            + ", ".join(
                f"{c['schedule']} ({-c['far_gain']:+.4f} [{c['far_interval'][0]:+.4f}, "
                f"{c['far_interval'][1]:+.4f}] at {100 * c['level']:.4g}%, {c['outcome']}: "
                f"{c['to_confirm']})"
                for c in candidates
            )
        )
    if too_costly:
        parts.append(
            f"{', '.join(too_costly)} lean better past l_max but lose more than "
            f"{eps} nats of id_loss"
        )
    counts = ", ".join(f"{len(outcomes[o])} {o}" for o in decision.OUTCOMES if o in outcomes)
    if counts:
        parts.append(f"against {reference}: {counts}")
    return "; ".join(parts) + power


def aggregate(sweep_dir: Path, reference: str | None = None) -> Summary:
    sweep_dir = Path(sweep_dir)
    trials, skipped = load_trials(sweep_dir)
    if not trials:
        raise EmptyResults(
            f"{sweep_dir}: no trial records found (is this a sweep's results directory?)"
        )
    if reference is None:
        reference = _reference_from_dir(trials)
    rows = schedule_rows([t for t in trials if t.status == "finished"], reference)
    controls = check_controls(rows, reference) if rows else {}
    if rows:
        margin = _spec_value(trials, "decision", "margin")
        dec = decide(rows, reference, controls, margin=margin)
        finished = [t for t in trials if t.status == "finished"]
        dec.head_to_head = best_ramp(finished, rows, reference, dec.margin)
        dec.stability = stability(finished, rows)
        verdict = f"{sight(controls)}\n{dec.verdict}"
        if dec.head_to_head:
            verdict += "\n" + dec.head_to_head["summary"]
    else:
        why = "no pick: no finished trial"
        if all(t.status == "diverged" for t in trials):
            why += " (every trial diverged: lower optim.lr or raise optim.warmup_fraction)"
        dec = Decision([], [], why)
        verdict = dec.verdict
    kept = (trials[0].record.get("held_out_removed") or {}).get("kept")
    if isinstance(kept, int) and kept < FEW_HELD_OUT:
        verdict += (
            f"\nwarning: only {kept} held-out documents (fewer than {FEW_HELD_OUT}): the "
            "intervals over documents are wide; raise data.held_out_fraction or use a "
            "larger corpus"
        )
    confirmed = confirmation(sweep_dir, dec.picks or dec.candidates)
    if confirmed:
        verdict += "\n" + confirmed["summary"]
    return Summary(
        sweep_dir, trials, skipped, rows, reference, dec.picks, verdict, controls, dec, confirmed
    )


def confirmation(sweep_dir: Path, chosen: list[dict]) -> dict | None:
    """What the confirmation stage (``sweep confirm``: fresh seeds, selection-free) says of
    each schedule the sweep chose: "confirmed" when it is better than the reference there
    too (on at least 2 fresh seeds, at the selection stage's margin, corrected for the
    stage's own comparisons), "did not hold" when its fresh seeds are all in and it is
    not, "pending" while they are not. None without such a stage."""
    stage = Path(sweep_dir) / CONFIRM_DIR
    if not chosen or not (stage / "trials").is_dir():
        return None
    plan_path = stage / "confirm.yaml"
    plan = yaml.safe_load(plan_path.read_text()) if plan_path.is_file() else {}
    want = len(plan.get("seeds") or []) or 2
    try:
        s = aggregate(stage)
    except EmptyResults:
        return None
    rows = {r["schedule"]: r for r in s.schedules}
    out: dict = {"seeds": plan.get("seeds"), "schedules": {}}
    words = []
    for c in chosen:
        name, r = c["schedule"], rows.get(c["schedule"])
        far = (r or {}).get("vs_ref", {}).get(OBJECTIVE)
        d = (r or {}).get("decision") or {}
        if r is None or r["seeds"] < want or far is None:
            status = "pending"
        elif d.get("outcome") == "better" and r["seeds"] >= 2:
            status = "confirmed"
        else:
            status = "did not hold"
        lo, hi = d.get("interval") or (None, None)
        level = f"at {100 * d['level']:.4g}%" if d.get("level") else "at 95%"
        if lo is None and far is not None:  # the stage decided nothing: its own interval
            lo, hi = far.get("lo"), far.get("hi")
        out["schedules"][name] = {
            "status": status,
            "outcome": d.get("outcome"),
            "mean": far["mean"] if far else None,
            "interval": [lo, hi],
            "seeds": r["seeds"] if r else 0,
        }
        if far is None:
            words.append(f"{name} {status}")
        else:
            outcome = d.get("outcome") or "no decision: the stage is underpowered"
            words.append(
                f"{name} {status} ({far['mean']:+.4f} [{_f(lo)}, {_f(hi)}] {level}, {outcome})"
            )
    out["summary"] = (
        f"confirmation on fresh seeds {plan.get('seeds')} (selection-free): " + "; ".join(words)
    )
    if s.controls.get("negative") and not s.controls.get("discriminates"):
        out["summary"] += f" (the stage's own control was not told apart: {s.controls['summary']})"
    return out


def _f(x) -> str:
    return "?" if x is None else f"{x:+.4f}"


def _spec_value(trials: list[Trial], section: str, key: str):
    """A value of the sweep's spec as its records stored it (None when absent)."""
    for t in trials:
        sweep = (t.record.get("config") or {}).get("sweep") or {}
        return (sweep.get(section) or {}).get(key)
    return None


def _reference_from_dir(trials: list[Trial]) -> str:
    for t in trials:
        return (
            t.record.get("config", {})
            .get("sweep", {})
            .get("schedules", {})
            .get("reference", "constant")
        )
    return "constant"


def write_summary(summary: Summary) -> Path:
    path = summary.sweep_dir / "summary.json"
    write_json_atomic(path, summary.to_dict())
    return path


def _vs(r: dict, key: str) -> str:
    return _cell(r.get("vs_ref", {}).get(key))


TABLE_HEAD = (
    "rank",
    "schedule",
    "role",
    "seeds",
    "id_loss",
    "far_loss",
    "far - ref",
    "far_excess",
    "own_excess",
    "ctx_use",
    "slope",
    "at l_max",
    "tokens",
    "GFLOPs",
    "decision",
)


def _cell(iv: dict | None) -> str:
    """A paired interval as mean±half-width ('-' when not measured)."""
    if iv is None or iv.get("mean") is None:
        return "-"
    half = iv.get("half")
    return f"{iv['mean']:+.4f}" + (f"±{half:.4f}" if half is not None else "")


def table_rows(summary: Summary) -> list[list[str]]:
    """The ranking (lowest far_loss first, controls last) as cells of text."""
    picked = {p["schedule"] for p in summary.picks}
    cands = {c["schedule"] for c in summary.candidates}
    out = []
    for i, r in enumerate(summary.schedules, 1):
        outcome = (r.get("decision") or {}).get("outcome", "")
        mark = "PICK " if r["schedule"] in picked else "cand " if r["schedule"] in cands else ""
        out.append(
            [
                str(i),
                r["schedule"],
                r["role"],
                str(r["seeds"]),
                f"{r['id_loss']:.4f}",
                f"{r['far_loss']:.4f}",
                _vs(r, "far_loss"),
                _cell(r.get("far_excess")),
                _cell(r.get("own_excess")),
                _cell(r.get("context_use_ci")),
                f"{r['slope']:+.4f}" if _finite(r.get("slope")) else "-",
                f"{r.get('tokens_at_l_max', 0) / 1e3:.0f}k",
                (f"{r['tokens_trained'] / 1e3:.0f}k" if _finite(r.get("tokens_trained")) else "-")
                + ("" if r.get("token_equal", True) else "*"),
                f"{r['flops'] / 1e9:.1f}",
                (mark + outcome).strip(),
            ]
        )
    return out


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def format_table(summary: Summary) -> str:
    """The ranked table printed at the end of a sweep (lowest far_loss first)."""
    rows = [list(TABLE_HEAD), *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    for t in summary.trials:
        if t.status != "finished":
            lines.append(f"   -  {t.id:<20} {t.status}: {t.why}")
    unequal = [r["schedule"] for r in summary.schedules if not r.get("token_equal", True)]
    if unequal:
        lines.append(
            f"* token-unequal (truncate: rows cut to L, fewer tokens than the budget): "
            f"{', '.join(unequal)}"
        )
    if summary.controls.get("summary"):
        lines.append(f"controls: {summary.controls['summary']}")
    lines.append(summary.verdict)
    return "\n".join(lines)
