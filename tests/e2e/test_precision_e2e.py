"""deepspeed.precision end to end: a bf16 trial on the CPU really computes in bf16 (its
curve differs from fp32's, by little). What reaches DeepSpeed's config:
tests/unit/test_precision.py."""

import json

import numpy as np
import yaml
from support import ROOT, run_sweep


def test_a_bf16_trial_computes_in_bf16_and_stays_close_to_fp32(tmp_path):
    curves = {}
    for precision in ("fp32", "bf16"):
        raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
        raw["name"] = f"prec-{precision}"
        raw["deepspeed"]["precision"] = precision
        path = tmp_path / f"{precision}.yaml"
        path.write_text(yaml.safe_dump(raw))
        res = run_sweep("trial", str(path), "--trial", "constant-s0", "--results", str(tmp_path))
        assert res.returncode == 0, res.stderr[-2000:]
        rec = json.loads((tmp_path / raw["name"] / "trials/constant-s0/record.json").read_text())
        assert rec["status"] == "finished"
        assert rec["config"]["sweep"]["deepspeed"]["precision"] == precision
        curves[precision] = np.asarray(rec["curve"])
    diff = np.abs(curves["bf16"] - curves["fp32"])
    assert diff.max() > 0  # an autocast that never happened would give fp32's numbers
    assert diff.mean() < 0.05  # and bf16 must not change what the model learns
