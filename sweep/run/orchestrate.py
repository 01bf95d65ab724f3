"""Orchestration: the results directory, Ray start-up, the Ray Tune grid (one trial per
TrialSpec), terminal progress, and the hand-off to the aggregator and report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import yaml

from sweep.analysis.records import TrialRecord, read_record, record_path, write_text_atomic
from sweep.config.spec import FEW_HELD_OUT, SpecError, SweepSpec, TrialSpec, parse
from sweep.run import tune_search
from sweep.run.cost import fmt_tokens, longest_first
from sweep.run.progress import Progress, tune_callback
from sweep.run.search import params_of, sample_number, sample_records

# A multi-worker trial's Tune function only drives its Ray Train worker group, so it
# holds no CPU the workers need; Tune rejects an empty request, so it asks for a little
# memory instead. A single-worker trial trains in the Tune function and holds the worker's.
DRIVER_RESOURCES = {"cpu": 0, "memory": 64 * 1024**2}


def trial_resources(spec: SweepSpec) -> dict:
    r = spec.resources
    if r.workers_per_trial > 1:
        return DRIVER_RESOURCES
    return {"cpu": r.cpus_per_worker} | ({"gpu": r.gpus_per_worker} if r.gpus_per_worker else {})


def job_working_dir() -> str | None:
    """The ``working_dir`` of the Ray job this process drives (``ray job submit
    --working-dir``), when Ray unpacked it into a directory of its own: a per-node copy
    under the session's ``runtime_resources/``, gone with the session. None otherwise
    (not a job, no working_dir, or a ``local://`` one Ray uses in place)."""
    try:
        env = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        wd = (env.get("runtime_env") or {}).get("working_dir")
    except (ValueError, AttributeError):
        return None
    return wd if isinstance(wd, str) and wd and not wd.startswith("local://") else None


def sweep_dir_for(spec: SweepSpec, results_root: Path) -> Path:
    return sweep_dir_for_name(spec.name, results_root)


def sweep_dir_for_name(name: str, results_root: Path) -> Path:
    """``<results_root>/<name>``, absolute. A relative root in a ``--working-dir`` job
    would resolve into Ray's temporary copy of the code: refused."""
    wd = job_working_dir()
    if wd and not Path(results_root).is_absolute():
        raise SpecError(
            "--results",
            str(results_root),
            f"is relative, and this Ray job runs in Ray's temporary copy of its working_dir "
            f"({wd}), deleted with the session: pass an absolute path every node can write",
        )
    return Path(results_root).resolve() / name


@contextlib.contextmanager
def working_directory(path: Path):
    """Run the block in ``path``, then return to the directory it started in, by name.

    A ``--working-dir`` job's driver starts in Ray's unpacked copy of the code, and that
    copy can be deleted under it: a node's runtime-env agent that has not unpacked a
    package itself unpacks it with overwrite, deleting what is at that path first
    (``WorkingDirPlugin.create`` in ray/_private/runtime_env/working_dir.py, and
    ``download_and_unpack_package`` in packaging.py), and raylets on one machine share
    the session directory (``Node._init_temp`` in ray/_private/node.py). At the end of
    ``fit`` Tune lists its experiment through ``os.path.relpath`` on two relative paths
    (``_list_at_fs_path`` in ray/train/_internal/storage.py), which calls
    ``os.getcwd()``: FileNotFoundError in a deleted directory. The results directory is
    the driver's own."""
    try:
        before = os.getcwd()
    except FileNotFoundError:  # already deleted: nothing to return to
        before = None
    os.chdir(path)
    try:
        yield
    finally:
        if before is not None:
            # By name: a working_dir unpacked again is a new directory at the same path.
            with contextlib.suppress(OSError):
                os.chdir(before)


def prepare(
    spec: SweepSpec, sweep_dir: Path, overwrite: bool = False, check_only: bool = False
) -> None:
    """Create the results directory, or check an existing one holds this very spec
    (``check_only``: every check, nothing written: what the dry run does)."""

    def same(text: str) -> bool:  # this spec, or it with seeds added (kept trials stand)
        return _same(lambda: adds_seeds(parse(yaml.safe_load(text)), spec), True)

    claim_dir(sweep_dir, "spec.yaml", spec.to_dict(), same, "sweep", overwrite, check_only)


def claim_dir(
    d: Path,
    name: str,
    content: dict,
    same: Callable[[str], bool],
    kind: str,
    overwrite: bool,
    check_only: bool = False,
) -> None:
    """Create results directory ``d`` with ``content`` as its YAML file ``name``, or check
    an existing one holds the same (``same`` of the stored text); ``kind``: what the
    directory holds (a sweep, a study), for the errors. ``check_only``: refuse what the
    real call would refuse, write nothing."""
    path = d / name
    if d.exists() and overwrite:
        if not check_only:
            shutil.rmtree(d)
    elif path.exists():
        if not same(path.read_text()):
            raise SpecError(
                "--results",
                str(d),
                f"already holds a {kind} with a different spec "
                "(pass --overwrite or another --results)",
            )
    elif d.exists() and any(d.iterdir()):
        raise SpecError("--results", str(d), f"exists and is not a {kind}'s results directory")
    if check_only:
        _check_writable(d)
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, yaml.safe_dump(content, sort_keys=False))
    except OSError as exc:
        why = f"cannot be written ({exc.strerror or type(exc).__name__})"
        raise SpecError("--results", str(d), why) from None


