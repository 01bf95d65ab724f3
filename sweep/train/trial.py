"""One trial: each worker trains the proxy model under its schedule with a DeepSpeed
ZeRO engine, evaluates per position far past l_max, and rank 0 writes the trial record
atomically. ``train_trial`` reads top to bottom: ``setup`` builds what the loop works with
(``Run``), ``train_step`` trains one step of the plan, ``after_step`` logs, evaluates and
checkpoints, ``finish`` evaluates and writes the record; the loop's state is one
``LoopState``, which is exactly what a checkpoint stores. Ray Tune runs it through
``sweep.run.tune_search`` (this module imports nothing of ``sweep.run``)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.analysis import metrics
from sweep.analysis.records import TrialRecord, write_record
from sweep.config import schedules
from sweep.config.spec import TrialSpec
from sweep.train.dsconfig import deepspeed_config
from sweep.train.sessions import Session, ray_session, restore, save_checkpoint
from sweep.train.tracking import Tracker

if TYPE_CHECKING:  # evaluate imports torch at its top: no torch in the sweep's driver
    from sweep.train.evaluate import FinalEval


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
    # deferred: the sweep's driver imports this module (to hand Tune its trainable): no torch
    import torch

    if len(rows) == 0:
        rows = np.array([0])
        y = np.full_like(y, -100)
    xb = torch.as_tensor(x[rows], device=device)
    yb = torch.as_tensor(y[rows], device=device)
    extra = {}
    if doc_eos is not None:
        # deferred: data imports datasets at its top (no torch in the sweep's driver)
        from sweep.train.data import Batcher

        extra["doc_ids"] = torch.as_tensor(Batcher.doc_ids(x[rows], doc_eos), device=device)
    if window > 0:
        extra["window"] = window
    logits = engine(input_ids=xb, **extra).logits
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), yb.flatten(), ignore_index=-100, reduction="sum"
    )


def reduced_loss_sum(parts: list, world: int, device, all_reduce=None):
    """The step's summed loss over every worker, as a tensor on the training ``device``:
    NCCL reduces only device tensors (a CPU tensor fails on a GPU cluster)."""
    # deferred: the sweep's driver imports this module (to hand Tune its trainable): no torch
    import torch

    total = torch.zeros((), dtype=torch.float64, device=device)
    for part in parts:
        total += part.detach().to(device=device, dtype=torch.float64)
    if world > 1:
        (all_reduce or torch.distributed.all_reduce)(total)
    return total


def train_worker(config: dict) -> None:
    """Ray Train per-worker entry point: ``config`` as ``train`` takes it."""
    train(config, ray_session())


@dataclass
class LoopState:
    """Everything the loop carries from step to step; a checkpoint stores exactly this."""

    next_eval: float
    next_ckpt: float
    exposure: list[int]
    position: Any = 0  # the batcher's place in the token stream
    step: int = 0
    seen: int = 0
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    restarts: int = 0
    mid_eval_s: float = 0.0  # intermediate evaluations: not training time
    lr: float = 0.0  # the last step's learning rate (logged)


@dataclass
class Run:
    """What a trial's loop works with, built once by ``setup``."""

    trial: TrialSpec
    session: Session
    sweep_dir: Path
    device: Any
    plan: schedules.Plan
    corpus: Any
    tok: Any
    batcher: Any
    passes: int
    evset: Any
    engine: Any
    opt: Any
    base_lrs: list[float]
    n_params: int
    tracker: Any
    doc_eos: int | None
    timings: dict

    @property
    def spec(self):
        return self.trial.sweep

    @property
    def sched(self):
        return self.trial.schedule

    def eval_precision(self):
        """Evaluate in the precision the model trained in (bf16 autocast on CPU when the
        spec asks for it): the same numerics, and most of the eval's cost is matmuls."""
        # deferred: evaluate imports torch at its top (no torch in the sweep's driver)
        from sweep.train.evaluate import cpu_precision

        return contextlib.nullcontext() if self.device.type == "cuda" else cpu_precision(self.spec)


@dataclass
class TrialData:
    """The trial's corpus, tokenizer, train stream (as a batcher) and eval windows."""

    corpus: Any
    tok: Any
    batcher: Any
    passes: int
    evset: Any


