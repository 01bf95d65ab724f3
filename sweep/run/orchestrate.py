"""Orchestration: the results directory, Ray start-up, the Ray Tune grid (one trial per
TrialSpec), terminal progress, and the hand-off to the aggregator and report."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import yaml

from sweep.analysis.records import read_record, record_path, write_text_atomic
from sweep.config import schedules
from sweep.config.spec import FEW_HELD_OUT, SpecError, SweepSpec, TrialSpec, parse

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
    (ray/_private/runtime_env/working_dir.py:265, packaging.py:934-936), and raylets on
    one machine share the session directory (ray/_private/node.py:771). At the end of
    ``fit`` Tune lists its experiment through ``os.path.relpath`` on two relative paths
    (ray/train/_internal/storage.py:261), which calls ``os.getcwd()``: FileNotFoundError
    in a deleted directory. The results directory is the driver's own."""
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
    from sweep.train import data

    preflight(spec, address)  # cheap: an unreachable address fails first
    parts = data.check_eval_feasible(spec.data, spec.eval, spec.schedules.l_max)
    prepare(spec, sweep_dir, overwrite, check_only=True)
    print(
        f"held-out: {len(parts.held_out)} documents after removing "
        f"{parts.held_out_removed} that overlap the train split "
        f"({parts.held_out_exact} share a verbatim span, {parts.held_out_near} "
        f"near-duplicates); evaluating on {spec.eval.sequences} windows of "
        f"E+1 = {spec.eval.length(spec.schedules.l_max) + 1} tokens at random offsets",
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
    return parse(yaml.safe_load(spec_path.read_text()), paths=False)


def adds_seeds(stored: SweepSpec, want: SweepSpec) -> bool:
    """Whether ``want`` is ``stored`` with more seeds and nothing else changed: a trial
    trains the same whatever other seeds its sweep lists, so the finished ones stand."""
    return set(stored.seeds) <= set(want.seeds) and stored == replace(want, seeds=stored.seeds)


def finished_ids(trials: list[TrialSpec], sweep_dir: Path) -> set[str]:
    """Trials whose record is finished (or diverged) for exactly this trial config (the
    sweep's list of seeds aside: adding seeds to a sweep keeps its finished trials)."""

    def stored(rec: dict, t: TrialSpec) -> TrialSpec:
        got = TrialSpec.from_dict(rec["config"])
        return replace(got, sweep=replace(got.sweep, seeds=t.sweep.seeds))

    done = set()
    for t in trials:
        rec = read_record(record_path(sweep_dir, t.trial_id))
        if (
            rec
            and rec.get("status") in ("finished", "diverged")
            and _same(lambda rec=rec, t=t: stored(rec, t), t)
        ):
            done.add(t.trial_id)
    return done


def _fmt_tokens(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


class Progress:
    """Terminal progress: trials done / running / pending and running trials' tokens.
    Built lazily on a Tune Callback so importing this module starts nothing."""

    def __new__(cls, *args, **kwargs):
        from ray import tune

        class _Progress(tune.Callback):
            def __init__(self, ids: list[str], kept: int, out: TextIO, every_s: float = 15.0):
                self.state = dict.fromkeys(ids, "pending")
                self.names: dict[str, str] = {}
                self.kept, self.out, self.every_s = kept, out, every_s
                self.live: dict[str, dict] = {}
                self.t0 = time.time()
                self.last = 0.0

            def _id(self, trial) -> str:
                if "trial" in trial.config:
                    return trial.config["trial"]["trial_id"]
                tid = self.names.get(trial.trial_id)
                if tid is None:  # a searched trial: its id comes from its parameters
                    from sweep.config.spec import parse
                    from sweep.run.search import sample_trial

                    cfg = trial.config
                    sw = parse(cfg["sweep"], paths=False)
                    tid = sample_trial(cfg["params"], cfg["number"], sw).trial_id
                    self.names[trial.trial_id] = tid
                    # a search's trials are known only when asked: take a placeholder's place
                    slot = next((k for k in self.state if k.startswith("?")), None)
                    if slot is not None:
                        del self.state[slot]
                    self.state[tid] = "pending"
                return tid

            def _say(self, msg: str) -> None:
                el = int(time.time() - self.t0)
                print(f"[{el // 60:02d}:{el % 60:02d}] {msg}", file=self.out, flush=True)

            def status(self) -> str:
                n = list(self.state.values())
                parts = [
                    f"{n.count('done') + self.kept}/{len(n) + self.kept} done",
                    f"{n.count('running')} running",
                    f"{n.count('pending')} pending",
                ]
                if n.count("failed"):
                    parts.append(f"{n.count('failed')} failed")
                runs = [
                    f"{tid} {100 * r['tokens'] / r['budget']:.0f}% "
                    f"({_fmt_tokens(r['tokens'])}, L={r.get('seq_len', '?')}, "
                    f"loss {r.get('loss', float('nan')):.3f})"
                    for tid, r in self.live.items()
                    if self.state[tid] == "running"
                ]
                return " | ".join([", ".join(parts), *runs])

            def on_trial_start(self, iteration, trials, trial, **info):
                self.state[self._id(trial)] = "running"
                self._say(f"started {self._id(trial)}; {self.status()}")

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if result.get("phase") == "train":
                    self.live[self._id(trial)] = result
                if time.time() - self.last >= self.every_s:
                    self.last = time.time()
                    self._say(self.status())

            def on_trial_complete(self, iteration, trials, trial, **info):
                tid = self._id(trial)
                self.state[tid] = "done"
                rec = read_record(record_path(Path(trial.config["sweep_dir"]), tid))
                self._say(f"{trial_line(tid, rec)}; {self.status()}")

            def on_trial_error(self, iteration, trials, trial, **info):
                tid = self._id(trial)
                self.state[tid] = "failed"
                rec = read_record(record_path(Path(trial.config["sweep_dir"]), tid))
                self._say(f"{tid} FAILED: {(rec or {}).get('error', '?')}; {self.status()}")

        return _Progress(*args, **kwargs)


def trial_line(tid: str, rec: dict | None) -> str:
    """One line on how a trial ended: its losses, or why it has none (a diverged trial's
    error names the step and the loss)."""
    if not rec:
        return f"{tid} ended"
    msg = f"{tid} {rec.get('status')}"
    m = rec.get("metrics") or {}
    if rec.get("status") != "finished" and rec.get("error"):
        return f"{msg}: {rec['error']}"
    if all(isinstance(m.get(k), (int, float)) for k in ("id_loss", "far_loss")):
        msg += f": id_loss {m['id_loss']:.4f} far_loss {m['far_loss']:.4f}"
    return msg + f" in {rec.get('wall_s') or 0:.0f}s"


def start_ray(address: str | None, out: TextIO) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS); otherwise start Ray on this machine.
    Returns True when this process started Ray and so must shut it down."""
    import ray

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


def preflight(spec: SweepSpec, address: str | None) -> None:
    """Checks that need no Ray: the cluster address answers, or, when running locally,
    this machine can hold one trial. Raises SpecError before anything is written."""
    import socket

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
        import torch

        gpus = torch.cuda.device_count()
    refuse_unfit(spec, cpus, gpus, cpus, gpus, "this machine")


def check_resources(spec: SweepSpec) -> None:
    """The same refusal against the Ray cluster's live nodes."""
    import ray

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


def non_embedding_params(m) -> int:
    """N of a ``ModelSpec`` without building it (no torch on the driver): exact for the
    btlm-proxy (per layer qkv and output 4 d^2, SwiGLU 3 d d_ff, two LayerNorms 4 d; a
    final LayerNorm 2 d; tests/unit/test_orchestrate.py checks it against the built model),
    Kaplan's 12 n_layers d^2 for a transformers architecture."""
    if m.arch != "btlm-proxy":
        return 12 * m.n_layers * m.d_model**2
    d_ff = 32 * math.ceil(m.ffn_mult * m.d_model / 32)  # as BtlmProxyConfig.d_ff
    return m.n_layers * (4 * m.d_model**2 + 3 * m.d_model * d_ff + 4 * m.d_model) + 2 * m.d_model


def sparse_attention(spec: SweepSpec) -> bool:
    """Whether window mode's masked keys are skipped: only under a block-sparse kernel
    (FlexAttention, the proxy's default on CUDA); SDPA with a mask scores every key."""
    m = spec.model
    return m.arch == "btlm-proxy" and (
        m.attention == "flex" or (m.attention == "auto" and spec.resources.gpus_per_worker > 0)
    )


def trial_flops(t: TrialSpec) -> float:
    """Training FLOPs of a trial (Kaplan, attention included): what the dry run shows and
    what the sweep orders its trials by."""
    m = t.sweep.model
    return t.plan().flops(
        non_embedding_params(m), m.n_layers, m.d_model, sparse=sparse_attention(t.sweep)
    )


def longest_first(trials: list[TrialSpec]) -> list[TrialSpec]:
    """Trials by estimated training FLOPs, largest first (LPT scheduling): packed k at a
    time, a long trial then never runs alone at the end while the other slots idle.
    Ties keep the spec's order."""
    return sorted(trials, key=trial_flops, reverse=True)


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    address: str | None = None,
    out: TextIO = sys.stdout,
    only: set[str] | None = None,
) -> list[str]:
    """Run every trial of ``spec`` (of the schedules in ``only``, when given) not already
    finished in ``sweep_dir``; returns the ids of the trials that ran. Finished records are
    never touched, so a crash loses nothing."""
    # Tune's boxed banners would drown the progress lines this module prints.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The trial record is the result; Tune's own per-trial JSON/CSV/TensorBoard logs would
    # duplicate it, and importing TensorBoardX (and with it torch) adds ~2 s to start-up.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray

    # With those loggers off, Tune's end-of-run analysis warns that it finds no
    # result.json for any trial; the records are the results, so the warning misleads.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

    trials = [t for t in spec.trials() if only is None or t.schedule.label in only]
    done = finished_ids(trials, sweep_dir)
    pending = longest_first([t for t in trials if t.trial_id not in done])
    r = spec.resources
    samples = remaining = 0
    if spec.search is not None:
        from sweep.run.search import sample_records

        s_done, s_redo = sample_records(sweep_dir)
        samples = spec.search.num_samples
        remaining = max(0, samples - len(s_done))
    if not pending and not remaining:
        print(
            f"sweep {spec.name}: nothing to resume: all {len(trials)} trials have ended; "
            f"results in {sweep_dir}",
            file=out,
            flush=True,
        )
        return []
    print(
        f"sweep {spec.name}: {len(trials)} trials ({len(done)} already finished), "
        f"{_fmt_tokens(spec.budget.tokens)} tokens each, up to {r.max_concurrent_trials} at a "
        f"time; results in {sweep_dir}",
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
    if not pending and not remaining:
        return []
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


def _fit_grid(spec: SweepSpec, sweep_dir: Path, pending: list, kept: int, out: TextIO) -> None:
    from ray import tune

    from sweep.train.trial import run_trial

    _tune(
        spec,
        sweep_dir,
        run_trial,
        {"trial": tune.grid_search([t.to_dict() for t in pending]), "sweep_dir": str(sweep_dir)},
        "tune",
        Progress([t.trial_id for t in pending], kept, out),
        lambda t: t.config["trial"]["trial_id"],
        max_concurrent_trials=spec.resources.max_concurrent_trials,
    )


def _tune(
    spec: SweepSpec,
    sweep_dir: Path,
    trainable: Callable,
    param_space: dict,
    name: str,
    progress,
    trial_name: Callable,
    **tune_config,
) -> None:
    """One Tune run under ``<sweep_dir>/ray/<name>``: the grid's and the search's share
    everything but the trainable, its parameters and how trials are chosen."""
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
            callbacks=[progress],
            # Restarts: Tune's for a trial that trains in its own process, Ray Train's
            # for a worker group (both would multiply the retries).
            failure_config=tune.FailureConfig(max_failures=r.max_failures if single else 0),
        ),
    )
    # Tune's end-of-run analysis needs a working directory that still exists.
    with working_directory(sweep_dir):
        tuner.fit()


