"""deepspeed.precision: what reaches DeepSpeed's config, and (e2e) that a bf16 trial on the
CPU really computes in bf16 (its curve differs from fp32's, by little)."""

import dataclasses
import json

import numpy as np
import pytest
import yaml
from support import ROOT, run_sweep

from sweep.config import spec
from sweep.train.dsconfig import deepspeed_config


def smoke(precision: str) -> spec.SweepSpec:
    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    return dataclasses.replace(sw, deepspeed=dataclasses.replace(sw.deepspeed, precision=precision))


@pytest.mark.parametrize(
    "precision,gpu,bf16_weights,autocast",
    [
        ("auto", False, False, False),
        ("auto", True, True, False),
        ("fp32", True, False, False),
        ("fp32", False, False, False),
        ("bf16", True, True, False),  # bf16 weights with fp32 master copies (DeepSpeed bf16)
        ("bf16", False, False, True),  # CPU: fp32 weights, bf16 matmuls (torch_autocast)
    ],
)
def test_precision_reaches_the_deepspeed_config(precision, gpu, bf16_weights, autocast):
    cfg = deepspeed_config(smoke(precision), 1, gpu)
    assert cfg["bf16"]["enabled"] is bf16_weights
    assert ("torch_autocast" in cfg) is autocast
    if autocast:
        assert cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}


def test_precision_is_validated():
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["deepspeed"]["precision"] = "fp16"
    with pytest.raises(spec.SpecError, match="deepspeed.precision='fp16'"):
        spec.parse(raw)


@pytest.mark.e2e
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