def load_data(trial: TrialSpec, plan: schedules.Plan) -> TrialData:
    """Every trial with the same seed reads the same token stream, cut differently."""
    # deferred: data imports datasets at its top (no datasets in the sweep's driver)
    from sweep.train import data

    spec, sched = trial.sweep, trial.schedule
    corpus = data.load_split(spec.data)
    tok = data.tokenizer_for(spec.data, corpus.train["text"])
    E = trial.eval_length
    repeats = data.Repeats.of(spec.data, E)
    # doc_buckets leaves document remainders in its buckets: give it room to read on.
    need = plan.total_tokens * (2 if sched.mode == "doc_buckets" else 1) + 1
    stream, passes = data.pack_train_stream(corpus.train, tok, need, trial.seed, repeats)
    evset = data.eval_windows(corpus.held_out, tok, E, spec.eval.sequences, spec.eval.seed, repeats)
    batcher = (
        data.DocRows(stream, tok.eos_id) if sched.mode == "doc_buckets" else data.Batcher(stream)
    )
    return TrialData(corpus, tok, batcher, passes, evset)


def build_engine(spec, vocab_size: int, session: Session, use_gpu: bool):
    """(DeepSpeed engine, its optimizer, the param groups' base learning rates, the
    model's non-embedding parameters) of the spec's model."""
    # deferred: deepspeed, torch and model (which imports torch) stay out of the driver
    import deepspeed
    import torch  # deferred: as above

    from sweep.train.model import build, non_embedding_params, param_groups  # deferred: as above

    model = build(spec.model, vocab_size)
    n_params = non_embedding_params(model)  # before ZeRO-3 partitions the parameters
    groups = param_groups(model, spec.optim.lr, spec.optim.weight_decay)
    opt = torch.optim.AdamW(groups, betas=(spec.optim.beta1, spec.optim.beta2))
    engine, opt, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=deepspeed_config(spec, session.world, use_gpu)
    )
    return engine, opt, [g["lr"] for g in groups], n_params


def make_tracker(trial: TrialSpec, sweep_dir: Path, session: Session) -> Tracker | None:
    """The trial's W&B run, on rank 0 only."""
    if session.rank != 0:
        return None
    spec, sched = trial.sweep, trial.schedule
    return Tracker(
        spec.wandb.mode,
        spec.wandb.project,
        spec.wandb.entity,
        spec.name,
        trial.trial_id,
        # the workspace groups by label and role (dashboards/workspace.py)
        {**trial.to_dict(), "label": sched.label, "role": trial.role},
        sweep_dir / "wandb",
    )


def setup(
    trial: TrialSpec, sweep_dir: Path, session: Session, driver_start: float | None = None
) -> Run:
    """Data, model and DeepSpeed engine of the trial."""
    t_start = time.time()
    # deferred: datasets and torch stay out of the sweep's driver
    import datasets
    import torch  # deferred: as above

    timings = {
        "worker_start": t_start,
        "driver_start": t_start if driver_start is None else driver_start,
        "imported": time.time(),
    }
    datasets.disable_progress_bars()
    spec = trial.sweep
    use_gpu = spec.resources.gpus_per_worker > 0 and torch.cuda.is_available()
    device = torch.device(f"cuda:{session.local_rank}" if use_gpu else "cpu")
    torch.set_num_threads(spec.resources.cpus_per_worker)
    torch.manual_seed(trial.seed)
    plan = trial.plan()
    got = load_data(trial, plan)
    timings["data_ready"] = time.time()
    engine, opt, base_lrs, n_params = build_engine(spec, got.tok.vocab_size, session, use_gpu)
    timings["engine_ready"] = time.time()
    return Run(
        trial=trial,
        session=session,
        sweep_dir=sweep_dir,
        device=device,
        plan=plan,
        corpus=got.corpus,
        tok=got.tok,
        batcher=got.batcher,
        passes=got.passes,
        evset=got.evset,
        engine=engine,
        opt=opt,
        base_lrs=base_lrs,
        n_params=n_params,
        tracker=make_tracker(trial, sweep_dir, session),
        doc_eos=got.tok.eos_id if spec.data.doc_mask else None,
        timings=timings,
    )


def train(config: dict, session: Session) -> None:
    """``train_trial`` of a trial given as a plain config (``trial``: its dict form,
    ``sweep_dir``, optionally ``driver_start``): what `sweep trial` and a Ray Train
    worker pass; the trial is parsed here, once."""
    trial = TrialSpec.from_dict(config["trial"])
    train_trial(trial, Path(config["sweep_dir"]), session, config.get("driver_start"))


