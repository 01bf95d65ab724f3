"""What many tests share: the repository root and the ``sweep`` command line, run in a
subprocess exactly as a user runs it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor")


def run_sweep(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """``python -m sweep ARGS`` with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "sweep", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def start_sweep(spec: Path, results: Path) -> subprocess.Popen:
    """``sweep run SPEC --results RESULTS`` in the background, in a session of its own so
    that ``kill_sweep`` can end it and everything it starts."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", str(spec), "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_sweep(proc: subprocess.Popen) -> None:
    """SIGKILL a sweep from ``start_sweep`` and every process it started, and wait until
    all are gone. The process group alone is not enough: Ray puts its workers in process
    groups of their own, and a worker that outlived its driver by a moment could finish a
    trial and write its record after the test's snapshot."""
    tree = [psutil.Process(proc.pid)]
    try:
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    os.killpg(proc.pid, signal.SIGKILL)
    for p in tree:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"processes outlived SIGKILL: {alive}"


def tiny_proxy(n_layers: int = 1, seed: int = 0, vocab: int = 64, **config):
    """A seeded btlm-proxy of width 32 and 4 heads (``config``: more BtlmProxyConfig
    fields, e.g. ``attn_window`` or ``attention``), for tests that need a real model."""
    import torch

    from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

    torch.manual_seed(seed)
    return BtlmProxyForCausalLM(
        BtlmProxyConfig(
            vocab_size=vocab, d_model=32, n_layers=n_layers, n_heads=4, mup_base_width=32,
            **config,
        )
    )  # fmt: skip


def smoke_spec(controls=("short_only",), seeds=(0,)):
    """configs/smoke.yaml with these controls and seeds."""
    import yaml

    from sweep.config import spec

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["controls"] = list(controls)
    raw["seeds"] = list(seeds)
    return spec.parse(raw)


def fake_sweep(
    d: Path,
    far_shift: dict,
    near_shift: dict | None = None,
    n_seq: int = 32,
    seeds=(0, 1),
    noise=0.05,
    own_noise=0.02,
    seed_noise=0.0,
    controls=("short_only",),
    gain: dict | None = None,
    short_only_far=0.1,
    own_rise=0.1,
    context_use=0.05,
    spec=None,
):
    """Records with known curves, written as trials write them: every schedule has the
    reference's per-sequence losses plus ``far_shift[label]`` nats past l_max
    (``near_shift`` on (l_max/2, l_max]), noise of its own, and a seed offset. The
    short_only control trains at l_min only; it is worse by ``short_only_far`` past l_max
    and by ``own_rise`` on (l_min, l_max], past its own length, and has ``gain`` ctx_gain
    (0.05 lower than the others by default). Every schedule gains ``context_use`` from context up to
    l_max. Seeds (0, 1) by default: one seed never picks. ``spec``: another spec's trials
    (its own seeds and controls) in place of configs/smoke.yaml's."""
    import numpy as np

    from sweep.analysis import metrics
    from sweep.analysis.records import write_record

    sw = spec or smoke_spec(controls, seeds)
    rng = np.random.default_rng(0)
    L, l_min = sw.schedules.l_max, sw.schedules.l_min
    E = sw.eval.length(L)
    edges = metrics.position_edges(E, L, (L, l_min))
    base = 3.0 + noise * rng.standard_normal((n_seq, E))
    near_shift = near_shift or {}
    gain = {"short_only": -0.05, **(gain or {})}
    docs = [f"doc{i}.py" for i in range(n_seq)]
    written = []
    for t in sw.trials():
        label = t.schedule.label
        control = label == "short_only"
        losses = base + own_noise * rng.standard_normal((n_seq, E))
        losses += seed_noise * rng.standard_normal()
        losses[:, L:] += far_shift.get(label, short_only_far if control else 0.0)
        losses[:, L // 2 : L] += near_shift.get(label, 0.0)
        if control:
            losses[:, l_min:L] += own_rise
        g = gain.get(label, 0.0) + 0.01 * rng.standard_normal(n_seq)
        use = context_use + 0.01 * rng.standard_normal(n_seq)
        curve = losses.mean(axis=0)
        own = l_min if control else L
        write_record(
            d,
            t,
            "finished",
            tokens_trained=sw.budget.tokens,
            tokens_by_length={str(own): sw.budget.tokens},
            own_length=own,
            wall_s=1.0,
            curve=curve.tolist(),
            per_sequence={
                **metrics.per_sequence(losses, L),
                "ctx_gain": g.tolist(),
                "context_use": use.tolist(),
            },
            position_bins={"edges": edges, "values": metrics.bin_means(losses, edges).tolist()},
            eval_windows={"doc": docs, "source": ["natural"] * n_seq, "offset": [0] * n_seq},
            metrics={"flops": 1e9 if t.schedule.shape == "constant" else 0.9e9},
        )
        written.append(t.trial_id)
    return written


def row(summary, name: str) -> dict:
    """The ranking row of schedule ``name``."""
    return next(r for r in summary.schedules if r["schedule"] == name)


def run_watched(
    args: list[str], cwd: Path, timeout: float = 120, peak: list | None = None
) -> tuple[int, str, str, set]:
    """``python -m sweep ARGS``; returns exit status, stdout, stderr and the names of every
    process it started (sampled every 20 ms while it ran); ``peak`` gets the largest
    resident memory of the command and its children together, in bytes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    watched = psutil.Process(proc.pid)
    t0 = time.time()
    top = 0
    while proc.poll() is None and time.time() - t0 < timeout:
        try:
            rss = watched.memory_info().rss
            for child in watched.children(recursive=True):
                seen.add(" ".join(child.cmdline()[:2]) or child.name())
                rss += child.memory_info().rss
            top = max(top, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    if peak is not None:
        peak.append(top)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return proc.returncode, out, err, seen
