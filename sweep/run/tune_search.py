"""The Tune side of a sweep: the trainables Tune runs (a grid trial, a searched sample),
the Optuna searcher that proposes samples through ask-and-tell, and the rung scheduler
that stops a dominated sample (``search.early_stop``). Tune hands a trainable the path of
the sweep's stored ``spec.yaml`` and the trial's id (or a sample's parameters and
number); the trainable parses the spec once and trains a ``TrialSpec``."""

from __future__ import annotations

import math
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweep.analysis.records import TrialRecord, read_record, record_path, write_record
from sweep.config.spec import SweepSpec, TrialSpec, parse
from sweep.run.cost import trial_flops
from sweep.run.search import (
    dominating,
    judgeable,
    params_of,
    reads,
    sample_number,
    sample_trial,
    schedule_of,
    space_params,
)
from sweep.train import trial as trial_loop
from sweep.train.sessions import tune_session

SPEC_FILE = "spec.yaml"  # the sweep's stored spec, in its results directory

# ----------------------------------------------------------------------------- trainables


def stored_spec(spec_path: str | Path) -> SweepSpec:
    """The sweep's stored spec (``orchestrate.prepare`` wrote it): a trial parses it once,
    and trains the ``TrialSpec`` it names."""
    return parse(yaml.safe_load(Path(spec_path).read_text()))


def run_trial(config: dict) -> None:
    """Ray Tune function trainable of a grid trial: ``config`` holds the stored spec's
    path (``spec``) and the trial's id (``trial_id``)."""
    spec = stored_spec(config["spec"])
    trial = next(t for t in spec.trials() if t.trial_id == config["trial_id"])
    run_trial_spec(trial, Path(config["spec"]).parent)


def run_sample(config: dict) -> None:
    """Ray Tune trainable of a searched trial: the searcher's parameters (``params``,
    ``number``) become a schedule (``search.sample_trial``), trained exactly as a grid
    trial."""
    trial = sample_trial(config["params"], config["number"], stored_spec(config["spec"]))
    run_trial_spec(trial, Path(config["spec"]).parent)


def run_trial_spec(trial: TrialSpec, sweep_dir: Path) -> None:
    """A trial as Ray Tune runs it: a single-worker trial trains right here, in the Tune
    trial's process; a multi-worker one launches its Ray Train worker group. The record
    says how it ended, whatever failed."""
    t0 = time.time()
    write_record(sweep_dir, TrialRecord.of(trial, "running", started_at=t0))
    try:
        if trial.sweep.resources.workers_per_trial == 1:
            use_gpu = trial.sweep.resources.gpus_per_worker > 0
            trial_loop.train_trial(
                trial, sweep_dir, tune_session(sweep_dir, trial.trial_id, use_gpu), t0
            )
        else:
            config = {"trial": trial.to_dict(), "sweep_dir": str(sweep_dir), "driver_start": t0}
            _fit_worker_group(trial, config, sweep_dir)
    except Exception as exc:  # the record must say why, whatever failed
        failed = TrialRecord.of(
            trial,
            "failed",
            error=_one_line(exc),
            wall_s=time.time() - t0,
            traceback=traceback.format_exc()[-4000:],
        )
        write_record(sweep_dir, failed)
        raise
    rec = read_record(record_path(sweep_dir, trial.trial_id))
    if rec is None or rec.status == "running":
        why = "worker ended without writing a record"
        write_record(sweep_dir, TrialRecord.of(trial, "failed", error=why, wall_s=time.time() - t0))


def _fit_worker_group(trial: TrialSpec, config: dict, sweep_dir: Path) -> None:
    """Run the trial on a Ray Train worker group (gloo on CPU, NCCL on GPU); Train's
    failure config restarts it from its last registered checkpoint. Each worker parses
    the trial from ``config`` (its plain form: Ray Train copies it to every worker)."""
    # deferred: ray stays out of `sweep trial`, which runs without it
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer  # deferred: as above
    from ray.tune.integration.ray_train import TuneReportCallback  # deferred: as above

    res = trial.sweep.resources
    use_gpu = res.gpus_per_worker > 0
    per_worker = {"CPU": res.cpus_per_worker} | ({"GPU": res.gpus_per_worker} if use_gpu else {})
    TorchTrainer(
        trial_loop.train_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers_per_trial, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=trial.trial_id,
            storage_path=str(sweep_dir / "ray" / "train"),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    ).fit()


