"""One trial: a Ray Tune function that trains in its own process (one worker) or drives a
Ray Train worker group (several); each worker trains the proxy model under its schedule
with a DeepSpeed ZeRO engine, evaluates per position far past l_max, and rank 0 writes
the trial record atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweep import metrics, schedules
from sweep.spec import SweepSpec, TrialSpec

STATUSES = ("finished", "failed", "diverged", "running")
STATE_FILE = "trial_state.json"  # the loop state inside a checkpoint


# ----------------------------------------------------------------------------- records


def trial_dir(sweep_dir: Path, trial_id: str) -> Path:
    return Path(sweep_dir) / "trials" / trial_id


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary sibling, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities become null), readable by any JSON parser."""
    write_text_atomic(path, json.dumps(_finite(obj), allow_nan=False))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def write_record(sweep_dir: Path, trial: TrialSpec, status: str, **fields: Any) -> dict:
    assert status in STATUSES, status
    record = {
        "trial_id": trial.trial_id,
        "status": status,
        "schedule": trial.schedule.label,
        "shape": trial.schedule.shape,
        "ramp_rate": trial.schedule.ramp_rate,
        "role": trial.role,
        "seed": trial.seed,
        "l_max": trial.schedule.l_max,
        "eval_length": trial.sweep.eval.length(trial.schedule.l_max),
        "config": trial.to_dict(),
        **fields,
    }
    write_json_atomic(trial_dir(sweep_dir, trial.trial_id) / "record.json", record)
    return record


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- worker


def token_loss_sum(
    engine,
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    device,
    doc_eos: int | None,
    window: int = 0,
):
    """Summed cross-entropy over the valid targets of ``rows`` (0 for no rows: a worker
    with nothing left in a short final step still takes part in the collective step);
    ``window`` > 0 limits attention to the last ``window`` keys (window mode).
    Targets are already shifted, so the loss is taken here, the same way for the proxy
    and for any transformers model (which would shift labels once more)."""
    import torch

    if len(rows) == 0:
        rows = np.array([0])
        y = np.full_like(y, -100)
    xb = torch.as_tensor(x[rows], device=device)
    yb = torch.as_tensor(y[rows], device=device)
    extra = {}
    if doc_eos is not None:
        from sweep.data import Batcher

        extra["doc_ids"] = torch.as_tensor(Batcher.doc_ids(x[rows], doc_eos), device=device)
    if window > 0:
        extra["window"] = window
    logits = engine(input_ids=xb, **extra).logits
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), yb.flatten(), ignore_index=-100, reduction="sum"
    )