def _check_writable(d: Path) -> None:
    """Whether ``d`` could be created and written, judged from its nearest existing
    ancestor (without creating anything)."""
    probe = Path(d).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SpecError("--results", str(d), "cannot be written (Not a directory)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SpecError("--results", str(d), "cannot be written (Permission denied)")


def preflight_run(
    spec: SweepSpec, sweep_dir: Path, address: str | None, overwrite: bool, out: TextIO
):
    """Every check ``sweep run`` makes before it starts anything, for the run and the dry
    run alike: the cluster address or this machine's resources, the corpus and the
    evaluation's feasibility (held-out documents, windows of E+1), and the results
    directory (writable, and empty or holding this very spec). Writes nothing; returns
    the corpus split it checked."""
    # deferred: data imports datasets at its top; the offline commands must not pay for it
    from sweep.train import data

    check_cluster(spec, address)  # cheap: an unreachable address fails first
    parts = data.check_eval_feasible(spec.data, spec.eval, spec.schedules.l_max)
    prepare(spec, sweep_dir, overwrite, check_only=True)
    print(
        f"held-out: {len(parts.held_out)} documents after removing "
        f"{parts.held_out_removed} that overlap the train split "
        f"({parts.held_out_exact} share a verbatim span, {parts.held_out_near} "
        f"near-duplicates); evaluating on {spec.eval.sequences} windows of "
        f"E+1 = {spec.eval_length + 1} tokens at random offsets",
        file=out,
        flush=True,
    )
    if len(parts.held_out) < FEW_HELD_OUT:
        print(
            f"warning: only {len(parts.held_out)} held-out documents (fewer than "
            f"{FEW_HELD_OUT}): intervals over documents will be wide; raise "
            "data.held_out_fraction or use a larger corpus",
            file=out,
            flush=True,
        )
    return parts


def _same(load, want) -> bool:
    """Whether a stored spec (or trial config) parses to ``want``: compared as parsed
    specs, so fields added with defaults since it was written do not count as changes;
    one that no longer parses is a different spec."""
    try:
        return load() == want
    except (SpecError, KeyError, TypeError, ValueError):
        return False


def load_sweep_dir(sweep_dir: Path) -> SweepSpec:
    spec_path = Path(sweep_dir) / "spec.yaml"
    if not Path(sweep_dir).is_dir():
        raise SpecError("DIR", str(sweep_dir), "does not exist")
    if not spec_path.is_file():
        raise SpecError("DIR", str(sweep_dir), "is not a sweep's results directory (no spec.yaml)")
    return parse(yaml.safe_load(spec_path.read_text()))


def adds_seeds(stored: SweepSpec, want: SweepSpec) -> bool:
    """Whether ``want`` is ``stored`` with more seeds and nothing else changed: a trial
    trains the same whatever other seeds its sweep lists, so the finished ones stand."""
    return set(stored.seeds) <= set(want.seeds) and stored == replace(want, seeds=stored.seeds)


def finished_ids(trials: list[TrialSpec], sweep_dir: Path) -> set[str]:
    """Trials whose record is finished (or diverged) for exactly this trial config (the
    sweep's list of seeds aside: adding seeds to a sweep keeps its finished trials)."""

    def stored(rec: TrialRecord, t: TrialSpec) -> TrialSpec | None:
        got = rec.spec  # None: the record's config no longer parses, so it differs
        return got and replace(got, sweep=replace(got.sweep, seeds=t.sweep.seeds))

    done = set()
    for t in trials:
        rec = read_record(record_path(sweep_dir, t.trial_id))
        if (
            rec
            and rec.status in ("finished", "diverged")
            and _same(lambda rec=rec, t=t: stored(rec, t), t)
        ):
            done.add(t.trial_id)
    return done


def start_ray(address: str | None, out: TextIO) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS); otherwise start Ray on this machine.
    Returns True when this process started Ray and so must shut it down."""
    import ray  # deferred: the offline commands that import this module must not pay for ray

    t0 = time.time()
    address = address or os.environ.get("RAY_ADDRESS")
    quiet: dict = {"log_to_driver": False, "logging_level": logging.WARNING}
    if os.environ.get("WANDB_API_KEY"):
        # Reaches remote workers through Ray's runtime environment (held in memory by the
        # cluster), never through a config, record or log this tool writes.
        quiet["runtime_env"] = {"env_vars": {"WANDB_API_KEY": os.environ["WANDB_API_KEY"]}}
    if address:
        ray.init(address=address, **quiet)
        where = f"connected to Ray at {address}"
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
        where = "started Ray locally"
    res = ray.cluster_resources()
    print(
        f"{where} in {time.time() - t0:.1f}s: {res.get('CPU', 0):g} CPUs, "
        f"{res.get('GPU', 0):g} GPUs, {len(ray.nodes())} node(s)",
        file=out,
        flush=True,
    )
    return not address


def check_cluster(spec: SweepSpec, address: str | None) -> None:
    """Checks that need no Ray: the cluster address answers, or, when running locally,
    this machine can hold one trial. Raises SpecError before anything is written."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        hostport = address.split("://")[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host or hostport, int(port or 6379)), timeout=5).close()
        except (OSError, ValueError) as exc:
            raise SpecError("--address", address, f"unreachable ({exc})") from None
        return
    if address:
        return
    cpus = os.cpu_count() or 1
    gpus = 0
    if spec.resources.gpus_per_worker > 0:
        import torch  # deferred: only a GPU spec pays for torch here

        gpus = torch.cuda.device_count()
    refuse_unfit(spec, cpus, gpus, cpus, gpus, "this machine")


