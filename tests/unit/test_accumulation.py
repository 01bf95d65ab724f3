"""Gradient accumulation: the same trial with each step's rows in 1 or 3 micro-batches
trains the same model (DeepSpeed accumulation steps, run in-process without Ray)."""

import json
from pathlib import Path

import numpy as np
import yaml
from support import ROOT

from sweep.config import spec
from sweep.train.sessions import local_session
from sweep.train.trial import train


def run(tmp_path: Path, micro: int) -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["name"] = f"acc{micro}"
    raw["budget"]["micro_batches"] = micro
    raw["budget"]["tokens"] = 20480
    raw["wandb"]["mode"] = "disabled"
    raw["log_every_steps"] = 1
    raw["eval"]["every_fraction"] = 0.0
    sw = spec.parse(raw)
    trial = next(t for t in sw.trials() if t.schedule.shape == "linear")
    train({"trial": trial.to_dict(), "sweep_dir": str(tmp_path / sw.name)}, local_session())
    return json.loads((tmp_path / sw.name / "trials" / trial.trial_id / "record.json").read_text())


def test_micro_batches_match_one_batch(tmp_path):
    one, three = run(tmp_path, 1), run(tmp_path, 3)
    assert one["tokens_trained"] == three["tokens_trained"] == 20480
    a = np.array([h["loss"] for h in one["history"]])
    b = np.array([h["loss"] for h in three["history"]])
    assert len(a) == len(b) == 10
    # summation order differs only: fp32 rounding, ~1e-6 nats
    np.testing.assert_allclose(b, a, atol=1e-4)
    np.testing.assert_allclose(three["curve"], one["curve"], atol=1e-4)
