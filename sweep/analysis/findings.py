"""A study's findings, from its arms' records: the numbers (``findings.json``) and the
document (``study.md`` with its figures), rebuilt whole by ``sweep report STUDY_DIR``.

Cross-arm comparisons pair trials by seed and evaluation document: every arm evaluates the
same held-out windows (same data spec and eval seed), so rope minus alibi, or window mode
minus two-stage, are paired differences like those within one sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sweep.analysis import decision
from sweep.analysis.aggregate import Summary, aggregate
from sweep.analysis.arms import best_ramps
from sweep.analysis.intervals import mean_interval, paired_interval
from sweep.analysis.metrics import bands
from sweep.analysis.paired import (
    OBJECTIVE,
    Trial,
    paired_difference,
    paired_matrix,
)
from sweep.analysis.pick import LEVEL, judge_comparison
from sweep.analysis.transfer import far_matrix, spearman_transfer
from sweep.config.study_spec import RUNS_FILE, Study


def _by_schedule(summary: Summary) -> dict[str, list[Trial]]:
    out: dict[str, list[Trial]] = {}
    for t in summary.finished:
        out.setdefault(t.record.schedule, []).append(t)
    return out


def _band_keys(summary: Summary) -> list[str]:
    t = summary.finished[0]
    return [name for name, _, _ in bands(int(t.record.eval_length), int(t.record.l_max))]


def _diff(a: list[Trial] | None, b: list[Trial] | None, keys: list[str]) -> dict:
    """Paired a - b per metric (seed- and document-paired), as interval dicts."""
    if not a or not b:
        return {}
    out = {}
    for k in keys:
        iv = paired_difference(a, b, k)
        if iv is not None:
            out[k] = iv.to_dict()
    return out


def _bin_matrix(trials: list[Trial]) -> tuple[list[int], dict[int, np.ndarray]] | None:
    """A schedule's per-document position-bin means by seed, when every trial kept them on
    the same bins and documents: (edges, {seed: (documents x bins)})."""
    got = [t.bins for t in trials]
    if not got or any(b is None for b in got) or len({(tuple(b[0]), b[1]) for b in got}) != 1:
        return None
    return list(got[0][0]), {t.record.seed: b[2] for t, b in zip(trials, got)}


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
        judged, _ = judge_comparison(far, LEVEL, sim, margin)
        out[r] = judged | {"mean": far["mean"]}
    return {
        "comparisons": len(out),
        "level": sim,
        "margin": margin,
        "correction": f"{len(out)} comparison(s) with {btlm}, Bonferroni: each interval at "
        f"{100 * sim:.4g}%",
        "by_ramp": out,
    }


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
    asked = study.findings
    arms = load_arms(study, study_dir) if arms is None else arms
    main = arms.get(study.main)
    if main is None or not main.finished:
        return {"arms": {}, "missing": study.main}
    by_arm = {arm: _by_schedule(s) for arm, s in arms.items()}
    main_by = by_arm[study.main]
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
    btlm = asked.get("btlm")
    out["btlm"] = _btlm(main_by, main, asked.get("negative"), btlm, keys)
    rope = asked.get("rope_arm")
    if rope in by_arm:
        out["rope"] = {
            label: _diff(by_arm[rope].get(label), main_by.get(label), keys)
            for label in by_arm[rope]
            if label in main_by
        }
    ramp_rows = {r: _diff(main_by.get(r), main_by.get(btlm), keys) for r in ramps}
    margin = main.decision.margin if main.decision else None
    out["ramp_vs_btlm"] = {
        "main": ramp_rows,
        "best": best,
        "decided": ramps_vs_btlm(main_by, ramps, btlm, margin),
        "margin_source": main.decision.margin_source if main.decision else "",
    }
    out["curves"] = position_curves(main_by, ref)
    out["schedules"] = {arm: schedule_table(s) for arm, s in arms.items()}
    # an arm whose own negative control was not told apart confirms nothing
    out["blind_arms"] = sorted(
        arm for arm, s in arms.items() if s.controls.get("discriminates") is False
    )
    window = _window_arm(by_arm, main_by, asked.get("window_arm"), best, btlm, keys)
    if window is not None:
        out["ramp_vs_btlm"]["window"] = window
    wide = asked.get("wide_arm")
    if wide in by_arm:
        wide_by = by_arm[wide]
        out["ramp_vs_btlm"]["wide"] = {
            r: _diff(wide_by.get(r), wide_by.get(btlm), keys) for r in ramps if r in wide_by
        }
        transfer = _transfer(study.main, main, wide, arms[wide], ref)
        if transfer is not None:
            out["transfer"] = transfer
    out["repeats"] = _repeats(by_arm)
    out["cost"] = _cost(arms, Path(study_dir))
    return out


def _btlm(
    main_by: dict[str, list[Trial]],
    main: Summary,
    neg: str | None,
    btlm: str | None,
    keys: list[str],
) -> dict:
    """BTLM's claim on the main arm: the negative control against the reference and
    against two stages, and two stages against the reference."""
    ref = main.reference
    return {
        "negative_vs_reference": _diff(main_by.get(neg), main_by.get(ref), keys),
        "negative_vs_btlm": _diff(main_by.get(neg), main_by.get(btlm), keys),
        "btlm_vs_reference": _diff(main_by.get(btlm), main_by.get(ref), keys),
        "controls": main.controls,
    }


def _window_arm(
    by_arm: dict[str, dict[str, list[Trial]]],
    main_by: dict[str, list[Trial]],
    win: str | None,
    best: str | None,
    btlm: str | None,
    keys: list[str],
) -> dict | None:
    """The best ramp in window mode against two stages and against itself in reshape mode
    (None without a window arm that ran it)."""
    if win not in by_arm or not best:
        return None
    wlabel = f"{best}-window"
    if wlabel not in by_arm[win]:
        return None
    return {
        "label": wlabel,
        "vs_btlm": _diff(by_arm[win].get(wlabel), main_by.get(btlm), keys),
        "vs_reshape": _diff(by_arm[win].get(wlabel), main_by.get(best), keys),
    }


def _transfer(main_name: str, main: Summary, wide: str, wide_arm: Summary, ref: str) -> dict | None:
    """Whether the main arm's ranking of candidates holds at the wide arm's width (None
    without the reference's far_loss on the seeds both arms ran)."""
    main_by, wide_by = _by_schedule(main), _by_schedule(wide_arm)
    seeds = sorted(
        {t.record.seed for t in main.finished} & {t.record.seed for t in wide_arm.finished}
    )
    # candidates only: a control's large gap would make any ranking look transferred
    roles = {t.record.schedule: t.role for t in main.finished}
    common = [
        lab for lab in wide_by if lab in main_by and lab != ref and roles.get(lab) != "control"
    ]
    mats_a = {lab: far_matrix(main_by[lab], seeds) for lab in common}
    mats_b = {lab: far_matrix(wide_by[lab], seeds) for lab in common}
    ra, rb = far_matrix(main_by.get(ref, []), seeds), far_matrix(wide_by.get(ref, []), seeds)
    ok = [lab for lab in common if mats_a[lab] is not None and mats_b[lab] is not None]
    if ra is None or rb is None:
        return None
    out = spearman_transfer({k: mats_a[k] for k in ok}, ra, {k: mats_b[k] for k in ok}, rb)
    out["picks"] = {
        main_name: [p["schedule"] for p in main.picks],
        wide: [p["schedule"] for p in wide_arm.picks],
    }
    out["verdicts"] = {main_name: main.verdict, wide: wide_arm.verdict}
    return out


# What decides a trial's training and evaluation (the sweep's name and grid do not).
_TRAINING = ("budget", "model", "data", "optim", "eval", "deepspeed")


def _repeats(by_arm: dict[str, dict[str, list[Trial]]]) -> list[dict]:
    """Trials that two arms ran with the same schedule, seed and training spec: on a CPU
    they must come out identical (a check that comparing across arms is sound)."""
    out = []
    arms = list(by_arm)
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            for label in sorted(set(by_arm[a]) & set(by_arm[b])):
                pairs, same = _same_runs(by_arm[a][label], by_arm[b][label])
                if pairs:
                    out.append({"label": label, "arms": [a, b], "pairs": pairs, "identical": same})
    return out


def _same_runs(trials_a: list[Trial], trials_b: list[Trial]) -> tuple[int, int]:
    """Pairs of trials run alike (same seed, schedule and training spec), and how many of
    them have identical curves."""
    pairs = same = 0
    for ta in trials_a:
        for tb in trials_b:
            ca, cb = ta.record.config, tb.record.config
            if ta.record.seed != tb.record.seed or ca["schedule"] != cb["schedule"]:
                continue
            if any(ca["sweep"][k] != cb["sweep"][k] for k in _TRAINING):
                continue
            pairs += 1
            same += ta.record.curve == tb.record.curve
    return pairs, same


def _cost(arms: dict[str, Summary], study_dir: Path) -> dict:
    per = {}
    for arm, s in arms.items():
        recs = [t.record for t in s.trials]
        per[arm] = {
            "trials": len(recs),
            "finished": len(s.finished),
            "trial_wall_s": float(sum(r.wall_s or 0 for r in recs)),
            "tokens": float(sum(r.tokens_trained or 0 for r in recs)),
            "flops": float(sum(t.metrics.get("flops", 0) for t in s.finished)),
        }
    runs = []
    path = study_dir / RUNS_FILE
    if path.is_file():
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {"arms": per, "runs": runs, "wall_s": float(sum(r["wall_s"] for r in runs))}


__all__ = [
    "compute",
    "load_arms",
    "position_curves",
    "ramps_vs_btlm",
    "schedule_table",
]
