"""Where a trial's training loop runs and keeps its checkpoints: the Tune trial's own
process (one worker), a Ray Train worker (a group), or a plain process (`sweep trial`).
Checkpoints are published atomically, so a restarted trial continues from the last
complete one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "trial_state.json"  # the loop state inside a checkpoint


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
    # deferred: `sweep trial` and the offline commands run without ray
    import ray
    import ray.train  # deferred: as above

    ctx = ray.train.get_context()

    def save(metrics_: dict, write: Callable[[str], None]) -> None:
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
    # deferred: the sweep's driver imports this module (through the trial): no torch there
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
    # deferred: `sweep trial` and the offline commands run without ray
    import ray
    from ray import tune  # deferred: as above

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
