"""What many tests share: the repository root and the ``sweep`` command line, run in a
subprocess exactly as a user runs it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


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

    from sweep.model import BtlmProxyConfig, BtlmProxyForCausalLM

    torch.manual_seed(seed)
    return BtlmProxyForCausalLM(
        BtlmProxyConfig(
            vocab_size=vocab, d_model=32, n_layers=n_layers, n_heads=4, mup_base_width=32,
            **config,
        )
    )  # fmt: skip