def deepspeed_config(spec: SweepSpec, world: int, use_gpu: bool) -> dict:
    micro = spec.budget.micro_batches
    rows_at_lmax = max(1, spec.budget.tokens_per_step // spec.schedules.l_max // world // micro)
    return {
        "train_micro_batch_size_per_gpu": rows_at_lmax,
        "gradient_accumulation_steps": micro,
        "gradient_clipping": spec.optim.grad_clip,
        "zero_optimization": {"stage": spec.deepspeed.zero_stage},
        # The muP param groups need a client AdamW; DeepSpeed's fused one is CUDA-only.
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": use_gpu},
        "steps_per_print": 10**12,
        "wall_clock_breakdown": False,
    }


@dataclass
class Session:
    """Where a trial's training loop runs: its rank, and how it reports metrics and
    checkpoints. The Tune trial's own process (one worker), a Ray Train worker (a worker
    group), or a plain process (`sweep trial`, baselines)."""

    rank: int
    world: int
    local_rank: int
    node_id: str
    report: Callable[[dict], None]
    save: Callable[[dict, Callable[[str], None]], None]  # (metrics, writer of a directory)
    latest_checkpoint: Callable[[], Any]  # a context manager giving a directory, or None


def ray_session() -> Session:
    import ray
    import ray.train

    ctx = ray.train.get_context()

    def save(metrics_: dict, write: Callable[[str], None]) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # Ray Train copies it to its storage
            write(tmp)
            ray.train.report(metrics_, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    def latest():
        ckpt = ray.train.get_checkpoint()
        return ckpt.as_directory() if ckpt is not None else None

    return Session(
        ctx.get_world_rank(),
        ctx.get_world_size(),
        ctx.get_local_rank(),
        ray.get_runtime_context().get_node_id(),
        ray.train.report,
        save,
        latest,
    )


def local_session(
    checkpoint_dir: Path | None = None,
    report: Callable[[dict], None] = lambda m: None,
    node_id: str | None = None,
    backend: str = "gloo",
) -> Session:
    """One process, no worker group: a process group of one, so DeepSpeed initialises as
    in a multi-worker trial. Checkpoints, when ``checkpoint_dir`` is given, are published
    there atomically, so a restarted trial (Tune's failure config, `sweep resume`)
    continues from the last one."""
    import torch.distributed as dist

    for key, val in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, val)  # what DeepSpeed expects a launcher to have set
    if not dist.is_initialized():  # a reused Tune actor keeps its group from the last trial
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dist.init_process_group(
            backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
        )

    def save(metrics_: dict, write: Callable[[str], None]) -> None:
        if checkpoint_dir is not None:  # nowhere to keep it: do not write it at all
            publish_dir(write, Path(checkpoint_dir))
        report(metrics_)

    def latest():
        found = latest_published(Path(checkpoint_dir)) if checkpoint_dir is not None else None
        return contextlib.nullcontext(str(found)) if found else None

    return Session(0, 1, 0, node_id or socket.gethostname(), report, save, latest)


def tune_session(sweep_dir: Path, trial_id: str, use_gpu: bool) -> Session:
    """A single-worker trial trains inside its Ray Tune trial itself: no Ray Train worker
    group to start (~12 s a trial on a small machine). Metrics go to Tune; checkpoints to
    the sweep's own storage, where a restart by Tune or a later `sweep resume` finds them."""
    import ray
    from ray import tune

    return local_session(
        checkpoint_dir=Path(sweep_dir) / "checkpoints" / trial_id,
        report=tune.report,
        node_id=ray.get_runtime_context().get_node_id(),
        backend="nccl" if use_gpu else "gloo",
    )


def publish_dir(write: Callable[[str], None], dst: Path) -> None:
    """Have ``write`` fill a sibling of ``dst`` (same file system, so no copy), then swap
    it in with renames: readers only ever see a complete directory, and the previous one
    stays until the swap."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    old = dst.with_name(f".{dst.name}.old")
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):  # what a killed writer left
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(str(tmp))
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def latest_published(dst: Path) -> Path | None:
    """The directory ``publish_dir`` last completed (a crash between its two renames
    leaves only the previous one, under its old name)."""
    for d in (dst, dst.with_name(f".{dst.name}.old")):
        if (d / STATE_FILE).is_file():
            return d
    return None


def train_worker(config: dict) -> None:
    """Ray Train per-worker entry point."""
    train(config, ray_session())


def train(config: dict, session: Session) -> None:
    """The trial: train under the schedule, evaluate per position, and (rank 0) write the
    record and the W&B run."""
    t_start = time.time()
    import datasets
    import deepspeed
    import torch
    import torch.distributed as dist

    from sweep import data, evaluate
    from sweep.model import build, non_embedding_params, param_groups
    from sweep.tracking import Tracker

    timings = {
        "worker_start": t_start,
        "driver_start": config.get("driver_start", t_start),
        "imported": time.time(),
    }
    datasets.disable_progress_bars()
    trial = TrialSpec.from_dict(config["trial"])
    spec, sched = trial.sweep, trial.schedule
    sweep_dir = Path(config["sweep_dir"])
    rank, world = session.rank, session.world
    use_gpu = spec.resources.gpus_per_worker > 0 and torch.cuda.is_available()
    device = torch.device(f"cuda:{session.local_rank}" if use_gpu else "cpu")
    torch.set_num_threads(spec.resources.cpus_per_worker)
    torch.manual_seed(trial.seed)

    # Data: every trial with the same seed reads the same token stream, cut differently.
    corpus = data.load_split(spec.data)
    tok = data.tokenizer_for(spec.data, corpus.train["text"])
    plan = schedules.plan(sched, spec.budget.tokens, spec.budget.tokens_per_step, trial.seed)
    E = spec.eval.length(sched.l_max)
    repeats = data.Repeats.of(spec.data, E)
    # doc_buckets leaves document remainders in its buckets: give it room to read on.
    need = plan.total_tokens * (2 if sched.mode == "doc_buckets" else 1) + 1
    stream, passes = data.pack_train_stream(corpus.train, tok, need, trial.seed, repeats)
    evset = data.eval_windows(corpus.held_out, tok, E, spec.eval.sequences, spec.eval.seed, repeats)
    eval_seqs = evset.tokens

    timings["data_ready"] = time.time()
    model = build(spec.model, tok.vocab_size)
    n_params = non_embedding_params(model)  # before ZeRO-3 partitions the parameters
    groups = param_groups(model, spec.optim.lr, spec.optim.weight_decay)
    base_lrs = [g["lr"] for g in groups]
    opt = torch.optim.AdamW(groups, betas=(spec.optim.beta1, spec.optim.beta2))
    engine, opt, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=deepspeed_config(spec, world, use_gpu)
    )
    timings["engine_ready"] = time.time()

    tracker = None
    if rank == 0:
        tracker = Tracker(
            spec.wandb.mode,
            spec.wandb.project,
            spec.wandb.entity,
            spec.name,
            trial.trial_id,
            trial.to_dict(),
            sweep_dir / "wandb",
        )
    doc_buckets = sched.mode == "doc_buckets"
    batcher = data.DocRows(stream, tok.eos_id) if doc_buckets else data.Batcher(stream)
    every = spec.eval.every_fraction * spec.budget.tokens
    ck_every = spec.checkpoint.every_tokens or float("inf")
    # Everything the loop carries from step to step; a checkpoint stores exactly this.
    state = {
        "step": 0,
        "seen": 0,
        "position": batcher.state(),
        "history": [],
        "evals": [],
        "exposure": [0] * len(metrics.exposure_edges(sched.l_max)),
        "next_eval": every if every > 0 else float("inf"),
        "next_ckpt": ck_every,
        "restarts": 0,
    }
    state = restore(engine, state, session)
    batcher.load(state["position"])
    history, evals, seen = state["history"], state["evals"], state["seen"]
    exposure = np.asarray(state["exposure"], dtype=np.int64)
    next_eval = state["next_eval"]
    mid_eval_s = 0.0
    status, error = "finished", None
    micro = spec.budget.micro_batches
    doc_eos = tok.eos_id if spec.data.doc_mask else None
    t_train = timings["train_start"] = time.time()
    steps = list(enumerate(zip(plan.lengths, plan.rows, plan.tails, plan.windows)))
    for step, (L, rows, tail, window) in steps[state["step"] :]:
        # Progress is nominal (truncate trains fewer tokens than its steps stand for).
        nominal = int(plan.progress[step])
        done = int(plan.progress[step + 1]) if step + 1 < plan.steps else spec.budget.tokens
        mult = schedules.lr_at(
            nominal, spec.budget.tokens, spec.optim.warmup_fraction, spec.optim.min_lr_ratio
        )
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * mult
        x, y = batcher.next(int(L), int(rows), int(tail))
        step_tokens = int(rows * L + tail)
        reach = data.attended_distances(y, int(window), x, doc_eos)
        exposure += metrics.exposure_counts(reach, sched.l_max)
        mine = np.array_split(np.arange(len(x)), world)[rank]
        loss_sum = torch.zeros(1, dtype=torch.float64)
        # Gradient accumulation: the worker's rows in `micro` pieces, one DeepSpeed
        # micro-step each; the optimizer steps once, at the accumulation boundary.
        for part in np.array_split(mine, micro):
            part_loss = token_loss_sum(engine, x, y, part, device, doc_eos, int(window))
            # DeepSpeed divides by its accumulation steps and averages over workers;
            # scaling by micro * world / T makes the step's gradient that of the mean loss
            # over all T tokens of the step, however its rows were split.
            engine.backward(part_loss * (micro * world / step_tokens))
            engine.step()
            loss_sum += part_loss.item()
        seen += step_tokens
        if world > 1:
            dist.all_reduce(loss_sum)
        step_loss = float(loss_sum.item()) / step_tokens
        if not math.isfinite(step_loss):
            status, error = "diverged", f"loss became {step_loss} at step {step} ({seen} tokens)"
        last = step == plan.steps - 1 or status == "diverged"
        if step % spec.log_every_steps == 0 or last:
            elapsed = time.time() - t_train - mid_eval_s
            point = {
                "step": step,
                "tokens": seen,
                "loss": step_loss,
                "seq_len": int(plan.context[step]),
                "lr": base_lrs[1] * mult,
                "tokens_per_s": seen / max(elapsed, 1e-9),
            }
            history.append(point)
            if tracker:
                tracker.log(
                    {"tokens": seen, **{f"train/{k}": v for k, v in point.items() if k != "tokens"}}
                )
            session.report({**point, "budget": spec.budget.tokens, "phase": "train"})
        if status == "diverged":
            break
        if done >= next_eval and not last:
            while next_eval <= done:
                next_eval += every
            t_mid = time.time()
            mid = evaluate.per_position_losses(
                engine.module,
                eval_seqs[: spec.eval.intermediate_sequences],
                spec.eval.batch_size,
                device,
            )
            m_mid = metrics.all_metrics(mid.mean(axis=0), sched.l_max)
            evals.append(
                {
                    "tokens": seen,
                    "fraction": done / spec.budget.tokens,
                    "seq_len": int(plan.context[step]),
                    **m_mid,
                }
            )
            mid_eval_s += time.time() - t_mid
            if tracker:
                tracker.log({"tokens": seen, **{f"eval/{k}": v for k, v in m_mid.items()}})
            session.report({"tokens": seen, "budget": spec.budget.tokens, "phase": "eval", **m_mid})
        if seen >= state["next_ckpt"] and not last:
            while state["next_ckpt"] <= seen:
                state["next_ckpt"] += ck_every
            state.update(
                step=step + 1,
                seen=seen,
                position=batcher.state(),
                history=history,
                exposure=exposure.tolist(),
                evals=evals,
                next_eval=next_eval,
            )
            save_checkpoint(
                engine,
                state,
                {
                    "tokens": seen,
                    "budget": spec.budget.tokens,
                    "phase": "checkpoint",
                    "loss": step_loss,
                },
                session,
            )
    train_wall = time.time() - t_train - mid_eval_s

    t_eval = time.time()
    losses = evaluate.per_position_losses(engine.module, eval_seqs, spec.eval.batch_size, device)
    eval_wall = time.time() - t_eval
    curve = losses.mean(axis=0)
    result_metrics = metrics.all_metrics(curve, sched.l_max)
    sparse = hasattr(engine.module, "use_flex") and engine.module.use_flex(device)
    result_metrics["flops"] = plan.flops(
        n_params, spec.model.n_layers, spec.model.d_model, sparse=sparse
    )
    # What the schedule let the model see: the fraction of trained query tokens whose
    # farthest attended key is at least l_max / 2 away.
    edges = metrics.exposure_edges(sched.l_max)
    far = sum(c for e, c in zip(edges, exposure) if e >= sched.l_max // 2)
    result_metrics["exposure_far"] = float(far / max(1, exposure.sum()))
    t_probe = time.time()
    probes = evaluate.context_probes(
        engine.module, evset.tokens, evset.natural(), losses, spec.eval, sched.l_max, device
    )
    probe_wall = time.time() - t_probe
    result_metrics["ctx_gain"] = float(np.mean(probes["ctx_gain"]))
    for d, drops in zip(probes["copy_distances"], np.asarray(probes["copy"]).T):
        result_metrics[f"copy_d{d}"] = float(np.mean(drops))
    natural = evset.natural()
    by_source = {
        src: metrics.all_metrics(losses[mask].mean(axis=0), sched.l_max)
        for src, mask in (("natural", natural), ("repeat", ~natural))
        if mask.any()
    }
    if rank == 0:
        fields = dict(
            error=error,
            mode=sched.mode,
            token_equal=sched.mode != "truncate",
            tokens_trained=seen,
            tokens_budget=spec.budget.tokens,
            exposure={"edges": edges, "counts": exposure.tolist()},
            attention_kernel="flex" if sparse else "sdpa",
            tokens_by_length={str(k): v for k, v in plan.tokens_by_length(steps=step + 1).items()},
            steps=plan.steps,
            wall_s=time.time() - t_start,
            train_wall_s=train_wall,
            eval_wall_s=eval_wall,
            probe_wall_s=probe_wall,
            intermediate_eval_s=mid_eval_s,
            tokens_per_s=seen / max(train_wall, 1e-9),
            n_params=n_params,
            # doc_buckets reads its own (twice as long) stream, perhaps more than once
            data_passes=passes * batcher.passes if doc_buckets else passes,
            n_eval_sequences=int(len(eval_seqs)),
            held_out_removed={
                "exact": corpus.held_out_exact,
                "near": corpus.held_out_near,
                "kept": len(corpus.held_out),
            },
            eval_windows={"source": evset.source, "doc": evset.doc, "offset": evset.offset},
            curve=[round(float(v), 5) for v in curve],
            curve_se=[round(float(v), 5) for v in metrics.position_se(losses)],
            per_sequence={
                **metrics.per_sequence(losses, sched.l_max),
                "ctx_gain": np.round(probes["ctx_gain"], 6).tolist(),
                "copy": np.round(probes["copy"], 6).tolist(),
            },
            copy_distances=probes["copy_distances"],
            ctx_gain_curve=[round(float(v), 5) for v in probes["ctx_gain_curve"]],
            metrics_by_source=by_source,
            evals=evals,
            metrics=result_metrics,
            history=history,
            workers=world,
            restarts=state["restarts"],
            timings={k: round(v - timings["driver_start"], 3) for k, v in timings.items()},
            started_at=timings["driver_start"],
            host=socket.gethostname(),
            pid=os.getpid(),
            node_id=session.node_id,
            versions=_versions(),
        )
        if tracker:
            tracker.log_curve(fields["curve"], sched.l_max)
            tracker.finish(
                {f"final/{k}": v for k, v in result_metrics.items()}
                | {"tokens_trained": seen, "status": status}
            )
        write_record(sweep_dir, trial, status, **fields)
    session.report(
        {
            "tokens": seen,
            "budget": spec.budget.tokens,
            "phase": "done",
            "status": status,
            **result_metrics,
        }
    )


def save_checkpoint(engine, state: dict, metrics_: dict, session: Session) -> None:
    """DeepSpeed checkpoint (every rank writes its shards) plus the loop state, written
    where the session keeps it: Ray Train a worker group's in the trial's storage, a
    one-worker trial in the sweep's checkpoints/; either comes back on restart."""

    def write(directory: str) -> None:
        engine.save_checkpoint(directory, tag="state")
        if session.rank == 0:
            Path(directory, STATE_FILE).write_text(json.dumps(state))

    session.save(metrics_, write)


def restore(engine, state: dict, session: Session) -> dict:
    """Load the last checkpoint, if the trial was restarted with one."""
    ctx = session.latest_checkpoint()
    if ctx is None:
        return state
    with ctx as d:
        engine.load_checkpoint(d, tag="state")
        saved = json.loads(Path(d, STATE_FILE).read_text())
    return {**state, **saved, "restarts": saved["restarts"] + 1}


def _versions() -> dict[str, str]:
    import deepspeed
    import ray
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
        "ray": ray.__version__,
        "transformers": transformers.__version__,
    }