def train_trial(
    trial: TrialSpec, sweep_dir: Path, session: Session, driver_start: float | None = None
) -> None:
    """The trial: train under the schedule, evaluate per position, and (rank 0) write the
    record and the W&B run."""
    run = setup(trial, sweep_dir, session, driver_start)
    spec = run.spec
    every = spec.eval.every_fraction * spec.budget.tokens
    state = LoopState(
        next_eval=every if every > 0 else float("inf"),
        next_ckpt=spec.checkpoint.every_tokens or float("inf"),
        exposure=[0] * len(metrics.exposure_edges(run.sched.l_max)),
        position=run.batcher.state(),
    )
    saved = restore(run.engine, dataclasses.asdict(state), session)
    state = LoopState(**{k: v for k, v in saved.items() if k in LoopState.__dataclass_fields__})
    run.batcher.load(state.position)
    status, error, at = "finished", None, {}
    run.timings["train_start"] = t_train = time.time()
    bound = divergence_bound(run.tok.vocab_size)
    for step in range(state.step, run.plan.steps):
        loss = train_step(run, state, step)
        state.step = step + 1
        error = diverged(loss, bound, step, state.seen)
        last = step == run.plan.steps - 1 or error is not None
        after_step(run, state, step, loss, last, t_train)
        if error is not None:
            status = "diverged"
            at = {"step": step, "loss": loss if math.isfinite(loss) else None}
            break
    if status == "diverged":
        give_up(run, state, error, at, time.time() - t_train - state.mid_eval_s)
        return
    finish(run, state, status, error, time.time() - t_train - state.mid_eval_s)


def divergence_bound(vocab_size: int) -> float:
    """The training loss past which a trial has diverged: twice the loss of guessing
    uniformly over the vocabulary. A model that bad has unlearned everything, and
    evaluating it would only spend time on numbers no comparison can use."""
    return 2.0 * math.log(vocab_size)


def diverged(loss: float, bound: float, step: int, seen: int) -> str | None:
    """Why a step's loss ends the trial (not finite, or past ``bound``), or None."""
    if not math.isfinite(loss):
        return f"loss became {loss} at step {step} ({seen} tokens)"
    if loss > bound:
        return (
            f"loss {loss:.3f} at step {step} ({seen} tokens) is past {bound:.3f}, twice "
            "the loss of a uniform guess"
        )
    return None


def give_up(run: Run, state: LoopState, error: str, at: dict, train_wall: float) -> None:
    """A diverged trial's record: where and how it diverged, its training history, and no
    evaluation (a diverged model's losses compare with nothing). It is a result: a row of
    the ranking, never a pick."""
    spec, p = run.spec, run.plan
    if run.session.rank == 0:
        fields = dict(
            error=error,
            diverged_at=at,
            mode=run.sched.mode,
            tokens_trained=state.seen,
            tokens_budget=spec.budget.tokens,
            tokens_by_length={str(k): v for k, v in p.tokens_by_length(state.step).items()},
            steps=p.steps,
            wall_s=time.time() - run.timings["worker_start"],
            train_wall_s=train_wall,
            n_params=run.n_params,
            history=state.history,
            metrics={},
            host=socket.gethostname(),
            pid=os.getpid(),
            versions=_versions(),
        )
        if run.tracker:
            run.tracker.finish({"tokens_trained": state.seen, "status": "diverged"})
        write_record(run.sweep_dir, TrialRecord.of(run.trial, "diverged", **fields))
    run.session.report(
        {"tokens": state.seen, "budget": spec.budget.tokens, "phase": "done"}
        | {"status": "diverged", "error": error}
    )


def train_step(run: Run, state: LoopState, step: int) -> float:
    """One optimizer step of the plan; returns its mean token loss over all workers."""
    # deferred: data imports datasets at its top (no datasets in the sweep's driver)
    from sweep.train import data

    p, spec, session = run.plan, run.spec, run.session
    L, rows, tail, window = (int(a[step]) for a in (p.lengths, p.rows, p.tails, p.windows))
    # Progress is nominal (truncate trains fewer tokens than its steps stand for).
    mult = schedules.lr_at(
        int(p.progress[step]), spec.budget.tokens, spec.optim.warmup_fraction,
        spec.optim.min_lr_ratio,
    )  # fmt: skip
    for g, base in zip(run.opt.param_groups, run.base_lrs):
        g["lr"] = base * mult
    x, y = run.batcher.next(L, rows, tail)
    step_tokens = rows * L + tail
    reach = data.attended_distances(y, window, x, run.doc_eos)
    counts = metrics.exposure_counts(reach, run.sched.l_max)
    state.exposure = [int(a + b) for a, b in zip(state.exposure, counts)]
    mine = np.array_split(np.arange(len(x)), session.world)[session.rank]
    micro, parts = spec.budget.micro_batches, []
    # Gradient accumulation: the worker's rows in `micro` pieces, one DeepSpeed micro-step
    # each; the optimizer steps once, at the accumulation boundary.
    for part in np.array_split(mine, micro):
        part_loss = token_loss_sum(run.engine, x, y, part, run.device, run.doc_eos, window)
        # DeepSpeed divides by its accumulation steps and averages over workers; scaling
        # by micro * world / T makes the step's gradient that of the mean loss over all T
        # tokens of the step, however its rows were split.
        run.engine.backward(part_loss * (micro * session.world / step_tokens))
        run.engine.step()
        parts.append(part_loss)
    state.seen += step_tokens
    state.lr = run.base_lrs[1] * mult
    return float(reduced_loss_sum(parts, session.world, run.device).item()) / step_tokens


