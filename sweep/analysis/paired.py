"""The statistics of a sweep's records: each finished trial's metrics and per-document
values, recomputed from its stored per-sequence values, and one row per schedule with seed
means, intervals and paired differences from the reference (same seeds, same documents)."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep.analysis import decision, metrics
from sweep.analysis.intervals import Interval, paired_interval
from sweep.analysis.records import TrialRecord, read_record

OBJECTIVE = "far_loss"


@dataclass
class Trial:
    """A trial as the statistics see it: its record, and for a finished one the metrics
    and per-document values recomputed from the record's stored per-sequence values."""

    record: TrialRecord
    metrics: dict = field(default_factory=dict)
    # metric -> (unit ids, values): per eval document, what the intervals resample
    units: dict = field(default_factory=dict)
    # (edges, unit ids, per-document bin means): what the own_excess pairing reads
    bins: tuple | None = None

    @property
    def own_length(self) -> int | None:
        """The longest length the trial trained at (its own trained length)."""
        return self.record.trained_length

    @property
    def id(self) -> str:
        return self.record.trial_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def why(self) -> str:
        """Why a trial did not finish: a failure's error or a stopped trial's reason."""
        return self.record.why

    @property
    def role(self) -> str:
        return self.record.role


def _by_doc(values: np.ndarray, docs: list[str]) -> tuple[tuple, np.ndarray]:
    """Windows of the same document are not independent: average them per document, so
    the interval's unit is the document."""
    keys = sorted(set(docs))
    idx = {k: i for i, k in enumerate(keys)}
    sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
    np.add.at(sums, [idx[d] for d in docs], values)
    np.add.at(counts, [idx[d] for d in docs], 1)
    return tuple(keys), sums / counts


def trial_units(rec: TrialRecord) -> tuple[dict[str, float], dict[str, tuple]]:
    """Metrics and per-document values of one finished record, from its curve and its
    per-sequence values (never from its stored summary numbers, which could be stale)."""
    if rec.curve is None or rec.l_max is None or rec.eval_length is None:
        raise ValueError("no curve, l_max or eval_length")
    curve = np.asarray(rec.curve, dtype=np.float64)
    l_max = int(rec.l_max)
    if len(curve) != int(rec.eval_length) or len(curve) <= l_max:
        raise ValueError("curve length does not match eval_length")
    m = metrics.all_metrics(curve, l_max)
    m["flops"] = float((rec.metrics or {})["flops"])
    per = rec.per_sequence or {}
    n = len(per.get("far_loss", []))
    docs = (rec.eval_windows or {}).get("doc") or [f"#{i}" for i in range(n)]
    sources = (rec.eval_windows or {}).get("source") or ["natural"] * n
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
        for j, dist in enumerate(rec.copy_distances or []):
            units[f"copy_d{dist}"] = _by_doc(copy[:, j], nat)
            m[f"copy_d{dist}"] = float(copy[:, j].mean())
    m["tokens_at_l_max"] = float(rec.tokens_at(l_max))
    # Cost as trained: truncate trains fewer tokens than the budget, and wall time is what
    # the anchors' speed claims are about.
    for key in ("tokens_trained", "train_wall_s"):
        if finite(getattr(rec, key)):
            m[key] = float(getattr(rec, key))
    if exposure_fractions(rec) is not None:
        exp = rec.exposure
        m["exposure_far"] = metrics.exposure_far(exp["edges"], exp["counts"], l_max)
    return m, units


def trial_bins(rec: TrialRecord) -> tuple | None:
    """The record's per-sequence position-bin means, averaged per document: (edges,
    document ids, (documents x bins) values); None for a record without them."""
    pb = rec.position_bins
    if not pb:
        return None
    docs = (rec.eval_windows or {}).get("doc") or [f"#{i}" for i in range(len(pb["values"]))]
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


def exposure_fractions(rec: TrialRecord) -> np.ndarray | None:
    """The record's position-exposure histogram as fractions of its trained query tokens
    (None for a record without one)."""
    counts = np.asarray((rec.exposure or {}).get("counts") or [], dtype=np.float64)
    if not len(counts) or counts.sum() <= 0:
        return None
    return counts / counts.sum()


def load_trials(sweep_dir: Path) -> tuple[list[Trial], list[dict]]:
    """Every readable record; unreadable or malformed ones are reported, never fatal."""
    trials, skipped = [], []
    for path in sorted(Path(sweep_dir).glob("trials/*/record.json")):
        rec = read_record(path)
        if rec is None:
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

    def packed(v: object) -> object:
        if isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
            return array("d", v)
        return v

    for key in SERIES:
        setattr(t.record, key, packed(getattr(t.record, key)))
    per = t.record.per_sequence
    if isinstance(per, dict):
        for key in per:
            per[key] = packed(per[key])
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
    sa, sb = {t.record.seed: t for t in a}, {t.record.seed: t for t in b}
    common = sorted(set(sa) & set(sb))
    ma = units_matrix([sa[s] for s in common], key)
    mb = units_matrix([sb[s] for s in common], key)
    if ma is None or mb is None or ma.shape != mb.shape:
        return None
    return ma - mb


def paired_difference(a: list[Trial], b: list[Trial], key) -> Interval | None:
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
        by_sched.setdefault(t.record.schedule, []).append(t)
    ref = by_sched.get(reference)
    rows = []
    for name, ts in by_sched.items():
        row = {
            "schedule": name,
            "shape": ts[0].record.shape,
            "ramp_rate": ts[0].record.ramp_rate,
            "role": "reference" if name == reference else ts[0].role,
            "mode": ts[0].record.mode or "reshape",
            # truncate trains fewer tokens than the budget: not a token-equal comparison
            "token_equal": ts[0].record.token_equal is not False,
            "attention_kernel": ts[0].record.attention_kernel or "sdpa",
            "seeds": len(ts),
            "trial_ids": [t.id for t in ts],
        }
        keys = [k for k in ts[0].metrics if all(k in t.metrics for t in ts)]
        for key in keys:
            row[key] = float(np.mean([t.metrics[key] for t in ts]))
        fracs = [f for f in map(exposure_fractions, (t.record for t in ts)) if f is not None]
        if fracs and len({len(f) for f in fracs}) == 1:
            row["exposure"] = {
                "edges": ts[0].record.exposure["edges"],
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
    rows.sort(key=lambda r: (r["role"] == "control", num_or_inf(r.get(OBJECTIVE))))
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
    own, l_max = ts[0].own_length, int(ts[0].record.l_max)
    row["own_length"] = own
    if own is not None and own < l_max:
        d = paired_matrix(ts, ref, own_rise_units(own, l_max))
        if d is not None:  # with its variance components: what more seeds would do
            comp = decision.variance_components(d)
            row["own_excess"] = paired_interval(d).to_dict() | {"components": comp}


def num_or_inf(v) -> float:
    """The value, or inf when missing or not finite: it then sorts last."""
    return float(v) if v is not None and math.isfinite(v) else math.inf


def finite(v) -> bool:
    """A number that is there and finite."""
    return v is not None and math.isfinite(v)