# ----------------------------------------------------------------------------- Tune side


def run_trial(config: dict) -> None:
    """Ray Tune function trainable. A single-worker trial trains right here, in the Tune
    trial's process; a multi-worker one launches its Ray Train worker group."""
    trial = TrialSpec.from_dict(config["trial"])
    sweep_dir = Path(config["sweep_dir"])
    t0 = time.time()
    config = {**config, "driver_start": t0}
    write_record(sweep_dir, trial, "running", started_at=t0)
    try:
        if trial.sweep.resources.workers_per_trial == 1:
            use_gpu = trial.sweep.resources.gpus_per_worker > 0
            train(config, tune_session(sweep_dir, trial.trial_id, use_gpu))
        else:
            _fit_worker_group(trial, config, sweep_dir)
    except Exception as exc:  # the record must say why, whatever failed
        write_record(
            sweep_dir,
            trial,
            "failed",
            error=_one_line(exc),
            wall_s=time.time() - t0,
            traceback=traceback.format_exc()[-4000:],
        )
        raise
    rec = read_record(trial_dir(sweep_dir, trial.trial_id) / "record.json")
    if rec is None or rec.get("status") == "running":
        write_record(
            sweep_dir,
            trial,
            "failed",
            error="worker ended without writing a record",
            wall_s=time.time() - t0,
        )


def _fit_worker_group(trial: TrialSpec, config: dict, sweep_dir: Path) -> None:
    """Run the trial on a Ray Train worker group (gloo on CPU, NCCL on GPU); Train's
    failure config restarts it from its last registered checkpoint."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = trial.sweep.resources
    use_gpu = res.gpus_per_worker > 0
    per_worker = {"CPU": res.cpus_per_worker} | ({"GPU": res.gpus_per_worker} if use_gpu else {})
    TorchTrainer(
        train_worker,
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
