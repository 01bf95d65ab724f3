"""Export for the scale-up run: a schedule's per-step table, its DeepSpeed
``curriculum_learning`` block, and the schedule restated in target units (for example
BTLM's l_max 8,192 and 627B tokens) as a ready-to-use sweep spec."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from sweep import schedules
from sweep.spec import ScheduleSpec, SweepSpec, TrialSpec
from sweep.trial import deepspeed_config, write_text_atomic


@dataclass(frozen=True)
class Target:
    l_max: int = 8192
    tokens: int = 627_000_000_000
    tokens_per_step: int = 4_194_304  # 512 rows of 8,192 tokens


def steps_csv(plan: schedules.Plan) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["step", "tokens_before", "length", "rows", "tail"])
    w.writeheader()
    w.writerows(plan.table())
    return buf.getvalue()


RELEVANT = {
    "two_stage": ("switch", "l_short"),
    "root": ("degree",),
    "geometric": ("cycles",),
    "reverse": ("reverse_of",),
}


def _shape_entry(s: ScheduleSpec) -> dict:
    entry: dict = {"shape": s.shape, "ramp_rates": [s.ramp_rate]}
    defaults = ScheduleSpec(s.shape, s.l_min, s.l_max)
    for key in RELEVANT.get(s.shape, ()):
        if getattr(s, key) != getattr(defaults, key):
            entry[key] = getattr(s, key)
    if s.stages:
        entry["stages"] = [list(x) for x in s.stages]
    for key in ("mixture_lengths", "mixture_start", "mixture_end"):
        if getattr(s, key):
            entry[key] = list(getattr(s, key))
    return entry


def target_spec(trial: TrialSpec, target: Target) -> dict:
    """A sweep spec for the full-scale run of this one schedule, in target units."""
    t = schedules.restate(trial.schedule, target.l_max)
    d = trial.sweep.to_dict()
    d["name"] = f"{trial.sweep.name}-{trial.schedule.label}-scaleup"
    d["budget"] = {
        **d["budget"],
        "tokens": target.tokens,
        "tokens_per_step": target.tokens_per_step,
    }
    d["schedules"] = {
        "l_min": t.l_min,
        "l_max": t.l_max,
        "multiple_of": t.multiple_of,
        "shapes": [_shape_entry(t)],
        "reference": trial.schedule.label,
    }
    d["seeds"] = [trial.seed]
    return d


def export_schedule(trial: TrialSpec, out: Path, target: Target) -> list[Path]:
    """Write the proxy step table, the target spec and, where DeepSpeed can express the
    shape, the target DeepSpeed config with its curriculum block. Returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    b = trial.sweep.budget
    plan = schedules.plan(trial.schedule, b.tokens, b.tokens_per_step, b.batching, trial.seed)
    written = [out / "proxy_steps.csv", out / "target_spec.yaml"]
    write_text_atomic(written[0], steps_csv(plan))
    spec_d = target_spec(trial, target)
    write_text_atomic(written[1], yaml.safe_dump(spec_d, sort_keys=False))
    if trial.schedule.shape != "mixture":
        t = schedules.restate(trial.schedule, target.l_max)
        ds = deepspeed_config(trial.sweep, world=1, use_gpu=True)
        ds["train_micro_batch_size_per_gpu"] = target.tokens_per_step // target.l_max
        ds["curriculum_learning"] = schedules.deepspeed_curriculum(
            t, target.tokens, target.tokens_per_step
        )
        written.append(out / "deepspeed.json")
        write_text_atomic(written[-1], json.dumps(ds, indent=2))
    return written


def export_spec(spec: SweepSpec, out: Path, target: Target) -> dict[str, list[Path]]:
    done: dict[str, list[Path]] = {}
    for t in spec.trials():
        if t.schedule.label not in done:
            done[t.schedule.label] = export_schedule(t, out / t.schedule.label, target)
    return done
