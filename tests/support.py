"""What many tests share: the repository root and the ``sweep`` command line, run in a
subprocess exactly as a user runs it."""

import subprocess
import sys
from pathlib import Path

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