def _one_line(exc: BaseException) -> str:
    """The most telling line of a (possibly remote, multi-line) exception."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errs = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (errs[-1] if errs else lines[-1] if lines else type(exc).__name__)[:500]


# ----------------------------------------------------------------------------- searcher


def distributions(params: dict[str, Any], spec: SweepSpec) -> dict:
    """Optuna distributions of the parameters ``params`` holds (define-by-run: a sample
    has only those its shape reads)."""
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


def objective_values(rec: TrialRecord, spec: SweepSpec) -> list[float] | None:
    """The objectives of a finished record (None when one is missing or not finite)."""
    m = rec.metrics or {}
    vals = [m.get(k) for k in spec.search.objectives]
    if any(v is None or not math.isfinite(v) for v in vals):
        return None
    return [float(v) for v in vals]


def make_sampler(spec: SweepSpec, told: int = 0):
    """The spec's sampler. ``told``: samples a resumed search starts from. The sampler's
    random stream starts from ``seed + told``: restarted from ``seed`` it would propose
    the first run's opening samples again (its random start-up phase does not depend on
    what it has been told)."""
    q = spec.search
    seed = q.seed + told
    if q.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    # group=True: TPE models the parameters of each shape together (the space is
    # conditional on the shape); Optuna marks the flag experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


class AskTellStudy:
    """The Optuna side of the searcher: a two-objective study told every sample already
    trained, and the schedules it knows (label -> objectives, None: stopped, failed or in
    flight), so that a schedule is never trained twice."""

    def __init__(
        self, spec: SweepSpec, done: list[TrialRecord], redo: list[tuple[dict, int]]
    ) -> None:
        self.spec = spec
        self.study = optuna.create_study(
            directions=["minimize", "minimize"],
            sampler=make_sampler(spec, len(done) + len(redo)),
        )
        self.known: dict[str, list[float] | None] = {}
        for rec in done:
            self.tell_record(rec)
        # Interrupted samples are asked again first, with their parameters and their
        # number (so their trial id, record and checkpoint are theirs again).
        for params, _ in redo:
            self.study.enqueue_trial(params)
            self.known[schedule_of(params, spec).label] = None
        self.again = [number for _, number in redo]
        known = [sample_number(r.trial_id) for r in done] + self.again
        self.next = 1 + max(known, default=-1)

    def tell_record(self, rec: TrialRecord) -> None:
        """Tell the study a sample a previous run finished or stopped."""
        sched = rec.spec.schedule
        params = params_of(sched, self.spec)
        values = objective_values(rec, self.spec) if rec.status == "finished" else None
        self.known[sched.label] = values
        self.study.add_trial(
            create_trial(
                params=params,
                distributions=distributions(params, self.spec),
                values=values,
                state=TrialState.COMPLETE if values else TrialState.PRUNED,
            )
        )

    def ask_new(self):
        """(Optuna trial, parameters, label) of a schedule not trained yet, or None when
        the space holds nothing new. A proposal of a schedule already trained (parameters
        round to the same label) is answered from its record, not trained again."""
        for _ in range(1000):
            t = self.study.ask()
            params = suggest(t, self.spec)
            label = schedule_of(params, self.spec).label
            if label not in self.known:
                return t, params, label
            vals = self.known[label]
            if vals:
                self.study.tell(t, vals)
            else:
                self.study.tell(t, state=TrialState.PRUNED)
        return None

    def ask(self):
        """(Optuna trial, parameters, label, number) of the next sample, or None."""
        if self.again:  # an interrupted sample, under its own number
            t = self.study.ask()
            params, number = suggest(t, self.spec), self.again.pop(0)
            label = schedule_of(params, self.spec).label
        else:
            got = self.ask_new()
            if got is None:
                return None
            (t, params, label), number = got, self.next
            self.next += 1
        self.known.setdefault(label, None)
        return t, params, label, number

    def tell_result(self, t, label: str, result: dict | None, error: bool) -> None:
        """Tell the study how a sample of this run ended."""
        values = None
        if result and not error and result.get("phase") == "done":
            vals = [result.get(k) for k in self.spec.search.objectives]
            if all(v is not None and math.isfinite(v) for v in vals):
                values = [float(v) for v in vals]
        self.known[label] = values
        if values:
            self.study.tell(t, values)
        else:  # stopped early, failed or diverged: no objective values
            self.study.tell(t, state=TrialState.PRUNED if not error else TrialState.FAIL)


def make_searcher(spec: SweepSpec, done: list[dict], redo: list[tuple[dict, int]]):
    """A Ray Tune Searcher over an Optuna study, through Optuna's ask-and-tell.

    Why not ray.tune.search.optuna.OptunaSearch: with a define-by-run space (the shape
    decides which parameters exist) it cannot be told earlier results, and it passes
    a single ``value`` where a multi-objective study needs ``values`` (Ray 2.60,
    ``OptunaSearch.on_trial_complete``); both are what ``sweep resume`` needs. ``done``:
    records of sampled trials already finished or stopped, told to the study before it
    asks; ``redo``: (parameters, number) of samples a killed run left unfinished, asked
    again first under their own number."""
    # deferred: the offline commands import this module and must not pay for ray
    from ray.tune.search import Searcher

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class AskTell(Searcher):
        def __init__(self):
            super().__init__()
            self.asker = AskTellStudy(spec, done, redo)
            self.study = self.asker.study
            self.live: dict[str, Any] = {}

        def suggest(self, trial_id: str):
            got = self.asker.ask()
            if got is None:
                return Searcher.FINISHED  # the space holds nothing new
            t, params, label, number = got
            self.live[trial_id] = (t, label)
            return {"params": params, "number": number}

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            got = self.live.pop(trial_id, None)
            if got is not None:
                self.asker.tell_result(*got, result, error)

    return AskTell()


# ----------------------------------------------------------------------------- stopper


class Rungs:
    """The rung rule's bookkeeping: what each trial reported at each rung, and the
    verdict on a new report (the record of a dominated trial written here)."""

    def __init__(self, spec: SweepSpec, sweep_dir):
        self.spec, self.sweep_dir = spec, sweep_dir
        self.es = spec.search.early_stop
        self.at: dict[float, list[dict]] = {r: [] for r in self.es.rungs}
        self.judged: dict[str, set] = {}

    def rung_reached(self, tune_id: str, seen: int) -> float | None:
        """The highest rung passed and not yet judged (every passed rung then counts as
        judged: a trial is judged once per rung, on arrival)."""
        passed = [r for r in self.es.rungs if r * self.spec.budget.tokens <= seen]
        judged = self.judged.setdefault(tune_id, set())
        rung = max((r for r in passed if r not in judged), default=None)
        if rung is not None:
            judged.update(passed)
        return rung

    def stops(self, tune_id: str, config: dict, result: dict) -> bool:
        """Whether the sample this eval report came from is to be stopped."""
        spec, es, b = self.spec, self.es, self.spec.budget
        seen = int(result["tokens"])
        rung = self.rung_reached(tune_id, seen)
        if rung is None:
            return False
        t = sample_trial(config["params"], config["number"], spec)
        if not judgeable(t.plan(), seen, spec.schedules.l_max, b.tokens, es.min_at_l_max):
            return False
        me = {k: result.get(k) for k in ("far_loss", "id_loss", "far_loss_se", "id_loss_se")}
        me["flops"] = trial_flops(t)
        me["trial_id"] = t.trial_id
        keys = tuple(spec.search.objectives)
        by = dominating(me, self.at[rung], keys, es.noise_z)
        self.at[rung].append(me)
        if by is None:
            return False
        why = (
            f"dominated at rung {rung:g} ({seen:,} tokens) by {by['trial_id']}: "
            + ", ".join(f"{k} {me[k]:.4f} vs {by[k]:.4g}" for k in keys)
            + f" (beyond {es.noise_z:g} SE)"
        )
        stopped = TrialRecord.of(
            t,
            "stopped",
            rung=rung,
            reason=why,
            tokens_trained=seen,
            metrics={k: me[k] for k in ("far_loss", "id_loss", "flops")},
        )
        write_record(self.sweep_dir, stopped)
        return True


def make_stopper(spec: SweepSpec, sweep_dir):
    """Tune scheduler for ``search.early_stop``: at each rung (a budget fraction), a
    sampled trial that the rung rule allows to be judged is compared with the trials that
    reached the rung before it, and stopped (its record: status ``stopped``, the rung and
    the reason) when one of them dominates it beyond the noise. Asynchronous, as ASHA: a
    trial is judged once per rung, on arrival."""
    # deferred: the offline commands import this module and must not pay for ray
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class RungStopper(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.rungs = Rungs(spec, sweep_dir)
            self.at, self.judged = self.rungs.at, self.rungs.judged

        def on_trial_result(self, tune_controller, trial, result):
            cfg = trial.config
            if result.get("phase") != "eval" or "params" not in cfg:
                return TrialScheduler.CONTINUE
            if self.rungs.stops(trial.trial_id, cfg, result):
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    return RungStopper()