def trial_overhead_s(spec: SweepSpec) -> float:
    """Start of a trial to its first step, measured on the 2-core reference machine
    (bench/sweep_vs_serial.py): imports, corpus, DeepSpeed and W&B in the Tune trial's
    process (~5 s; under 1 s when Tune reuses a warm one), plus ~15 s to start a Ray
    Train worker group when a trial has several workers."""
    return 5.0 if spec.resources.workers_per_trial == 1 else 20.0


def measure_step_seconds(spec: SweepSpec, model, steps: int = 2) -> float:
    """Wall seconds of one optimizer step at l_max on this machine, measured with the
    spec's model and the threads one worker gets (a warm-up step, then ``steps`` timed)."""
    import torch

    torch.set_num_threads(spec.resources.cpus_per_worker)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    L = spec.schedules.l_max
    rows = max(1, spec.budget.tokens_per_step // L // spec.resources.workers_per_trial)
    from sweep.train.evaluate import cpu_precision

    x = torch.randint(0, 256, (rows, L))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with cpu_precision(spec):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure_eval_seconds(spec: SweepSpec, model) -> float:
    """Wall seconds of a trial's final evaluation on this machine: one batch of the
    per-position eval at E and the probes on one sequence, timed with the spec's threads
    and precision, scaled to ``eval.sequences`` and ``eval.probe_sequences``."""
    import numpy as np
    import torch

    from sweep.train import evaluate

    torch.set_num_threads(spec.resources.cpus_per_worker)
    ev, L = spec.eval, spec.schedules.l_max
    E = ev.length(L)
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 256, (ev.batch_size, E + 1))
    with evaluate.cpu_precision(spec):
        t0 = time.perf_counter()
        losses = evaluate.per_position_losses(model, seqs, ev.batch_size, "cpu")
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate.context_probes(model, seqs[:1], np.ones(1, bool), losses[:1], ev, L, "cpu")
        t_probe = time.perf_counter() - t0
    return t_eval * ev.sequences / ev.batch_size + t_probe * min(ev.probe_sequences, ev.sequences)


