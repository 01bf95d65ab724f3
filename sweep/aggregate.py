"""Aggregator: reads only the results directory, recomputes every metric from the stored
per-sequence values, averages seeds, compares each schedule with the reference on the
same eval windows (paired intervals over seeds and documents), checks that the negative
control is told apart from the reference, and picks the schedules worth scaling.

The objective is far_loss, held-out loss past l_max (lower is better). delta and slope
describe the curve's shape and never decide anything."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep import metrics
from sweep.intervals import Interval, paired_interval
from sweep.records import read_record, write_json_atomic
from sweep.spec import MODES, NEGATIVE_CONTROL

EPSILON = 0.01  # nats of id_loss a pick may give up against the reference
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

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "finished"]

    def to_dict(self) -> dict:
        return {
            "sweep": self.sweep_dir.name,
            "objective": OBJECTIVE,
            "reference": self.reference,
            "verdict": self.verdict,
            "controls": self.controls,
            "picks": self.picks,
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
        d = np.asarray(per["far_loss"]) - np.asarray(per["near_loss"])
        units["delta"] = _by_doc(d, docs)
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
            except (KeyError, TypeError, ValueError) as exc:
                skipped.append({"path": str(path), "reason": f"malformed record: {exc}"})
                continue
        trials.append(t)
    return trials, skipped


def units_matrix(trials: list[Trial], key: str) -> np.ndarray | None:
    """(seeds x documents) values of ``key``, when every seed has them on the same units."""
    got = [t.units.get(key) for t in trials]
    if not got or any(g is None for g in got) or len({g[0] for g in got}) != 1:
        return None
    return np.stack([g[1] for g in got])


def _paired(a: list[Trial], b: list[Trial], key: str) -> Interval | None:
    """Interval of a - b on ``key`` over the seeds both have, paired by document."""
    sa, sb = {t.record["seed"]: t for t in a}, {t.record["seed"]: t for t in b}
    common = sorted(set(sa) & set(sb))
    ma = units_matrix([sa[s] for s in common], key)
    mb = units_matrix([sb[s] for s in common], key)
    if ma is None or mb is None or ma.shape != mb.shape:
        return None
    return paired_interval(ma - mb)


INTERVAL_KEYS = ("id_loss", "far_loss", "ctx_gain")


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
        if ref is not None and name != reference:
            row["vs_ref"] = {}
            for key in ts[0].units:
                iv = _paired(ts, ref, key)
                if iv is not None:
                    row["vs_ref"][key] = iv.to_dict()
        rows.append(row)
    rows.sort(key=lambda r: (r["role"] == "control", _num(r.get(OBJECTIVE))))
    return rows


def _num(v) -> float:
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
    """Can this sweep tell a schedule that must fail from one that must work? The
    negative control (short_only) must be worse than the reference on far_loss and on
    ctx_gain, each beyond its paired 95% interval. With several modes there is one
    control per mode, each judged against the reference (for truncate and window,
    ``constant`` trains exactly as the reference): ``by_mode`` holds each verdict, the
    top-level fields are the reshape control's (else the first), and ``discriminates``
    is True only when every mode's control is told apart."""
    negs = [r for r in rows if r["role"] == "control" and r["shape"] == NEGATIVE_CONTROL]
    if not negs:
        return {
            "negative": None,
            "discriminates": None,
            "by_mode": {},
            "summary": "no negative control in the spec (schedules.controls: [short_only]): "
            "whether this sweep can tell schedules apart is untested",
        }
    by_mode: dict[str, dict] = {}
    order = {m: i for i, m in enumerate(MODES)}
    for neg in sorted(negs, key=lambda r: order.get(r.get("mode", "reshape"), len(MODES))):
        by_mode.setdefault(neg.get("mode", "reshape"), _control(neg, reference))
    first = next(iter(by_mode.values()))  # reshape's when there is one: modes in order
    parts = [c["summary"] for c in by_mode.values()]
    # the advice once, from the first control not told apart (it reads alike for all)
    parts += [c["advice"] for c in by_mode.values() if c["advice"]][:1]
    return {
        **first,
        "discriminates": all(c["discriminates"] for c in by_mode.values()),
        "by_mode": by_mode,
        "summary": "; ".join(parts),
    }


def _control(neg: dict, reference: str) -> dict:
    vs = neg.get("vs_ref", {})
    far, gain = vs.get("far_loss"), vs.get("ctx_gain")
    far_ok = far is not None and far["lo"] is not None and far["lo"] > 0
    # records without the probes (older ones) are judged on far_loss alone, and say so
    gain_ok = None if gain is None else gain["hi"] is not None and gain["hi"] < 0
    out = {
        "negative": neg["schedule"],
        "far_loss": far,
        "ctx_gain": gain,
        "far_separated": far_ok,
        "ctx_gain_separated": gain_ok,
        "discriminates": far_ok and gain_ok is not False,
    }
    said = {True: "separated", False: "NOT separated", None: "not recorded"}
    out["summary"] = (
        f"{neg['schedule']} - {reference}: far_loss {_iv(far)} ({said[far_ok]}), "
        f"ctx_gain {_iv(gain)} ({said[gain_ok]})"
    )
    out["advice"] = "" if out["discriminates"] else _advice(far, neg["seeds"])
    return out


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


