"""scripts/gpu_check.py at its full sizes (its every section run at toy sizes on the CPU:
tests/e2e/test_gpu_check_e2e.py)."""

import sys

import torch
from support import ROOT


def test_the_full_sizes_are_what_the_issue_asks():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    d, layers, heads, vocab, l_max, _ = gpu_check.MFU_MODEL["full"]
    with torch.device("meta"):  # the shapes alone: 135M parameters take seconds to fill
        m = gpu_check.proxy(d, layers, heads, vocab, "sdpa")
    assert sum(p.numel() for p in m.parameters()) >= 100e6 and l_max == 2048