def check_resources(spec: SweepSpec) -> None:
    """The same refusal against the Ray cluster's live nodes."""
    import ray  # deferred: the offline commands that import this module must not pay for ray

    alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    total = ray.cluster_resources()
    refuse_unfit(
        spec,
        max((n.get("CPU", 0) for n in alive), default=0),
        max((n.get("GPU", 0) for n in alive), default=0),
        total.get("CPU", 0),
        total.get("GPU", 0),
        "the cluster",
    )


def refuse_unfit(
    spec: SweepSpec,
    node_cpus: float,
    node_gpus: float,
    total_cpus: float,
    total_gpus: float,
    where: str,
) -> None:
    """A trial that no node can hold would wait forever: refuse it up front."""
    r = spec.resources
    if r.cpus_per_worker > node_cpus:
        raise SpecError(
            "resources.cpus_per_worker",
            r.cpus_per_worker,
            f"no node of {where} has that many CPUs (largest has {node_cpus:g})",
        )
    if r.gpus_per_worker > node_gpus:
        raise SpecError(
            "resources.gpus_per_worker",
            r.gpus_per_worker,
            f"no node of {where} has that many GPUs (largest has {node_gpus:g})",
        )
    for kind, need, have in (
        ("CPUs", r.workers_per_trial * r.cpus_per_worker, total_cpus),
        ("GPUs", r.workers_per_trial * r.gpus_per_worker, total_gpus),
    ):
        if need > have:
            raise SpecError(
                "resources.workers_per_trial",
                r.workers_per_trial,
                f"needs {need:g} {kind}, {where} has {have:g}",
            )


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    address: str | None = None,
    out: TextIO = sys.stdout,
    only: set[str] | None = None,
) -> list[str]:
    """Run every trial of ``spec`` (of the schedules in ``only``, when given) not already
    finished in ``sweep_dir``; returns the ids of the trials that ran. Finished records are
    never touched, so a crash loses nothing. The trials read the spec ``prepare`` stored
    in ``sweep_dir``."""
    quiet_tune()
    trials = [t for t in spec.trials() if only is None or t.schedule.label in only]
    done = finished_ids(trials, sweep_dir)
    pending = longest_first([t for t in trials if t.trial_id not in done])
    s_done, s_redo = sample_records(sweep_dir) if spec.search is not None else ([], [])
    samples = spec.search.num_samples if spec.search is not None else 0
    remaining = max(0, samples - len(s_done))
    if not pending and not remaining:
        print(
            f"sweep {spec.name}: nothing to resume: all {len(trials)} trials have ended; "
            f"results in {sweep_dir}",
            file=out,
            flush=True,
        )
        return []
    say_plan(spec, sweep_dir, len(trials), len(done), samples, remaining, out)
    # deferred: ray stays out of the offline commands that import this module
    import ray

    started_here = start_ray(address, out)
    try:
        check_resources(spec)
        if pending:  # the fixed trials first: a search's samples are judged against them
            _fit_grid(spec, sweep_dir, pending, len(done), out)
        if remaining:
            _fit_search(spec, sweep_dir, s_done, s_redo, remaining, out)
    finally:
        if started_here:
            ray.shutdown()
    return [t.trial_id for t in pending]


