"""deepspeed.precision: what reaches DeepSpeed's config (that a bf16 trial really computes
in bf16: tests/e2e/test_precision_e2e.py)."""

import dataclasses

import pytest
import yaml
from support import ROOT

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
