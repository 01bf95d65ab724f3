"""Trial records and atomic file I/O: what every stage reads and writes, and nothing that
trains. A record (``trials/<id>/record.json``) is written whole or not at all."""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from sweep.config.fields import SpecError
from sweep.config.spec import SweepSpec, TrialSpec

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


@dataclass
class TrialRecord:
    """One trial's record: what ``trials/<id>/record.json`` holds, the one type every
    stage writes (the trainable, ``finish``, the rung stopper) and reads (aggregate,
    report, export, study, calibration, progress).

    A field that is None is absent from the JSON (null and absent mean the same to every
    reader). Keys this version does not know, a newer writer's, are kept in ``extra`` and
    written back, so reading and rewriting a record loses nothing. Values derived from the
    trial's spec (its ``TrialSpec``, plan, E) are read through ``spec`` and computed there,
    never stored twice. A dataclass rather than a pydantic model: a study reads thousands
    of records whose per-position series are megabytes of floats, which validation would
    copy and check value by value; the checks that matter are ``paired.trial_units``'s."""

    # who: from the TrialSpec, in every record (``TrialRecord.of``)
    trial_id: str
    status: str
    schedule: str | None = None
    shape: str | None = None
    ramp_rate: float | None = None
    role: str = "candidate"
    seed: int | None = None
    l_max: int | None = None
    eval_length: int | None = None
    config: dict | None = None  # the TrialSpec's plain form (``TrialSpec.to_dict``)
    # how it ended
    error: str | None = None
    traceback: str | None = None
    diverged_at: dict | None = None
    rung: float | None = None  # stopped: the rung (budget fraction) and why
    reason: str | None = None
    # what it trained
    mode: str | None = None
    token_equal: bool | None = None
    tokens_trained: int | None = None
    tokens_budget: int | None = None
    exposure: dict | None = None  # {"edges", "counts"}: trained query positions
    attention_kernel: str | None = None
    tokens_by_length: dict | None = None  # str(length) -> tokens
    steps: int | None = None
    # time
    wall_s: float | None = None
    train_wall_s: float | None = None
    eval_wall_s: float | None = None
    probe_wall_s: float | None = None
    intermediate_eval_s: float | None = None
    tokens_per_s: float | None = None
    n_params: int | None = None
    data_passes: int | None = None
    # what it was evaluated on, and the evaluation
    n_eval_sequences: int | None = None
    held_out_removed: dict | None = None
    eval_windows: dict | None = None  # {"source", "doc", "offset"} per eval window
    curve: Sequence[float] | None = None
    curve_se: Sequence[float] | None = None
    per_sequence: dict | None = None
    position_bins: dict | None = None  # {"edges", "values"}: per-sequence bin means
    own_length: int | None = None
    copy_distances: list | None = None
    ctx_gain_curve: Sequence[float] | None = None
    metrics_by_source: dict | None = None
    evals: list | None = None  # intermediate evaluations
    metrics: dict | None = None
    history: list | None = None
    # where and how it ran
    workers: int | None = None
    restarts: int | None = None
    timings: dict | None = None
    started_at: float | None = None
    host: str | None = None
    pid: int | None = None
    node_id: str | None = None
    versions: dict | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @classmethod
    def of(cls, trial: TrialSpec, status: str, **fields: Any) -> TrialRecord:
        """A record of ``trial``: its identity from the spec, the rest from ``fields``
        (a name that is not a field is a TypeError: the record's keys are these)."""
        return cls(
            trial_id=trial.trial_id,
            status=status,
            schedule=trial.schedule.label,
            shape=trial.schedule.shape,
            ramp_rate=trial.schedule.ramp_rate,
            role=trial.role,
            seed=trial.seed,
            l_max=trial.schedule.l_max,
            eval_length=trial.eval_length,
            config=trial.to_dict(),
            **fields,
        )

    @classmethod
    def from_dict(cls, d: object) -> TrialRecord:
        """The record of a parsed ``record.json``; a ValueError when it is not one."""
        if not isinstance(d, dict) or "trial_id" not in d or "status" not in d:
            raise ValueError("not a trial record (no trial_id or status)")
        if d["status"] not in STATUSES:
            raise ValueError(f"unknown status {d['status']!r}")
        known = {k: v for k, v in d.items() if k in _FIELDS and v is not None}
        return cls(**known, extra={k: v for k, v in d.items() if k not in _FIELDS})

    def to_dict(self) -> dict:
        """The record's JSON form, in field order; None fields left out."""
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        return out | self.extra

    @functools.cached_property
    def spec(self) -> TrialSpec | None:
        """The trial's spec, parsed once from ``config``; None when the record has none
        or it no longer parses (a record written by an older version)."""
        try:
            return TrialSpec.from_dict(self.config) if self.config else None
        except (SpecError, KeyError, TypeError):
            return None

    @property
    def sweep(self) -> SweepSpec | None:
        return self.spec.sweep if self.spec else None

    @property
    def why(self) -> str:
        """Why a trial did not finish: a failure's error or a stopped trial's reason."""
        return str(self.error or self.reason or "")

    @property
    def trained_length(self) -> int | None:
        """The longest length the trial trained at (its own trained length): stored as
        ``own_length``, or read from the tokens it trained by length."""
        if self.own_length:
            return int(self.own_length)
        by_len = {int(k): v for k, v in (self.tokens_by_length or {}).items()}
        return max((k for k, v in by_len.items() if v > 0), default=None)

    def tokens_at(self, length: int) -> int:
        """Tokens the trial trained at sequence length ``length``."""
        return int((self.tokens_by_length or {}).get(str(length), 0))


_FIELDS = {f.name for f in fields(TrialRecord)} - {"extra"}


def write_record(sweep_dir: Path, record: TrialRecord) -> TrialRecord:
    """Write ``trials/<id>/record.json`` whole (atomically); returns the record."""
    write_json_atomic(record_path(sweep_dir, record.trial_id), record.to_dict())
    return record


def read_record(path: Path) -> TrialRecord | None:
    """The record at ``path``, or None when it is missing, unreadable or not a record."""
    try:
        return TrialRecord.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None
