"""A Hugging Face ``Trainer`` that follows an exported plan step for step.

``PlanDataset`` yields one item per optimizer step: the step's rows, cut from a packed
token stream, as a (rows, length + 1) batch (a causal LM shifts labels by one inside, so a
row of length + 1 tokens trains length predictions, as the sweep's trials do); a step's
tail row is padded to the step's length with labels -100. ``plan_collator`` hands that
batch to the model as it is (the DataLoader's batch size is 1 step), and ``PlanCallback``
refuses arguments under which Trainer's steps would not be the plan's steps::

    plan = StepPlan.read("export/linear-r1/target_steps.csv")
    args = TrainingArguments(..., per_device_train_batch_size=1,
                             gradient_accumulation_steps=1, max_steps=len(plan))
    trainer = Trainer(model=model, args=args, train_dataset=PlanDataset(plan, token_ids),
                      data_collator=plan_collator, callbacks=[PlanCallback(plan)])

One process: with several data-parallel processes each would draw whole steps, so split
``rows`` across ranks yourself (``rank`` and ``world`` of ``PlanDataset``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import TrainerCallback

from sweep.plan_file import StepPlan

IGNORE = -100  # the label a causal LM's loss skips


class PlanDataset(torch.utils.data.IterableDataset):
    """The plan's steps from ``start_step`` on, each one batch of consecutive rows of the
    packed ``tokens`` (rows overlap by one token, so every token is a target once),
    wrapping around the stream when it runs out. With ``world`` > 1, rank ``rank`` gets
    its share of every step's rows (``numpy.array_split``)."""

    def __init__(
        self,
        plan: StepPlan,
        tokens: Sequence[int] | np.ndarray,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.plan, self.start, self.rank, self.world = plan, start_step, rank, world
        self.tokens = np.asarray(tokens, dtype=np.int64)
        if self.tokens.ndim != 1 or len(self.tokens) < plan.max_length + 1:
            raise ValueError(
                f"tokens: a 1-D stream of at least {plan.max_length + 1} ids is needed"
            )
        few = next((s for s in plan.steps if s.rows + (s.tail > 0) < world), None)
        if few is not None:
            raise ValueError(f"step {few.step} has fewer rows than the {world} ranks")

    def _take(self, pos: int, n: int) -> tuple[np.ndarray, int]:
        """n + 1 tokens from ``pos`` (wrapping), and the position of the next row."""
        idx = (pos + np.arange(n + 1)) % len(self.tokens)
        return self.tokens[idx], (pos + n) % len(self.tokens)

    def __iter__(self) -> Iterator[dict]:
        pos = self.plan[self.start].tokens_before % len(self.tokens)
        for k in range(self.start, len(self.plan)):
            s = self.plan[k]
            rows = []
            for _ in range(s.rows):
                row, pos = self._take(pos, s.length)
                rows.append((row, row.copy()))
            if s.tail:
                row, pos = self._take(pos, s.tail)
                ids = np.zeros(s.length + 1, dtype=np.int64)
                labels = np.full(s.length + 1, IGNORE, dtype=np.int64)
                ids[: s.tail + 1], labels[: s.tail + 1] = row, row
                rows.append((ids, labels))
            mine = np.array_split(np.arange(len(rows)), self.world)[self.rank]
            yield {
                "input_ids": torch.as_tensor(np.stack([rows[i][0] for i in mine])),
                "labels": torch.as_tensor(np.stack([rows[i][1] for i in mine])),
                "plan_step": k,
            }


def plan_collator(features: list[dict]) -> dict:
    """The DataLoader's batch of one step, handed to the model as that step's batch."""
    if len(features) != 1:
        raise ValueError(
            f"got {len(features)} steps in one batch: set per_device_train_batch_size=1 "
            "(each item of PlanDataset is a whole step)"
        )
    return {k: v for k, v in features[0].items() if k != "plan_step"}


class PlanCallback(TrainerCallback):
    """Checks that Trainer's optimizer steps are the plan's steps (one item per step, no
    gradient accumulation, max_steps within the plan) and logs each step's length."""

    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.lengths: list[tuple[int, int]] = []  # (step, context length) as trained

    def on_train_begin(self, args, state, control, **kwargs):
        bad = [
            (name, got, want)
            for name, got, want in (
                ("per_device_train_batch_size", args.per_device_train_batch_size, 1),
                ("gradient_accumulation_steps", args.gradient_accumulation_steps, 1),
            )
            if got != want
        ]
        if args.max_steps <= 0 or args.max_steps > len(self.plan):
            bad.append(("max_steps", args.max_steps, f"1..{len(self.plan)}"))
        if bad:
            said = ", ".join(f"{n}={g} (must be {w})" for n, g, w in bad)
            raise ValueError(f"the plan's steps are not Trainer's steps: {said}")

    def on_step_end(self, args, state, control, **kwargs):
        if 0 < state.global_step <= len(self.plan):
            self.lengths.append((state.global_step, self.plan[state.global_step - 1].context))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and 0 < state.global_step <= len(self.plan):
            logs["context_length"] = self.plan[state.global_step - 1].context
