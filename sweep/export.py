"""Export for the scale-up run. Per schedule, one folder with

- ``proxy_steps.csv``: the per-step table the sweep trained (``schedules.plan``);
- ``target_steps.csv``: the same schedule's per-step table at target scale, the plan of the
  restated schedule at the target tokens and tokens per step (``STEP_COLUMNS``): what a
  custom DeepSpeed schedule or another trainer reads;
- ``schedule_at_target.yaml``: the schedule restated in target units (``restate``; for
  example BTLM's l_max 8,192 and 627B tokens) inside the proxy's sweep spec: its model,
  corpus and resources are still the proxy's, to be edited before it runs as a sweep;
- ``deepspeed.json``: a DeepSpeed config for the target batch; where DeepSpeed can express
  the schedule faithfully in tokens, with its data-efficiency curriculum;
- ``README.md``: what the folder holds and how faithful ``deepspeed.json`` is.

What DeepSpeed can express (read in the installed DeepSpeed, 0.19): the legacy top-level
``curriculum_learning`` block is gone (``DeepSpeedConfig`` rejects it); the data-efficiency
curriculum (``data_efficiency.data_sampling.curriculum_learning``) has its sampler draw
``train_batch_size`` rows per step and call ``CurriculumScheduler.update_difficulty(k)``
before step k = 1, 2, ...; the training script's data post-process function then cuts the
rows to that length (Megatron-DeepSpeed's ``seqlen_truncate``). DeepSpeed never reshapes
rows itself, so a step at length L trains ``train_batch_size * L`` tokens: tokens per step
vary. To train the schedule's tokens at every length, the curriculum is written in those
truncation terms: a run of T tokens at length L becomes T / (rows * L) steps
(``truncation_steps``), so the config trains more steps than the target plan (N instead of
M) with the same tokens at each length, in the same order. In ``truncate`` mode the proxy
already trained that way and the config is step- and token-faithful at once. ``window``
and ``doc_buckets`` modes and the ``mixture`` shape have no DeepSpeed form: the config then
has no curriculum, and the folder says why and points at ``target_steps.csv``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sweep.analysis.records import write_text_atomic
from sweep.config import schedules
from sweep.config.shapes import LIST_PARAMS, SHAPES, ScheduleSpec
from sweep.config.spec import OptimSpec, SweepSpec, TrialSpec
from sweep.train.dsconfig import deepspeed_config

# The curriculum metric of the exported config. Megatron-DeepSpeed's data post-process
# function cuts rows to the current difficulty of a metric of this name.
METRIC = "seqlen_truncate"
STEP_COLUMNS = ("step", "tokens_before", "length", "rows", "tail", "context", "window")


@dataclass(frozen=True)
class Target:
    l_max: int = 8192
    tokens: int = 627_000_000_000
    tokens_per_step: int = 4_194_304  # 512 rows of 8,192 tokens

    @property
    def rows(self) -> int:
        """Rows of l_max per step: DeepSpeed's ``train_batch_size``."""
        return self.tokens_per_step // self.l_max


def restate(s: ScheduleSpec, target_l_max: int) -> ScheduleSpec:
    """The same schedule in target units: every length scaled by target_l_max / l_max,
    fractions and ramp rate unchanged (the budget is expressed in fractions already)."""
    k = target_l_max / s.l_max

    def scale(x: int) -> int:
        return max(1, round(x * k))

    return ScheduleSpec(
        **{
            **s.__dict__,
            "l_min": scale(s.l_min),
            "l_max": target_l_max,
            "multiple_of": max(1, scale(s.multiple_of)),
            "l_short": scale(s.l_short) if s.l_short else 0,
            "stages": tuple((f, scale(L)) for f, L in s.stages),
            "mixture_lengths": tuple(scale(L) for L in s.mixture_lengths),
        }
    )


def steps_csv(plan: schedules.Plan) -> str:
    """The per-step table (``STEP_COLUMNS``): step k trains ``rows`` rows of ``length``
    tokens plus one row of ``tail`` tokens when ``tail`` > 0; ``tokens_before`` are the
    tokens trained before it; ``context`` is the schedule's length L(f) at the step, the row
    length except in window mode; ``window`` the attention window (0: the whole row)."""
    cols = np.column_stack(
        [
            np.arange(plan.steps),
            plan.cumulative_tokens(),
            plan.lengths,
            plan.rows,
            plan.tails,
            plan.context,
            plan.windows,
        ]
    ).astype(np.int64)
    lines = [",".join(STEP_COLUMNS), *(",".join(map(str, r)) for r in cols.tolist())]
    return "\n".join(lines) + "\n"


