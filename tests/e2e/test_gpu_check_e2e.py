"""scripts/gpu_check.py runs only where a GPU is lent, for minutes: here its every section
runs at toy sizes on the CPU through the same code (gloo for the two-worker group), so
the check cannot rot between leases. It compiles a model and starts seven processes:
about a minute."""

import json
import subprocess
import sys

import pytest
from support import ROOT


def test_every_section_runs_and_writes_its_figures(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--tiny",
           "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["numerics"]["chunked_vs_full_max_diff"] < 1e-4
    mfu = got["mfu"]
    assert mfu["non_embedding_params"] > 0 and mfu["peak_bf16_flops"] is None  # no MFU on CPU
    for key in ("eager", "compiled"):
        assert mfu[key]["tokens_per_s"] > 0 and mfu[key]["warmup_s"] > 0
    # same weights, same batches: compiling changes the arithmetic's order, not the model
    assert abs(mfu["compiled"]["loss"] - mfu["eager"]["loss"]) < 1e-3
    assert mfu["compiled_over_eager"] == pytest.approx(
        mfu["compiled"]["tokens_per_s"] / mfu["eager"]["tokens_per_s"]
    )
    for n in (1, 2, 4):
        each = got["pack"][str(n)]["each_tokens_per_s"]
        assert len(each) == n and all(v > 0 for v in each)
    ddp = got["ddp"]
    assert ddp["backend"] == "gloo" and ddp["same_loss"] and ddp["same_weights"]
    assert all("error" not in got[k] for k in ("numerics", "mfu", "pack", "ddp"))