def after_step(run: Run, state: LoopState, step: int, loss: float, last: bool, t0: float) -> None:
    """Log the step, run an intermediate evaluation and a checkpoint when they are due."""
    # deferred: evaluate imports torch at its top (no torch in the sweep's driver)
    from sweep.train import evaluate

    spec, p = run.spec, run.plan
    if step % spec.log_every_steps == 0 or last:
        point = {
            "step": step,
            "tokens": state.seen,
            "loss": loss,
            "seq_len": int(p.context[step]),
            "lr": state.lr,
            "tokens_per_s": state.seen / max(time.time() - t0 - state.mid_eval_s, 1e-9),
        }
        state.history.append(point)
        if run.tracker:
            logged = {f"train/{k}": v for k, v in point.items() if k != "tokens"}
            run.tracker.log({"tokens": state.seen, **logged})
        run.session.report({**point, "budget": spec.budget.tokens, "phase": "train"})
    if last:  # the final step, or a diverged one: nothing more to evaluate or save
        return
    done = int(p.progress[step + 1])  # nominal tokens after this step
    if done >= state.next_eval:
        every = spec.eval.every_fraction * spec.budget.tokens
        while state.next_eval <= done:
            state.next_eval += every
        t_mid = time.time()
        with run.eval_precision():
            mid = evaluate.per_position_losses(
                run.engine.module,
                run.evset.tokens[: spec.eval.intermediate_sequences],
                spec.eval.batch_size,
                run.device,
            )
        m_mid = metrics.all_metrics(mid.mean(axis=0), run.sched.l_max)
        per = metrics.per_sequence(mid, run.sched.l_max)
        for key in ("id_loss", "far_loss"):  # the noise a rung's comparison must clear
            v = np.asarray(per[key], dtype=np.float64)
            m_mid[f"{key}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        state.evals.append(
            {"tokens": state.seen, "fraction": done / spec.budget.tokens,
             "seq_len": int(p.context[step]), **m_mid}
        )  # fmt: skip
        state.mid_eval_s += time.time() - t_mid
        if run.tracker:
            run.tracker.log({"tokens": state.seen, **{f"eval/{k}": v for k, v in m_mid.items()}})
        run.session.report(
            {"tokens": state.seen, "budget": spec.budget.tokens, "phase": "eval", **m_mid}
        )
    if state.seen >= state.next_ckpt:
        while state.next_ckpt <= state.seen:
            state.next_ckpt += spec.checkpoint.every_tokens
        state.position = run.batcher.state()
        report = {"tokens": state.seen, "budget": spec.budget.tokens, "phase": "checkpoint"}
        save_checkpoint(run.engine, dataclasses.asdict(state), report | {"loss": loss}, run.session)


def final_eval(run: Run, state: LoopState) -> FinalEval:
    """The trial's final evaluation (``evaluate.final_evaluation``) with its FLOPs."""
    # deferred: evaluate imports torch at its top (no torch in the sweep's driver)
    from sweep.train.evaluate import final_evaluation

    spec, p = run.spec, run.plan

    def flops(sparse: bool) -> float:
        return p.flops(run.n_params, spec.model.n_layers, spec.model.d_model, sparse)

    return final_evaluation(
        run.engine.module, run.evset, run.device, run.eval_precision, spec.eval,
        run.sched.l_max, flops, state.exposure, own_lengths(spec) | {p.longest},
    )  # fmt: skip


