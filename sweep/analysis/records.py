"""Trial records and atomic file I/O: what every stage reads and writes, and nothing that
trains. A record (``trials/<id>/record.json``) is written whole or not at all."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sweep.config.spec import TrialSpec

STATUSES = ("finished", "failed", "diverged", "running", "stopped")  # stopped: early, by a rung


def trial_dir(sweep_dir: Path, trial_id: str) -> Path:
    return Path(sweep_dir) / "trials" / trial_id


def record_path(sweep_dir: Path, trial_id: str) -> Path:
    """Where a trial's record lives: the one place that knows."""
    return trial_dir(sweep_dir, trial_id) / "record.json"


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary sibling, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities become null), readable by any JSON parser."""
    write_text_atomic(path, json.dumps(_finite(obj), allow_nan=False))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def write_record(sweep_dir: Path, trial: TrialSpec, status: str, **fields: Any) -> dict:
    assert status in STATUSES, status
    record = {
        "trial_id": trial.trial_id,
        "status": status,
        "schedule": trial.schedule.label,
        "shape": trial.schedule.shape,
        "ramp_rate": trial.schedule.ramp_rate,
        "role": trial.role,
        "seed": trial.seed,
        "l_max": trial.schedule.l_max,
        "eval_length": trial.eval_length,
        "config": trial.to_dict(),
        **fields,
    }
    write_json_atomic(record_path(sweep_dir, trial.trial_id), record)
    return record


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