MEASURE_SHARE = 0.5  # of the available memory a dry run's timing measurement may take


def measurement_bytes(spec: SweepSpec, vocab: int = 257) -> int:
    """An upper bound on the memory of the dry run's two timing measurements, whichever
    is larger: one training step at l_max (attention scores, softmax and bias per layer
    kept for the backward pass, ~20 activations of width d_model per layer, logits) and
    one evaluation batch at E (attention in chunks of evaluate.CHUNK query positions)."""
    from sweep.train.evaluate import CHUNK

    m, r = spec.model, spec.resources
    L, E = spec.schedules.l_max, spec.eval.length(spec.schedules.l_max)
    rows = max(1, spec.budget.tokens_per_step // L // r.workers_per_trial)
    f32 = 4
    step = rows * L * f32 * (3 * m.n_heads * L * m.n_layers + 20 * m.d_model * m.n_layers)
    step += 3 * rows * L * vocab * f32
    b = spec.eval.batch_size
    ev = b * f32 * (3 * m.n_heads * min(CHUNK, E) * E + 10 * E * m.d_model + 3 * E * vocab)
    return int(max(step, ev))


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def dry_run(spec: SweepSpec, out: TextIO = sys.stdout, measure: bool = True) -> list[dict]:
    """List the trials with token budget, FLOPs and estimated time here; start nothing.
    Time is the measured step time at l_max scaled by each trial's FLOPs, plus the
    per-trial start-up overhead, with trials packed ``max_concurrent_trials`` at a time."""
    from sweep.train.model import build

    m, b = spec.model, spec.budget
    if measure and spec.resources.gpus_per_worker > 0:
        import torch

        # A GPU-sized step on this machine's CPU would take minutes and say nothing.
        measure = torch.cuda.is_available()
    step_s = eval_s = float("nan")
    unmeasured = "the spec asks for GPUs; this machine has none"
    need, have = measurement_bytes(spec), available_bytes()
    if measure and need > MEASURE_SHARE * have:
        # what the measurement cannot afford it does not try: it would take the machine down
        measure = False
        unmeasured = (
            f"measuring would need ~{need / 2**30:.1f} GiB, over {MEASURE_SHARE:.0%} of "
            f"the {have / 2**30:.1f} GiB available here"
        )
    if measure:
        model = build(m, 257)
        step_s = measure_step_seconds(spec, model)
        eval_s = measure_eval_seconds(spec, model)
    const = schedules.plan(
        schedules.ScheduleSpec("constant", spec.schedules.l_min, spec.schedules.l_max),
        b.tokens_per_step,
        b.tokens_per_step,
    )
    flops_per_step_at_lmax = const.flops(non_embedding_params(m), m.n_layers, m.d_model)
    overhead = trial_overhead_s(spec)
    rows = []
    trials = spec.trials()
    w = max(24, *(len(t.trial_id) for t in trials))
    print(
        f"{'trial':<{w}} {'mode':<11} {'steps':>6} {'tokens':>10} {'at l_max':>9} "
        f"{'GFLOPs':>9} {'est. s':>7}  tokens at each length (window, in window mode)",
        file=out,
    )
    for t in trials:
        p, flops = t.plan(), trial_flops(t)
        est = overhead + step_s * flops / flops_per_step_at_lmax + eval_s
        rows.append(
            {
                "trial_id": t.trial_id,
                "mode": t.schedule.mode,
                "steps": p.steps,
                "tokens": p.total_tokens,
                "flops": flops,
                "est_s": est,
            }
        )
        by_len = ", ".join(f"{k}:{_fmt_tokens(v)}" for k, v in p.tokens_by_length().items())
        print(
            f"{t.trial_id:<{w}} {t.schedule.mode:<11} {p.steps:>6} {p.total_tokens:>10} "
            f"{_fmt_tokens(p.tokens_by_length().get(t.schedule.l_max, 0)):>9} "
            f"{flops / 1e9:>9.1f} {est:>7.0f}  {by_len}",
            file=out,
        )
    slots = spec.resources.max_concurrent_trials
    total = sum(r["est_s"] for r in rows) / min(slots, len(rows))
    if spec.search is not None:
        # a sample costs at most a reference trial (every search shape trains the budget)
        q, ref = spec.search, max(r["est_s"] for r in rows)
        total += q.num_samples * ref / min(q.max_concurrent, slots)
        print(
            f"+ search: {q.num_samples} sampled schedules ({q.sampler} on "
            f"{' and '.join(q.objectives)}), each at most {_fmt_tokens(b.tokens)} tokens "
            f"and ~{ref:.0f}s" + (", fewer when stopped at a rung" if q.early_stop.enabled else ""),
            file=out,
        )
    when = (
        f"estimated {total / 60:.1f} min here at {min(slots, len(rows))} at a time "
        f"(one step at l_max measured at {step_s:.2f}s, a trial's evaluation at {eval_s:.0f}s)"
        if math.isfinite(step_s)
        else f"time not estimated ({unmeasured})"
    )
    print(
        f"{len(rows)} trials; {sum(r['flops'] for r in rows) / 1e12:.2f} TFLOPs in all; "
        f"{when}; nothing started (--dry-run)",
        file=out,
    )
    return rows


def _fit_search(
    spec: SweepSpec, sweep_dir: Path, done: list, redo_recs: list, remaining: int, out: TextIO
) -> None:
    """The searcher's samples, after the fixed trials: Optuna (sweep.run.search.make_searcher)
    proposes, Tune runs up to ``search.max_concurrent`` at a time, the rung rule stops
    (``search.early_stop``)."""
    from ray.tune.search import ConcurrencyLimiter

    from sweep.run.search import make_searcher, make_stopper, params_of, sample_number
    from sweep.train.trial import run_sample

    q = spec.search
    redo = [
        (
            params_of(TrialSpec.from_dict(rec["config"]).schedule, spec),
            sample_number(rec["trial_id"]),
        )
        for rec in redo_recs
    ]
    searcher = ConcurrencyLimiter(make_searcher(spec, done, redo), max_concurrent=q.max_concurrent)
    _tune(
        spec,
        sweep_dir,
        run_sample,
        {"sweep": spec.to_dict(), "sweep_dir": str(sweep_dir)},
        "search",
        Progress([f"?{i}" for i in range(remaining)], len(done), out),
        lambda t: f"q{t.config['number']:03d}",
        search_alg=searcher,
        num_samples=remaining,
        scheduler=make_stopper(spec, sweep_dir) if q.early_stop.enabled else None,
    )