def decide(
    rows: list[dict], reference: str, controls: dict, epsilon: float = EPSILON
) -> tuple[list[dict], str]:
    """The pick rule: a candidate (not the reference, not a control) on the Pareto front
    of (id_loss, far_loss, flops) whose far_loss beats the reference's beyond the paired
    95% interval and whose id_loss is at most ``epsilon`` worse; nothing when the
    negative control could not be told apart from the reference."""
    ref = next((r for r in rows if r["schedule"] == reference), None)
    if ref is None:
        return [], f"no pick: the reference schedule {reference!r} has no finished trial"
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
        return [], f"underpowered, no pick: {controls['summary']}"
    picks, within_noise, too_costly, worse = [], [], [], []
    for r in ranked:
        if r is ref or r.get("mode", "reshape") in blind:
            continue
        far = r.get("vs_ref", {}).get(OBJECTIVE)
        if far is None or far["hi"] is None:
            continue
        gain = -far["mean"]  # reference minus schedule: > 0 is better
        id_cost = r["id_loss"] - ref["id_loss"]
        if far["hi"] >= 0:  # not better beyond the interval
            (within_noise if gain > 0 else worse).append(r["schedule"])
            continue
        if id_cost > epsilon:
            too_costly.append(f"{r['schedule']} (+{id_cost:.4f})")
            continue
        if not r["pareto"]:
            continue
        picks.append(
            {
                "schedule": r["schedule"],
                "rationale": (
                    f"{r['schedule']} is on the Pareto front of (id_loss, far_loss, flops); "
                    f"its far_loss {r['far_loss']:.4f} nats beats the reference {reference} "
                    f"({ref['far_loss']:.4f}) by {gain:.4f}, paired 95% interval of the "
                    f"difference [{far['lo']:+.4f}, {far['hi']:+.4f}] ({far['method']}); "
                    f"its id_loss {r['id_loss']:.4f} is {id_cost:+.4f} nats from the "
                    f"reference (limit +{epsilon}); it costs "
                    f"{r['flops'] / ref['flops']:.2f}x the reference FLOPs."
                ),
                "far_gain": gain,
                "far_interval": [far["lo"], far["hi"]],
                "id_cost": id_cost,
            }
        )
    power = "" if controls.get("discriminates") else f" ({controls['summary']})"
    if blind:
        power = (
            f" (mode(s) {', '.join(blind)} left out: their control was not told apart; "
            f"{controls['summary']})"
        )
    if picks:
        return picks, f"{len(picks)} schedule(s) worth scaling{power}"
    reasons = []
    if too_costly:
        reasons.append(
            f"{', '.join(too_costly)} beat {reference} past l_max beyond the noise but lose "
            f"more than {epsilon} nats of id_loss"
        )
    if within_noise:
        reasons.append(
            f"{', '.join(within_noise)} have a lower far_loss than {reference}, within the "
            "paired 95% interval (add seeds or eval sequences)"
        )
    if worse:
        reasons.append(f"{len(worse)} schedule(s) have a far_loss no lower than {reference}")
    if not reasons:
        reasons.append(f"no schedule on the Pareto front beats {reference} on far_loss")
    return [], "no pick: " + "; ".join(reasons) + power


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
        picks, verdict = decide(rows, reference, controls)
    else:
        picks, verdict = [], "no pick: no finished trial"
    seeds = max((r["seeds"] for r in rows), default=0)
    if rows and seeds < 2:
        verdict += (
            "; one seed: the intervals cover eval-document noise only, not seed-to-seed "
            "noise (add seeds)"
        )
    return Summary(sweep_dir, trials, skipped, rows, reference, picks, verdict, controls)


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
    iv = r.get("vs_ref", {}).get(key)
    if iv is None or iv.get("mean") is None:
        return "-"
    half = iv.get("half")
    return f"{iv['mean']:+.4f}" + (f"±{half:.4f}" if half is not None else "")


TABLE_HEAD = (
    "rank",
    "schedule",
    "role",
    "seeds",
    "id_loss",
    "far_loss",
    "far - ref",
    "ctx_gain",
    "delta",
    "slope",
    "at l_max",
    "tokens",
    "GFLOPs",
    "pick",
)


def table_rows(summary: Summary) -> list[list[str]]:
    """The ranking (lowest far_loss first, controls last) as cells of text."""
    picked = {p["schedule"] for p in summary.picks}
    out = []
    for i, r in enumerate(summary.schedules, 1):
        mark = "PICK" if r["schedule"] in picked else ("pareto" if r.get("pareto") else "")
        out.append(
            [
                str(i),
                r["schedule"],
                r["role"],
                str(r["seeds"]),
                f"{r['id_loss']:.4f}",
                f"{r['far_loss']:.4f}",
                _vs(r, "far_loss"),
                f"{r['ctx_gain']:+.4f}" if _finite(r.get("ctx_gain")) else "-",
                f"{r['delta']:+.4f}",
                f"{r['slope']:+.4f}" if _finite(r.get("slope")) else "-",
                f"{r.get('tokens_at_l_max', 0) / 1e3:.0f}k",
                (f"{r['tokens_trained'] / 1e3:.0f}k" if _finite(r.get("tokens_trained")) else "-")
                + ("" if r.get("token_equal", True) else "*"),
                f"{r['flops'] / 1e9:.1f}",
                mark,
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
