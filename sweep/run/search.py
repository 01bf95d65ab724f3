"""Search beyond the grid (``search:`` in the spec): what a sample is, and when a sampled
trial may be stopped. Pure functions; the Tune/Optuna wiring builds on them.

A sample is a schedule: a shape from ``search.space.shapes`` and the continuous
parameters that shape reads (ramp rate and l_min for ramps, degree for root, switch and
l_short for two stages) and a mode. Early stopping is schedule-aware: a trial is judged
at a rung only once its schedule has trained ``min_at_l_max`` of the budget at l_max
(before that its far-context loss says little, and in-distribution loss favours short
sequences), and it is stopped only when another trial at the same rung is better on both
objectives by more than ``noise_z`` standard errors of the intermediate evaluation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweep.config.spec import ScheduleSpec, SearchSpace, SweepSpec

RAMP_SHAPES = ("linear", "root", "geometric", "exponential", "cosine")


def _round(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")


def _snap(v: float, multiple: int, lo: int, hi: int) -> int:
    return int(min(max(multiple * round(v / multiple), lo), hi))


def space_params(space: SearchSpace, spec: SweepSpec) -> dict[str, tuple]:
    """Every parameter the searcher may choose, as (kind, low, high) or ("cat", choices);
    a range of one value is fixed and left out. The shape decides which are read."""
    s = spec.schedules
    out: dict[str, tuple] = {"shape": ("cat", tuple(space.shapes))}
    if len(space.modes) > 1:
        out["mode"] = ("cat", tuple(space.modes))
    shapes = set(space.shapes)
    if shapes & set(RAMP_SHAPES):
        out["ramp_rate"] = ("float", *space.ramp_rate)
        l_min = space.l_min or (s.l_min, s.l_min)
        out["l_min"] = ("int", *l_min)
    if "root" in shapes:
        out["degree"] = ("float", *space.degree)
    if "two_stage" in shapes:
        out["switch"] = ("float", *space.switch)
        l_short = space.l_short or (s.l_max // 4, s.l_max // 4)
        out["l_short"] = ("int", *l_short)
    return {k: v for k, v in out.items() if v[0] == "cat" or v[1] != v[2]}


def reads(shape: str) -> tuple[str, ...]:
    """The searched parameters a shape uses (the others are ignored for that sample)."""
    if shape == "two_stage":
        return ("switch", "l_short")
    return ("ramp_rate", "l_min", "degree") if shape == "root" else ("ramp_rate", "l_min")


def schedule_of(params: dict[str, Any], spec: SweepSpec) -> ScheduleSpec:
    """The schedule a sample stands for. Lengths snap to ``multiple_of``; floats round to
    3 significant digits, so the label names the schedule exactly as trained. Parameters
    the spec fixes (a range of one value) come from the space's defaults."""
    s, sp = spec.schedules, spec.search.space
    shape = params["shape"]
    mode = params.get("mode", sp.modes[0])
    fixed = {
        "ramp_rate": sp.ramp_rate[0],
        "l_min": (sp.l_min or (s.l_min, s.l_min))[0],
        "degree": sp.degree[0],
        "switch": sp.switch[0],
        "l_short": (sp.l_short or (s.l_max // 4,) * 2)[0],
    }
    p = {k: params.get(k, fixed[k]) for k in reads(shape)}
    kw: dict[str, Any] = {"shape": shape, "l_max": s.l_max, "multiple_of": s.multiple_of}
    tag = ""
    if shape == "two_stage":
        kw["l_min"] = s.l_min
        kw["switch"] = _round(p["switch"])
        kw["l_short"] = _snap(p["l_short"], s.multiple_of, s.multiple_of, s.l_max)
        tag = f"-sw{kw['switch']:g}-ls{kw['l_short']}"
    else:
        kw["l_min"] = _snap(p["l_min"], s.multiple_of, s.multiple_of, s.l_max)
        kw["ramp_rate"] = _round(p["ramp_rate"])
        tag = f"-lm{kw['l_min']}"
        if shape == "root":
            kw["degree"] = _round(p["degree"])
            tag += f"-d{kw['degree']:g}"
    return ScheduleSpec(**kw, tag=tag, mode=mode)


def tokens_at_l_max(plan, seen: int) -> int:
    """Tokens a trial's plan has trained at l_max (its schedule's length, the window in
    window mode) once ``seen`` tokens are behind it."""
    l_max = int(plan.context.max()) if len(plan.context) else 0
    before = plan.cumulative_tokens()
    done = before < seen  # steps started before ``seen``
    at = (plan.context == l_max) & done
    # a step straddling ``seen`` counts only its part before it
    partial = np.minimum(plan.tokens, np.maximum(seen - before, 0))
    return int(partial[at].sum())


def judgeable(plan, seen: int, l_max: int, budget: int, min_at_l_max: float) -> bool:
    """The rung rule: a trial may be judged (and so stopped) only after its schedule has
    reached ``l_max`` and trained there for ``min_at_l_max`` of the budget."""
    if not len(plan.context) or int(plan.context.max()) < l_max:
        return False
    return tokens_at_l_max(plan, seen) >= min_at_l_max * budget


def dominating(
    me: dict[str, float], others: list[dict[str, float]], keys: tuple[str, str], z: float
) -> dict | None:
    """The first of ``others`` (same rung) better than ``me`` on both objectives by more
    than z standard errors of each difference (``<key>_se`` holds each one's SE), or None.
    Lower is better on both. Without an SE the difference must simply be positive."""
    for o in others:
        ok = True
        for k in keys:
            se = math.hypot(me.get(f"{k}_se", 0.0) or 0.0, o.get(f"{k}_se", 0.0) or 0.0)
            if not me[k] - o[k] > z * se or not math.isfinite(o[k]):
                ok = False
                break
        if ok:
            return o
    return None


# ----------------------------------------------------------------------------- samples

SAMPLE_PREFIX = "q"  # trial ids of sampled trials: q<number>-<label>-s<seed>


def sample_trial(params: dict[str, Any], number: int, spec: SweepSpec):
    """The TrialSpec of sample ``number`` (first seed of the spec: a sample is one
    schedule, trained once; the fixed reference and controls carry the seeds)."""
    from sweep.config.spec import TrialSpec

    sched = schedule_of(params, spec)
    seed = spec.seeds[0]
    return TrialSpec(f"{SAMPLE_PREFIX}{number:03d}-{sched.label}-s{seed}", seed, sched, spec)


def params_of(sched: ScheduleSpec, spec: SweepSpec) -> dict[str, Any]:
    """The searched parameters a sampled schedule was made from (inverse of
    ``schedule_of`` on its rounded values): what a resumed searcher is told."""
    names = space_params(spec.search.space, spec)
    values = {
        "shape": sched.shape,
        "mode": sched.mode,
        "ramp_rate": sched.ramp_rate,
        "l_min": sched.l_min,
        "degree": sched.degree,
        "switch": sched.switch,
        "l_short": sched.l_short,
    }
    keep = {"shape", "mode", *reads(sched.shape)}
    out = {}
    for k, dist in names.items():
        if k in keep:
            v = values[k]
            out[k] = v if dist[0] == "cat" else min(max(v, dist[1]), dist[2])
    return out


def distributions(params: dict[str, Any], spec: SweepSpec) -> dict:
    """Optuna distributions of the parameters ``params`` holds (define-by-run: a sample
    has only those its shape reads)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out = {}
    for k, dist in space_params(spec.search.space, spec).items():
        if k not in params:
            continue
        if dist[0] == "cat":
            out[k] = CategoricalDistribution(dist[1])
        elif dist[0] == "int":
            out[k] = IntDistribution(dist[1], dist[2])
        else:
            out[k] = FloatDistribution(dist[1], dist[2])
    return out


def suggest(trial, spec: SweepSpec) -> dict[str, Any]:
    """Define-by-run: the shape first, then only the parameters that shape reads."""
    names = space_params(spec.search.space, spec)
    params: dict[str, Any] = {}
    for k, dist in names.items():
        if k == "shape" or k == "mode":
            params[k] = trial.suggest_categorical(k, dist[1])
    shape = params.get("shape", spec.search.space.shapes[0])
    for k in reads(shape):
        if k in names:
            kind, lo, hi = names[k]
            suggest_ = trial.suggest_int if kind == "int" else trial.suggest_float
            params[k] = suggest_(k, lo, hi)
    return params


def objective_values(rec: dict, spec: SweepSpec) -> list[float] | None:
    """The objectives of a finished record (None when one is missing or not finite)."""
    m = rec.get("metrics") or {}
    vals = [m.get(k) for k in spec.search.objectives]
    if any(v is None or not math.isfinite(v) for v in vals):
        return None
    return [float(v) for v in vals]


def make_sampler(spec: SweepSpec, told: int = 0):
    """The spec's sampler. ``told``: samples a resumed search starts from. The sampler's
    random stream starts from ``seed + told``: restarted from ``seed`` it would propose
    the first run's opening samples again (its random start-up phase does not depend on
    what it has been told)."""
    import optuna

    q = spec.search
    seed = q.seed + told
    if q.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    import warnings

    # group=True: TPE models the parameters of each shape together (the space is
    # conditional on the shape); Optuna marks the flag experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def sample_number(trial_id: str) -> int:
    """The sample number in a sampled trial's id (q<number>-...)."""
    return int(trial_id[len(SAMPLE_PREFIX) :].split("-", 1)[0])


def make_searcher(spec: SweepSpec, done: list[dict], redo: list[tuple[dict, int]]):
    """A Ray Tune Searcher over an Optuna study, through Optuna's ask-and-tell.

    Why not ray.tune.search.optuna.OptunaSearch: with a define-by-run space (the shape
    decides which parameters exist) it cannot be told earlier results, and it passes
    a single ``value`` where a multi-objective study needs ``values`` (Ray 2.60,
    optuna_search.py:595-628); both are what ``sweep resume`` needs. ``done``: records of
    sampled trials already finished or stopped, told to the study before it asks;
    ``redo``: (parameters, number) of samples a killed run left unfinished, asked again
    first under their own number."""
    import optuna
    from optuna.trial import TrialState, create_trial
    from ray.tune.search import Searcher

    from sweep.config.spec import TrialSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class AskTell(Searcher):
        def __init__(self):
            super().__init__()
            self.study = optuna.create_study(
                directions=["minimize", "minimize"],
                sampler=make_sampler(spec, len(done) + len(redo)),
            )
            # schedule label -> its objectives (None: stopped or failed), for every sample
            # trained or in flight: a schedule is never trained twice
            self.known: dict[str, list[float] | None] = {}
            for rec in done:
                sched = TrialSpec.from_dict(rec["config"]).schedule
                params = params_of(sched, spec)
                values = objective_values(rec, spec) if rec["status"] == "finished" else None
                self.known[sched.label] = values
                self.study.add_trial(
                    create_trial(
                        params=params,
                        distributions=distributions(params, spec),
                        values=values,
                        state=TrialState.COMPLETE if values else TrialState.PRUNED,
                    )
                )
            # Interrupted samples are asked again first, with their parameters and their
            # number (so their trial id, record and checkpoint are theirs again).
            for params, _ in redo:
                self.study.enqueue_trial(params)
                self.known[schedule_of(params, spec).label] = None
            self.again = [number for _, number in redo]
            known = [sample_number(r["trial_id"]) for r in done] + self.again
            self.next = 1 + max(known, default=-1)
            self.live: dict[str, Any] = {}

        def suggest(self, trial_id: str):
            if self.again:  # an interrupted sample, under its own number
                t = self.study.ask()
                params, number = suggest(t, spec), self.again.pop(0)
                label = schedule_of(params, spec).label
            else:
                # A proposal of a schedule already trained (parameters round to the same
                # label) is answered from its record, not trained again.
                for _ in range(1000):
                    t = self.study.ask()
                    params = suggest(t, spec)
                    label = schedule_of(params, spec).label
                    if label not in self.known:
                        break
                    vals = self.known[label]
                    if vals:
                        self.study.tell(t, vals)
                    else:
                        self.study.tell(t, state=TrialState.PRUNED)
                else:
                    return Searcher.FINISHED  # the space holds nothing new
                number, self.next = self.next, self.next + 1
            self.known.setdefault(label, None)
            self.live[trial_id] = (t, label)
            return {"params": params, "number": number}

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            got = self.live.pop(trial_id, None)
            if got is None:
                return
            t, label = got
            values = None
            if result and not error and result.get("phase") == "done":
                vals = [result.get(k) for k in spec.search.objectives]
                if all(v is not None and math.isfinite(v) for v in vals):
                    values = [float(v) for v in vals]
            self.known[label] = values
            if values:
                self.study.tell(t, values)
            else:  # stopped early, failed or diverged: no objective values
                self.study.tell(t, state=TrialState.PRUNED if not error else TrialState.FAIL)

    return AskTell()


def sample_records(sweep_dir) -> tuple[list[dict], list[dict]]:
    """Sampled trials on disk: (done: finished, diverged or stopped; unfinished: running
    or failed, whose parameters a resumed search asks again)."""
    from pathlib import Path

    from sweep.analysis.records import read_record

    done, unfinished = [], []
    for path in sorted(Path(sweep_dir).glob(f"trials/{SAMPLE_PREFIX}*/record.json")):
        rec = read_record(path)
        if not isinstance(rec, dict) or "config" not in rec:
            continue
        (done if rec.get("status") in ("finished", "diverged", "stopped") else unfinished).append(
            rec
        )
    return done, unfinished


def make_stopper(spec: SweepSpec, sweep_dir):
    """Tune scheduler for ``search.early_stop``: at each rung (a budget fraction), a
    sampled trial that the rung rule allows to be judged is compared with the trials that
    reached the rung before it, and stopped (its record: status ``stopped``, the rung and
    the reason) when one of them dominates it beyond the noise. Asynchronous, as ASHA: a
    trial is judged once per rung, on arrival."""
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from sweep.analysis.records import write_record
    from sweep.run.orchestrate import trial_flops

    es, b = spec.search.early_stop, spec.budget
    keys = tuple(spec.search.objectives)

    class RungStopper(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.at: dict[float, list[dict]] = {r: [] for r in es.rungs}
            self.judged: dict[str, set] = {}

        def on_trial_result(self, tune_controller, trial, result):
            cfg = trial.config
            if result.get("phase") != "eval" or "params" not in cfg:
                return TrialScheduler.CONTINUE
            seen = int(result["tokens"])
            passed = [r for r in es.rungs if r * b.tokens <= seen]
            judged = self.judged.setdefault(trial.trial_id, set())
            rung = max((r for r in passed if r not in judged), default=None)
            if rung is None:
                return TrialScheduler.CONTINUE
            judged.update(passed)
            t = sample_trial(cfg["params"], cfg["number"], spec)
            if not judgeable(t.plan(), seen, spec.schedules.l_max, b.tokens, es.min_at_l_max):
                return TrialScheduler.CONTINUE
            me = {k: result.get(k) for k in ("far_loss", "id_loss", "far_loss_se", "id_loss_se")}
            me["flops"] = trial_flops(t)
            me["trial_id"] = t.trial_id
            by = dominating(me, self.at[rung], keys, es.noise_z)
            self.at[rung].append(me)
            if by is None:
                return TrialScheduler.CONTINUE
            why = (
                f"dominated at rung {rung:g} ({seen:,} tokens) by {by['trial_id']}: "
                + ", ".join(f"{k} {me[k]:.4f} vs {by[k]:.4g}" for k in keys)
                + f" (beyond {es.noise_z:g} SE)"
            )
            write_record(
                sweep_dir,
                t,
                "stopped",
                rung=rung,
                reason=why,
                tokens_trained=seen,
                metrics={k: me[k] for k in ("far_loss", "id_loss", "flops")},
            )
            return TrialScheduler.STOP

    return RungStopper()


def search_facts(summary) -> str:
    """One paragraph on a search's samples for the report: how many, how many stopped at
    a rung and the tokens that saved, the non-dominated set on the search's objectives
    (among every finished schedule, fixed trials included) and the best sampled far_loss.
    Empty for a grid sweep."""
    from sweep.analysis.aggregate import pareto_front

    samples = [t for t in summary.trials if t.id.startswith(SAMPLE_PREFIX)]
    if not samples:
        return ""
    sweep = samples[0].record["config"]["sweep"]
    objectives = tuple(sweep["search"]["objectives"])
    budget = int(sweep["budget"]["tokens"])
    stopped = [t for t in samples if t.status == "stopped"]
    finished = [t for t in samples if t.status == "finished"]
    spent = sum(int(t.record.get("tokens_trained") or 0) for t in samples)
    rows = [
        r for r in summary.schedules if all(math.isfinite(r.get(k, math.nan)) for k in objectives)
    ]
    front = pareto_front(rows, objectives)
    best = min(finished, key=lambda t: t.metrics["far_loss"], default=None)
    line = (
        f"Search: {len(samples)} sampled schedules ({sweep['search']['sampler']} on "
        f"{' and '.join(objectives)}), {len(finished)} finished, {len(stopped)} stopped at a "
        f"rung; {spent:,} training tokens against {len(samples) * budget:,} for all of them "
        f"in full. Non-dominated on {' and '.join(objectives)}: {', '.join(front) or 'none'}."
    )
    if best is not None:
        line += f" Best sampled far_loss: {best.record['schedule']} {best.metrics['far_loss']:.4f}."
    return line