def curve_fields(ev: FinalEval, l_max: int) -> dict:
    """The record's per-position curve, its per-sequence values and position bins."""
    losses, probes = ev.losses, ev.probes
    return dict(
        curve=[round(float(v), 5) for v in ev.curve],
        curve_se=[round(float(v), 5) for v in metrics.position_se(losses)],
        per_sequence={
            **metrics.per_sequence(losses, l_max),
            "ctx_gain": np.round(probes["ctx_gain"], 6).tolist(),
            "copy": np.round(probes["copy"], 6).tolist(),
            "context_use": np.round(ev.context_use, 6).tolist(),
        },
        # per-sequence means over position bins: what the excess metrics pair
        position_bins={
            "edges": ev.bin_edges,
            "values": np.round(metrics.bin_means(losses, ev.bin_edges), 6).tolist(),
        },
    )


def finished_record(
    run: Run, state: LoopState, ev: FinalEval, status: str, error: str | None, train_wall: float
) -> TrialRecord:
    """The record of a trial that trained to its end (``status`` finished, or failed when
    an error stopped it after training)."""
    spec, sched, p, evset, seen = run.spec, run.sched, run.plan, run.evset, state.seen
    t = run.timings
    doc_buckets = sched.mode == "doc_buckets"
    return TrialRecord.of(
        run.trial,
        status,
        error=error,
        mode=sched.mode,
        token_equal=sched.mode != "truncate",
        tokens_trained=seen,
        tokens_budget=spec.budget.tokens,
        exposure={"edges": ev.edges, "counts": ev.exposure.tolist()},
        attention_kernel="flex" if ev.sparse else "sdpa",
        tokens_by_length={str(k): v for k, v in p.tokens_by_length(state.step).items()},
        steps=p.steps,
        wall_s=time.time() - t["worker_start"],
        train_wall_s=train_wall,
        eval_wall_s=ev.eval_wall,
        probe_wall_s=ev.probe_wall,
        intermediate_eval_s=state.mid_eval_s,
        tokens_per_s=seen / max(train_wall, 1e-9),
        n_params=run.n_params,
        # doc_buckets reads its own (twice as long) stream, perhaps more than once
        data_passes=run.passes * run.batcher.passes if doc_buckets else run.passes,
        n_eval_sequences=int(len(evset.tokens)),
        held_out_removed={
            "exact": run.corpus.held_out_exact,
            "near": run.corpus.held_out_near,
            "kept": len(run.corpus.held_out),
        },
        eval_windows={"source": evset.source, "doc": evset.doc, "offset": evset.offset},
        **curve_fields(ev, sched.l_max),
        own_length=p.longest,
        copy_distances=ev.probes["copy_distances"],
        ctx_gain_curve=[round(float(v), 5) for v in ev.probes["ctx_gain_curve"]],
        metrics_by_source=ev.by_source,
        evals=state.evals,
        metrics=ev.result,
        history=state.history,
        workers=run.session.world,
        restarts=state.restarts,
        timings={k: round(v - t["driver_start"], 3) for k, v in t.items()},
        started_at=t["driver_start"],
        host=socket.gethostname(),
        pid=os.getpid(),
        node_id=run.session.node_id,
        versions=_versions(),
    )


def finish(run: Run, state: LoopState, status: str, error: str | None, train_wall: float) -> None:
    """Final per-position evaluation and probes; rank 0 writes the record and W&B run."""
    spec, sched, seen = run.spec, run.sched, state.seen
    ev = final_eval(run, state)
    result = ev.result
    if run.session.rank == 0:
        record = finished_record(run, state, ev, status, error, train_wall)
        if run.tracker:
            run.tracker.log_curve(record.curve, sched.l_max)
            at_l_max = run.plan.tokens_by_length(state.step).get(sched.l_max, 0)
            run.tracker.finish(
                {f"final/{k}": v for k, v in result.items()}
                | {"final/tokens_at_l_max": at_l_max, "tokens_trained": seen, "status": status}
            )
        write_record(run.sweep_dir, record)
    run.session.report(
        {"tokens": seen, "budget": spec.budget.tokens, "phase": "done", "status": status} | result
    )


def own_lengths(spec) -> set[int]:
    """The longest trained length of every schedule of the sweep: each trial keeps its
    position bins at these lengths and their halves, so that any schedule's own_excess can
    be paired with the reference's on the same bins."""
    return {t.plan().longest for t in spec.trials() if t.seed == spec.seeds[0]}


def _versions() -> dict[str, str]:
    # deferred: the sweep's driver imports this module (to hand Tune its trainable): no torch
    import deepspeed
    import torch  # deferred: as above
    import transformers  # deferred: as above

    try:  # `sweep trial` runs without Ray: a machine may not have it
        ray_version = version("ray")
    except PackageNotFoundError:
        ray_version = None
    return {
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
        "ray": ray_version,
        "transformers": transformers.__version__,
    }