def tokens_by_context(plan: schedules.Plan) -> dict[int, int]:
    """Tokens trained at each schedule length L(f) (the window in window mode), a step's
    tail row counted with the step, at the step's L(f) (``Plan.tokens_by_length`` counts
    a tail row at its own length)."""
    out: dict[int, int] = {}
    for c, n in zip(plan.context.tolist(), plan.tokens.tolist()):
        out[c] = out.get(c, 0) + n
    return dict(sorted(out.items()))


def context_runs(plan: schedules.Plan) -> list[tuple[int, int]]:
    """(length, tokens) of every run of consecutive steps at one schedule length, in order."""
    runs: list[list[int]] = []
    for c, n in zip(plan.context.tolist(), plan.tokens.tolist()):
        if runs and runs[-1][0] == c:
            runs[-1][1] += n
        else:
            runs.append([c, n])
    return [(c, n) for c, n in runs]


def truncation_steps(runs: list[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """(length, steps) in truncation terms, where a step at length L trains ``rows * L``
    tokens: every run gets the whole number of steps that brings the tokens trained so far
    closest to the schedule's, so the total is off by at most half a step and every run by
    at most a step. A run too short for one step is dropped (the next absorbs it)."""
    out: list[tuple[int, int]] = []
    wanted = done = 0
    for L, tokens in runs:
        wanted += tokens
        k = max(0, round((wanted - done) / (rows * L)))
        if not k:
            continue
        done += k * rows * L
        if out and out[-1][0] == L:
            out[-1] = (L, out[-1][1] + k)
        else:
            out.append((L, k))
    return out


def deepspeed_data_efficiency(steps: list[tuple[int, int]]) -> dict:
    """The ``data_efficiency`` block for (length, steps) runs in order: one ``seqlen_truncate``
    metric with a ``fixed_discrete`` schedule, length ``difficulty[i]`` while the sampler's
    step (1, 2, ...) is at most ``max_step[i]``. ``update_difficulty`` stops updating once
    the current difficulty reaches ``max_difficulty``, so a schedule that comes back down
    from its longest length (reverse, geometric with cycles > 1) gets a ``max_difficulty``
    one above it, which nothing else reads for a single-cluster value metric."""
    difficulty = [L for L, _ in steps]
    bounds = list(itertools.accumulate(k for _, k in steps))
    max_step = bounds[:-1]
    if not max_step:  # DeepSpeed needs one more difficulty than max_step entries
        difficulty, max_step = difficulty * 2, bounds
    top = max(difficulty)
    comes_down = min(difficulty[difficulty.index(top) :]) < top
    metric = {
        "difficulty_type": "value",
        "clustering_type": "single_cluster",
        "min_difficulty": min(difficulty),
        "max_difficulty": top + 1 if comes_down else top,
        "schedule_type": "fixed_discrete",
        "schedule_config": {"difficulty": difficulty, "max_step": max_step},
    }
    return {
        "enabled": True,
        "data_sampling": {
            "enabled": True,
            "curriculum_learning": {
                "enabled": True,
                "data_cluster_path": "curriculum_clusters",
                "curriculum_metrics": {METRIC: metric},
            },
        },
    }


def no_deepspeed_form(s: ScheduleSpec) -> str | None:
    """Why DeepSpeed's curriculum cannot express the schedule faithfully (None: it can)."""
    why = SHAPES[s.shape].no_deepspeed
    if why is not None:
        return why
    if s.mode == "window":
        return (
            "window mode keeps rows of l_max and limits attention to the last L(f) "
            "positions; DeepSpeed's seqlen curriculum changes the row length, not attention"
        )
    if s.mode == "doc_buckets":
        return (
            "doc_buckets mode cuts rows of L(f) from single documents; DeepSpeed's seqlen "
            "curriculum cuts the sampler's packed rows of l_max, across document boundaries"
        )
    return None


def _target_config(sweep: SweepSpec, target: Target) -> dict:
    """The sweep's DeepSpeed config at the target batch: ``train_batch_size`` rows of l_max
    per step, micro-batches derived by DeepSpeed from the world size."""
    ds = deepspeed_config(sweep, world=1, use_gpu=True)
    ds.pop("train_micro_batch_size_per_gpu", None)
    if target.rows % ds["gradient_accumulation_steps"]:
        ds["gradient_accumulation_steps"] = 1
    return {"train_batch_size": target.rows, **ds}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _shape_entry(s: ScheduleSpec) -> dict:
    """The shape entry of ``s``: the parameters its shape reads (the registry's), a
    scalar one where it is not the default, a list one where it is not empty."""
    entry: dict = {"shape": s.shape, "ramp_rates": [s.ramp_rate]}
    defaults = ScheduleSpec(s.shape, s.l_min, s.l_max)
    for key in SHAPES[s.shape].params:
        value = getattr(s, key)
        if key in LIST_PARAMS:
            if value:
                entry[key] = [list(x) if isinstance(x, tuple) else x for x in value]
        elif value != getattr(defaults, key):
            entry[key] = value
    return entry


def target_spec(trial: TrialSpec, target: Target) -> dict:
    """A sweep spec for the full-scale run of this one schedule, in target units."""
    t = restate(trial.schedule, target.l_max)
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
        "modes": [t.mode],  # the label names the mode: without it the reference is unknown
        "reference": trial.schedule.label,
    }
    d["seeds"] = [trial.seed]
    return d


def target_plan(trial: TrialSpec, target: Target) -> schedules.Plan:
    """The per-step plan of the schedule restated in target units, at the target tokens and
    tokens per step: what ``target_steps.csv`` holds."""
    t = restate(trial.schedule, target.l_max)
    return schedules.plan(t, target.tokens, target.tokens_per_step, trial.seed)


def deepspeed_export(trial: TrialSpec, target: Target, tplan: schedules.Plan | None = None) -> dict:
    """The DeepSpeed config of ``deepspeed.json``: the sweep's config at the target batch;
    where DeepSpeed can express the schedule (``no_deepspeed_form``), its data-efficiency
    curriculum in truncation terms (``truncation_steps`` of the target plan's runs); and
    under ``ctx_sweep`` a note DeepSpeed ignores: train_iters, tokens per length, the
    learning-rate axis, or why there is no curriculum."""
    tplan = tplan if tplan is not None else target_plan(trial, target)
    t = restate(trial.schedule, target.l_max)
    ds = _target_config(trial.sweep, target)
    note: dict = {"schedule": trial.schedule.label, "target_plan_steps": tplan.steps}
    why = no_deepspeed_form(t)
    if why is not None:
        note |= {"curriculum": None, "why_no_curriculum": why}
        note["note"] = f"no DeepSpeed curriculum ({why}); target_steps.csv holds the per-step table"
        ds["ctx_sweep"] = note
        return ds
    steps = truncation_steps(context_runs(tplan), target.rows)
    ds["data_efficiency"] = deepspeed_data_efficiency(steps)
    note |= _curriculum_note(steps, target.rows)
    note |= _what_it_trains(steps, note, t.mode, target, tplan.steps, trial.sweep.optim)
    ds["ctx_sweep"] = note  # DeepSpeed ignores keys it does not know
    return ds


def _curriculum_note(steps: list[tuple[int, int]], rows: int) -> dict:
    """The curriculum's steps and tokens, in total and per length, for ``ctx_sweep``."""
    by_length: dict[int, int] = {}
    for L, k in steps:
        by_length[L] = by_length.get(L, 0) + k * rows * L
    per_step = sorted({L * rows for L, _ in steps})
    return {
        "curriculum": f"data_efficiency {METRIC}, fixed_discrete, in truncation terms",
        "train_iters": sum(k for _, k in steps),
        "train_tokens": sum(by_length.values()),
        "tokens_per_step": (
            f"varies: {rows} rows x the step's length ({per_step[0]:,} to {per_step[-1]:,})"
            if len(per_step) > 1
            else per_step[0]
        ),
        "tokens_by_length": {str(L): n for L, n in sorted(by_length.items())},
    }


def _lr_by_step(axis: str, o: OptimSpec, n_steps: int) -> dict:
    return {
        "x_axis": axis,
        "lr": o.lr,
        "warmup_steps": round(o.warmup_fraction * n_steps),
        "min_lr_ratio": o.min_lr_ratio,
        "decay_to_step": n_steps,
    }


def _what_it_trains(
    steps: list[tuple[int, int]],
    curriculum: dict,
    mode: str,
    target: Target,
    plan_steps: int,
    o: OptimSpec,
) -> dict:
    """The note's line on what ``deepspeed.json`` trains, and its learning-rate axis:
    steps where every step trains the same tokens (l_max throughout, or truncate mode as
    the proxy did), tokens seen otherwise."""
    rows, n_steps, total = target.rows, curriculum["train_iters"], curriculum["train_tokens"]
    per_step = sorted({L * rows for L, _ in steps})
    if all(L == target.l_max for L, _ in steps):  # l_max throughout: nothing is cut
        return {
            "note": f"deepspeed.json trains {n_steps:,} steps of {rows} rows of "
            f"{target.l_max:,} tokens, {total:,} tokens (no row is cut)",
            "lr_schedule": _lr_by_step("step (every step trains the same tokens)", o, n_steps),
        }
    if mode == "truncate":  # the proxy's own semantics: the same steps and LR curve
        axis = "step (nominal tokens = step x tokens_per_step, as the proxy)"
        return {
            "note": f"deepspeed.json trains the truncate schedule as the proxy did: "
            f"{n_steps:,} steps of {rows} rows cut to the step's length, {total:,} tokens",
            "lr_schedule": _lr_by_step(axis, o, n_steps),
        }
    per = (
        f"tokens per step vary ({rows} rows x the step's length)"
        if len(per_step) > 1
        else f"a step trains {rows} rows x {steps[0][0]:,} = {per_step[0]:,} tokens"
    )
    return {
        "note": f"deepspeed.json cuts rows of l_max, it cannot reshape them: {per}, so it "
        f"trains {n_steps:,} steps instead of {plan_steps:,}, {total:,} tokens at the "
        "schedule's share per length",
        "lr_schedule": {
            "x_axis": "tokens seen (the sum of rows x length), not the step count",
            "lr": o.lr,
            "warmup_tokens": round(o.warmup_fraction * total),
            "min_lr_ratio": o.min_lr_ratio,
            "decay_to_tokens": total,
        },
    }


def export_schedule(
    trial: TrialSpec,
    out: Path,
    target: Target,
    echo: Callable[[str], None] | None = print,
) -> list[Path]:
    """Write the folder of one schedule (see the module docstring); ``echo`` gets one line
    saying what ``deepspeed.json`` trains, or why it has no curriculum. Returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    proxy = trial.plan()
    tplan = target_plan(trial, target)
    ds = deepspeed_export(trial, target, tplan)
    texts = {
        "proxy_steps.csv": steps_csv(proxy),
        "target_steps.csv": steps_csv(tplan),
        "schedule_at_target.yaml": yaml.safe_dump(target_spec(trial, target), sort_keys=False),
        "deepspeed.json": json.dumps(ds, indent=2) + "\n",
        "README.md": _folder_readme(trial, target, proxy, tplan, ds["ctx_sweep"]),
    }
    for name, text in texts.items():
        write_text_atomic(out / name, text)
    if echo is not None:
        echo(f"{trial.schedule.label}: {ds['ctx_sweep']['note']}")
    return [out / name for name in texts]


def _folder_readme(
    trial: TrialSpec,
    target: Target,
    proxy: schedules.Plan,
    tplan: schedules.Plan,
    note: dict,
) -> str:
    lines = [
        f"# {trial.schedule.label}: export for the scale-up run",
        "",
        f"Target: l_max {target.l_max:,}, {target.tokens:,} tokens, "
        f"{target.tokens_per_step:,} tokens per step ({target.rows} rows of l_max).",
        "",
        "| file | what |",
        "|---|---|",
        f"| `proxy_steps.csv` | the proxy's per-step table ({proxy.steps:,} steps) |",
        f"| `target_steps.csv` | the per-step table at target scale ({tplan.steps:,} steps, "
        f"{tplan.total_tokens:,} tokens): {', '.join(STEP_COLUMNS)} |",
        "| `schedule_at_target.yaml` | the schedule in target units inside the proxy's sweep "
        "spec (model, corpus and resources are the proxy's: edit them first) |",
        "| `deepspeed.json` | DeepSpeed config at the target batch; its `ctx_sweep` key is a "
        "note DeepSpeed ignores |",
        "",
        "## DeepSpeed",
        "",
        *_readme_deepspeed(note, target),
        *_README_TRAINER,
        *_readme_shares(trial, target, proxy, tplan, note),
    ]
    return "\n".join(lines) + "\n"


def _readme_deepspeed(note: dict, target: Target) -> list[str]:
    """What ``deepspeed.json`` does with the schedule, or why it has no curriculum."""
    if note["curriculum"] is None:
        return [
            f"No curriculum in `deepspeed.json`: {note['why_no_curriculum']}. Drive the run "
            "from `target_steps.csv` instead: a custom DeepSpeed schedule "
            "(`engine.set_custom_curriculum_learning_schedule`) with a data post-process "
            "function that builds each step as the table says, or another trainer's loop "
            '(see the repository README, "Using an exported schedule in another trainer").',
        ]
    return [
        f"`deepspeed.json` sets the data-efficiency curriculum metric `{METRIC}`: "
        f"DeepSpeed's sampler draws {target.rows} rows of l_max per step and the training "
        "script's data post-process function cuts them to the step's length (as "
        "Megatron-DeepSpeed does for this metric). DeepSpeed does not reshape rows, so a "
        "step at length L trains "
        f"{target.rows} x L tokens. {note['note']}.",
        "",
        f"Learning rate: its x axis is the {note['lr_schedule']['x_axis']} "
        "(`ctx_sweep.lr_schedule` in `deepspeed.json`).",
    ]


_README_TRAINER = [
    "",
    "## In your trainer",
    "",
    "`target_steps.csv` is the contract: before optimizer step k, train `rows` rows of "
    "`length` tokens (and one row of `tail` tokens when `tail` > 0). "
    "`sweep.plan_file.StepPlan` reads it (standard library only). Adapters built on it:",
    "",
    "```python",
    "from sweep.plan_file import StepPlan",
    "from sweep.adapters.hf_trainer import PlanCallback, PlanDataset, plan_collator",
    "",
    'plan = StepPlan.read("target_steps.csv")',
    "args = TrainingArguments(..., per_device_train_batch_size=1,",
    "                         gradient_accumulation_steps=1, max_steps=len(plan))",
    "trainer = Trainer(model=model, args=args, train_dataset=PlanDataset(plan, token_ids),",
    "                  data_collator=plan_collator, callbacks=[PlanCallback(plan)])",
    "```",
    "",
    "With DeepSpeed's curriculum (`deepspeed.json`), the data post-process function is "
    "`sweep.adapters.ds_curriculum.seqlen_truncate`: "
    "`engine.set_data_post_process_func(seqlen_truncate)`.",
    "",
]


def _readme_shares(
    trial: TrialSpec,
    target: Target,
    proxy: schedules.Plan,
    tplan: schedules.Plan,
    note: dict,
) -> list[str]:
    """The table of each length's share of the tokens: the proxy's (lengths scaled to the
    target), the target plan's and ``deepspeed.json``'s."""
    ds_tokens = {int(L): n for L, n in note.get("tokens_by_length", {}).items()}
    k = target.l_max / trial.schedule.l_max
    proxy_by: dict[int, int] = {}
    for L, n in tokens_by_context(proxy).items():
        key = max(1, round(L * k))
        proxy_by[key] = proxy_by.get(key, 0) + n
    target_by = tokens_by_context(tplan)
    ds_total = sum(ds_tokens.values())
    lines = [
        "Share of tokens at each length:",
        "",
        "| length | proxy | target plan | deepspeed.json |",
        "|---:|---:|---:|---:|",
    ]
    for L in sorted(set(proxy_by) | set(target_by) | set(ds_tokens)):
        lines.append(
            f"| {L} | {_pct(proxy_by.get(L, 0), proxy.total_tokens)} | "
            f"{_pct(target_by.get(L, 0), tplan.total_tokens)} | "
            f"{_pct(ds_tokens.get(L, 0), ds_total) if ds_total else '-'} |"
        )
    return lines


def export_spec(
    spec: SweepSpec, out: Path, target: Target, echo: Callable[[str], None] | None = print
) -> dict[str, list[Path]]:
    done: dict[str, list[Path]] = {}
    for t in spec.trials():
        if t.schedule.label not in done:
            done[t.schedule.label] = export_schedule(t, out / t.schedule.label, target, echo)
    return done