def quiet_tune() -> None:
    """Keep Tune's own output and files to what the progress lines and records lack."""
    # Tune's boxed banners would drown the progress lines this module prints.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The trial record is the result; Tune's own per-trial JSON/CSV/TensorBoard logs would
    # duplicate it, and importing TensorBoardX (and with it torch) adds ~2 s to start-up.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # deferred: ray stays out of the offline commands that import this module
    import ray  # noqa: F401  (ray sets up its loggers on import; the level below comes after)

    # With those loggers off, Tune's end-of-run analysis warns that it finds no
    # result.json for any trial; the records are the results, so the warning misleads.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def say_plan(
    spec: SweepSpec,
    sweep_dir: Path,
    n_trials: int,
    n_done: int,
    samples: int,
    remaining: int,
    out: TextIO,
) -> None:
    """The lines a sweep opens with: its trials, and its search's samples."""
    print(
        f"sweep {spec.name}: {n_trials} trials ({n_done} already finished), "
        f"{fmt_tokens(spec.budget.tokens)} tokens each, up to "
        f"{spec.resources.max_concurrent_trials} at a time; results in {sweep_dir}",
        file=out,
        flush=True,
    )
    if samples:
        print(
            f"search: {samples} sampled schedules ({samples - remaining} already done), "
            f"{spec.search.sampler} on {' and '.join(spec.search.objectives)}, up to "
            f"{spec.search.max_concurrent} at a time",
            file=out,
            flush=True,
        )


def _fit_grid(spec: SweepSpec, sweep_dir: Path, pending: list, kept: int, out: TextIO) -> None:
    # deferred: ray stays out of the offline commands that import this module
    from ray import tune

    _tune(
        spec,
        sweep_dir,
        tune_search.run_trial,
        {
            "spec": str(sweep_dir / tune_search.SPEC_FILE),
            "trial_id": tune.grid_search([t.trial_id for t in pending]),
        },
        "tune",
        Progress([t.trial_id for t in pending], kept, out, spec, sweep_dir),
        lambda t: t.config["trial_id"],
        max_concurrent_trials=spec.resources.max_concurrent_trials,
    )


def _tune(
    spec: SweepSpec,
    sweep_dir: Path,
    trainable: Callable,
    param_space: dict,
    name: str,
    progress: Progress,
    trial_name: Callable,
    **tune_config,
) -> None:
    """One Tune run under ``<sweep_dir>/ray/<name>``: the grid's and the search's share
    everything but the trainable, its parameters and how trials are chosen."""
    # deferred: ray stays out of the offline commands that import this module
    from ray import tune

    r = spec.resources
    single = r.workers_per_trial == 1
    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources(spec)),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            # A finished single-worker trial hands its warm process (imports, process
            # group) to the next one; worker groups are per trial anyway.
            reuse_actors=single,
            **tune_config,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(sweep_dir / "ray"),
            verbose=0,
            callbacks=[tune_callback(progress)],
            # Restarts: Tune's for a trial that trains in its own process, Ray Train's
            # for a worker group (both would multiply the retries).
            failure_config=tune.FailureConfig(max_failures=r.max_failures if single else 0),
        ),
    )
    # Tune's end-of-run analysis needs a working directory that still exists.
    with working_directory(sweep_dir):
        tuner.fit()


def _fit_search(
    spec: SweepSpec,
    sweep_dir: Path,
    done: list[TrialRecord],
    redo_recs: list[TrialRecord],
    remaining: int,
    out: TextIO,
) -> None:
    """The searcher's samples, after the fixed trials: Optuna (tune_search.make_searcher)
    proposes, Tune runs up to ``search.max_concurrent`` at a time, the rung rule stops
    (``search.early_stop``)."""
    # deferred: ray stays out of the offline commands that import this module
    from ray.tune.search import ConcurrencyLimiter

    q = spec.search
    redo = [(params_of(rec.spec.schedule, spec), sample_number(rec.trial_id)) for rec in redo_recs]
    searcher = tune_search.make_searcher(spec, done, redo)
    _tune(
        spec,
        sweep_dir,
        tune_search.run_sample,
        {"spec": str(sweep_dir / tune_search.SPEC_FILE)},
        "search",
        Progress([f"?{i}" for i in range(remaining)], len(done), out, spec, sweep_dir),
        lambda t: f"q{t.config['number']:03d}",
        search_alg=ConcurrencyLimiter(searcher, max_concurrent=q.max_concurrent),
        num_samples=remaining,
        scheduler=tune_search.make_stopper(spec, sweep_dir) if q.early_stop.enabled else None,
    )
