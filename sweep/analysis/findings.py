"""A study's findings, from its arms' records: the numbers (``findings.json``) and the
document (``study.md`` with its figures), rebuilt whole by ``sweep report STUDY_DIR``.

Cross-arm comparisons pair trials by seed and evaluation document: every arm evaluates the
same held-out windows (same data spec and eval seed), so rope minus alibi, or window mode
minus two-stage, are paired differences like those within one sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from sweep.analysis import decision
from sweep.analysis.aggregate import (
    LEVEL,
    OBJECTIVE,
    Summary,
    Trial,
    _judge,
    _paired,
    aggregate,
    paired_matrix,
    units_matrix,
)
from sweep.analysis.intervals import Interval, mean_interval, paired_interval
from sweep.analysis.metrics import bands
from sweep.analysis.records import write_text_atomic
from sweep.run.study import RUNS_FILE, Study, best_ramps, load_dir

BOOT = 4000  # bootstrap resamples of the transfer correlation


def _by_schedule(summary: Summary) -> dict[str, list[Trial]]:
    out: dict[str, list[Trial]] = {}
    for t in summary.finished:
        out.setdefault(t.record["schedule"], []).append(t)
    return out


def _band_keys(summary: Summary) -> list[str]:
    t = summary.finished[0]
    return [name for name, _, _ in bands(int(t.record["eval_length"]), int(t.record["l_max"]))]


def _diff(a: list[Trial] | None, b: list[Trial] | None, keys: list[str]) -> dict:
    """Paired a - b per metric (seed- and document-paired), as interval dicts."""
    if not a or not b:
        return {}
    out = {}
    for k in keys:
        iv = _paired(a, b, k)
        if iv is not None:
            out[k] = iv.to_dict()
    return out


def _bin_matrix(trials: list[Trial]) -> tuple[list[int], dict[int, np.ndarray]] | None:
    """A schedule's per-document position-bin means by seed, when every trial kept them on
    the same bins and documents: (edges, {seed: (documents x bins)})."""
    got = [t.bins for t in trials]
    if not got or any(b is None for b in got) or len({(tuple(b[0]), b[1]) for b in got}) != 1:
        return None
    return list(got[0][0]), {t.record["seed"]: b[2] for t, b in zip(trials, got)}


def position_curves(by: dict[str, list[Trial]], reference: str) -> dict:
    """BTLM's chart with its uncertainty: each schedule's absolute loss per position bin
    (the bins the records keep: powers of two and the band edges, so the last bin is
    (E/2, E], never one position), the seed and document mean with its 95% interval over
    both, and its paired difference from the reference per bin."""
    ref = _bin_matrix(by.get(reference) or [])
    out = {}
    for label, ts in sorted(by.items()):
        got = _bin_matrix(ts)
        if got is None:
            continue
        edges, per_seed = got
        x = np.stack([per_seed[s] for s in sorted(per_seed)])  # seeds x documents x bins
        ivs = [mean_interval(x[:, :, j]) for j in range(x.shape[2])]
        row = {
            "edges": edges,
            "seeds": len(per_seed),
            "mean": [iv.mean for iv in ivs],
            "lo": [iv.lo for iv in ivs],
            "hi": [iv.hi for iv in ivs],
        }
        if ref is not None and label != reference and ref[0] == edges:
            seeds = sorted(set(per_seed) & set(ref[1]))
            if seeds:
                d = np.stack([per_seed[s] - ref[1][s] for s in seeds])
                dv = [paired_interval(d[:, :, j]) for j in range(d.shape[2])]
                row["vs_ref"] = {
                    "mean": [iv.mean for iv in dv],
                    "lo": [iv.lo for iv in dv],
                    "hi": [iv.hi for iv in dv],
                }
        out[label] = row
    return out


def schedule_table(summary: Summary) -> list[dict]:
    """Every schedule of an arm with its absolute id_loss and far_loss (seed and document
    means, each with its interval), its context_use, and its differences from the
    reference on level and shape: what the study shows beside the paired differences."""
    out = []
    for r in summary.schedules:
        vs = r.get("vs_ref") or {}
        out.append(
            {
                "schedule": r["schedule"],
                "role": r["role"],
                "seeds": r["seeds"],
                "own_length": r.get("own_length"),
                **{k: r.get(f"{k}_ci") for k in ("id_loss", "far_loss", "context_use")},
                "far_vs_ref": vs.get(OBJECTIVE),
                "far_excess": r.get("far_excess"),
                "own_excess": r.get("own_excess"),
                "decision": (r.get("decision") or {}).get("outcome"),
            }
        )
    return out


def ramps_vs_btlm(
    by: dict[str, list[Trial]], ramps: list[str], btlm: str | None, margin: float | None
) -> dict:
    """Each increasing ramp against two stages on far_loss, as one of the four outcomes at
    the arm's equivalence margin, with the family of len(ramps) comparisons held to a 95%
    family-wise level (Bonferroni): the seeds that would likely settle each one, too."""
    if not btlm or btlm not in by or margin is None:
        return {}
    sim = decision.simultaneous_level(LEVEL, max(len(ramps), 1))
    out = {}
    for r in ramps:
        d = paired_matrix(by.get(r, []), by[btlm], OBJECTIVE)
        if d is None:
            continue
        far = paired_interval(d).to_dict() | {"components": decision.variance_components(d)}
        if far.get("hi") is None:
            continue
        judged, _ = _judge(far, LEVEL, sim, margin)
        out[r] = judged | {"mean": far["mean"]}
    return {
        "comparisons": len(out),
        "level": sim,
        "margin": margin,
        "correction": f"{len(out)} comparison(s) with {btlm}, Bonferroni: each interval at "
        f"{100 * sim:.4g}%",
        "by_ramp": out,
    }


def spearman_transfer(
    a: dict[str, np.ndarray],
    ref_a: np.ndarray,
    b: dict[str, np.ndarray],
    ref_b: np.ndarray,
    level: float = 0.95,
    n_boot: int = BOOT,
    seed: int = 0,
) -> dict:
    """Rank correlation of the schedules' gains over the reference at two widths.

    ``a[label]`` and ``ref_a`` are (seeds x documents) far_loss matrices of one width, ``b``
    and ``ref_b`` of the other, on the same seeds and documents. The gain of a schedule is
    its mean minus the reference's. The interval is a percentile bootstrap that resamples
    seeds and documents together (both are sources of noise, and the same seed and
    document index every schedule and both widths, which keeps the pairing):
    scipy.stats.bootstrap resamples one axis only, hence the two-level resampling here."""
    labels = sorted(set(a) & set(b))
    if len(labels) < 3:
        return {"labels": labels, "rho": None, "lo": None, "hi": None, "why": "under 3 schedules"}
    A = np.stack([a[k] - ref_a for k in labels])  # schedules x seeds x docs
    B = np.stack([b[k] - ref_b for k in labels])
    ga, gb = A.mean(axis=(1, 2)), B.mean(axis=(1, 2))
    rho = float(stats.spearmanr(ga, gb).statistic)
    rng = np.random.default_rng(seed)
    n_s, n_d = A.shape[1], A.shape[2]
    # A resample's mean is a weighted mean: weights = how often each seed and document was
    # drawn, so every resample is one einsum, not a loop of fancy indexing.
    ws = _draw_weights(rng, n_boot, n_s)
    wd = _draw_weights(rng, n_boot, n_d)
    xa = np.einsum("bs,bd,ksd->bk", ws, wd, A)
    xb = np.einsum("bs,bd,ksd->bk", ws, wd, B)
    keep = (np.ptp(xa, axis=1) > 0) & (np.ptp(xb, axis=1) > 0)  # rho needs two ranks
    rhos = _row_spearman(xa[keep], xb[keep])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(rhos, [alpha, 1 - alpha]) if len(rhos) else (math.nan, math.nan)
    return {
        "labels": labels,
        "gain_a": dict(zip(labels, map(float, ga))),
        "gain_b": dict(zip(labels, map(float, gb))),
        "rho": rho,
        "lo": float(lo),
        "hi": float(hi),
        "boot": int(len(rhos)),
        "method": f"percentile bootstrap over seeds and documents ({len(rhos)} resamples)",
        "best_a": labels[int(np.argmin(ga))],
        "best_b": labels[int(np.argmin(gb))],
    }


def _draw_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot x n) resampling weights: the share of n draws with replacement that fell
    on each unit."""
    draws = rng.integers(0, n, (n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    return counts / n


def _row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair: Pearson's r of the average ranks (as
    scipy.stats.spearmanr, ties included), for all rows at once."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def _far_matrix(trials: list[Trial], seeds: list[int]) -> np.ndarray | None:
    by_seed = {t.record["seed"]: t for t in trials}
    if not all(s in by_seed for s in seeds):
        return None
    return units_matrix([by_seed[s] for s in seeds], "far_loss")


def load_arms(study: Study, study_dir: Path) -> dict[str, Summary]:
    """The aggregate of every arm that has records (read once for numbers and figures)."""
    arms: dict[str, Summary] = {}
    for arm in study.arm_names:
        d = Path(study_dir) / arm
        if any(d.glob("trials/*/record.json")):
            arms[arm] = aggregate(d)
    return arms


def compute(study: Study, study_dir: Path, arms: dict[str, Summary] | None = None) -> dict:
    """Every number the document states, from the arms' records (``arms``: their
    aggregates, when already read)."""
    f = study.findings
    arms = load_arms(study, study_dir) if arms is None else arms
    main = arms.get(study.main)
    if main is None or not main.finished:
        return {"arms": {}, "missing": study.main}
    S = {arm: _by_schedule(s) for arm, s in arms.items()}
    M = S[study.main]
    ref = main.reference
    keys = ["id_loss", "near_loss", "far_loss", *_band_keys(main), "ctx_gain"]
    spec = study.arm_spec(study.main, [])
    ramps = best_ramps(main, spec)
    best = ramps[0] if ramps else None
    out: dict = {
        "reference": ref,
        "best_ramps": ramps,
        "bands": _band_keys(main),
        "arms": {arm: s.to_dict() for arm, s in arms.items()},
    }
    btlm, neg = f.get("btlm"), f.get("negative")
    out["btlm"] = {
        "negative_vs_reference": _diff(M.get(neg), M.get(ref), keys),
        "negative_vs_btlm": _diff(M.get(neg), M.get(btlm), keys),
        "btlm_vs_reference": _diff(M.get(btlm), M.get(ref), keys),
        "controls": main.controls,
    }
    rope = f.get("rope_arm")
    if rope in S:
        out["rope"] = {
            label: _diff(S[rope].get(label), M.get(label), keys) for label in S[rope] if label in M
        }
    ramp_rows = {r: _diff(M.get(r), M.get(btlm), keys) for r in ramps}
    margin = main.decision.margin if main.decision else None
    out["ramp_vs_btlm"] = {
        "main": ramp_rows,
        "best": best,
        "decided": ramps_vs_btlm(M, ramps, btlm, margin),
        "margin_source": main.decision.margin_source if main.decision else "",
    }
    out["curves"] = position_curves(M, ref)
    out["schedules"] = {arm: schedule_table(s) for arm, s in arms.items()}
    # an arm whose own negative control was not told apart confirms nothing
    out["blind_arms"] = sorted(
        arm for arm, s in arms.items() if s.controls.get("discriminates") is False
    )
    win = f.get("window_arm")
    if win in S and best:
        wlabel = f"{best}-window"
        if wlabel in S[win]:
            out["ramp_vs_btlm"]["window"] = {
                "label": wlabel,
                "vs_btlm": _diff(S[win].get(wlabel), M.get(btlm), keys),
                "vs_reshape": _diff(S[win].get(wlabel), M.get(best), keys),
            }
    wide = f.get("wide_arm")
    if wide in S:
        W = S[wide]
        out["ramp_vs_btlm"]["wide"] = {
            r: _diff(W.get(r), W.get(btlm), keys) for r in ramps if r in W
        }
        seeds = sorted(
            {t.record["seed"] for t in main.finished}
            & {t.record["seed"] for t in arms[wide].finished}
        )
        # candidates only: a control's large gap would make any ranking look transferred
        roles = {t.record["schedule"]: t.role for t in main.finished}
        common = [lab for lab in W if lab in M and lab != ref and roles.get(lab) != "control"]
        mats_a = {lab: _far_matrix(M[lab], seeds) for lab in common}
        mats_b = {lab: _far_matrix(W[lab], seeds) for lab in common}
        ra, rb = _far_matrix(M.get(ref, []), seeds), _far_matrix(W.get(ref, []), seeds)
        ok = [lab for lab in common if mats_a[lab] is not None and mats_b[lab] is not None]
        if ra is not None and rb is not None:
            out["transfer"] = spearman_transfer(
                {k: mats_a[k] for k in ok}, ra, {k: mats_b[k] for k in ok}, rb
            )
            out["transfer"]["picks"] = {
                study.main: [p["schedule"] for p in main.picks],
                wide: [p["schedule"] for p in arms[wide].picks],
            }
            out["transfer"]["verdicts"] = {study.main: main.verdict, wide: arms[wide].verdict}
    out["repeats"] = _repeats(S)
    out["cost"] = _cost(arms, Path(study_dir))
    return out


# What decides a trial's training and evaluation (the sweep's name and grid do not).
_TRAINING = ("budget", "model", "data", "optim", "eval", "deepspeed")


def _repeats(S: dict[str, dict[str, list[Trial]]]) -> list[dict]:
    """Trials that two arms ran with the same schedule, seed and training spec: on a CPU
    they must come out identical (a check that comparing across arms is sound)."""
    out = []
    arms = list(S)
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            for label in sorted(set(S[a]) & set(S[b])):
                pairs = same = 0
                for ta in S[a][label]:
                    for tb in S[b][label]:
                        ca, cb = ta.record["config"], tb.record["config"]
                        if (
                            ta.record["seed"] != tb.record["seed"]
                            or ca["schedule"] != cb["schedule"]
                        ):
                            continue
                        if any(ca["sweep"][k] != cb["sweep"][k] for k in _TRAINING):
                            continue
                        pairs += 1
                        same += ta.record["curve"] == tb.record["curve"]
                if pairs:
                    out.append({"label": label, "arms": [a, b], "pairs": pairs, "identical": same})
    return out


def _cost(arms: dict[str, Summary], study_dir: Path) -> dict:
    per = {}
    for arm, s in arms.items():
        recs = [t.record for t in s.trials]
        per[arm] = {
            "trials": len(recs),
            "finished": len(s.finished),
            "trial_wall_s": float(sum(r.get("wall_s") or 0 for r in recs)),
            "tokens": float(sum(r.get("tokens_trained") or 0 for r in recs)),
            "flops": float(sum(t.metrics.get("flops", 0) for t in s.finished)),
        }
    runs = []
    path = study_dir / RUNS_FILE
    if path.is_file():
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {"arms": per, "runs": runs, "wall_s": float(sum(r["wall_s"] for r in runs))}


def write_study(study_dir: Path, out: str | Path | None = None) -> Path:
    """Compute the findings and write ``study.md``, its figures and ``findings.json`` to
    ``out`` (default: the study's directory)."""
    from sweep.report.study_report import write_document

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


__all__ = [
    "compute",
    "load_arms",
    "position_curves",
    "ramps_vs_btlm",
    "schedule_table",
    "spearman_transfer",
    "write_study",
]
