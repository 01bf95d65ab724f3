"""Read an exported step plan (``target_steps.csv`` or ``proxy_steps.csv`` of ``sweep
export``) in any trainer: step k trains ``rows`` rows of ``length`` tokens (plus one row of
``tail`` tokens when ``tail`` > 0), ``tokens_before`` tokens came before it, ``context`` is
the schedule's length L(f) and ``window`` the attention window (0: the whole row).

Standard library only, so that a training script can copy this one file (or import it
from the installed package) without Ray, torch or this project's other modules::

    from sweep.plan_file import StepPlan

    plan = StepPlan.read("export/linear-r1/target_steps.csv")
    for k in range(len(plan)):
        step = plan[k]  # step.length, step.rows, step.tokens, ...
        batch = next_rows(step.rows, step.length)  # your data: rows of step.length tokens

The adapters for Hugging Face ``Trainer`` and DeepSpeed (``sweep.adapters``) are built on
it."""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("step", "tokens_before", "length", "rows", "tail", "context", "window")


class PlanFileError(ValueError):
    """A step file that is not a plan this module can follow."""


@dataclass(frozen=True)
class Step:
    step: int
    tokens_before: int
    length: int
    rows: int
    tail: int
    context: int
    window: int

    @property
    def tokens(self) -> int:
        """Tokens this step trains: its rows of ``length`` and its tail row."""
        return self.rows * self.length + self.tail


class StepPlan:
    """The per-step table of one schedule, checked whole when read: steps numbered 0, 1,
    ... in order, and each step's ``tokens_before`` the sum of the steps before it."""

    def __init__(self, steps: list[Step]):
        if not steps:
            raise PlanFileError("the plan has no steps")
        seen = 0
        for k, s in enumerate(steps):
            if s.step != k:
                raise PlanFileError(f"step {s.step} is row {k}: steps must be 0, 1, ... in order")
            if s.tokens_before != seen:
                raise PlanFileError(
                    f"step {k}: tokens_before is {s.tokens_before}, the steps before it "
                    f"trained {seen}"
                )
            if s.length <= 0 or s.rows < 0 or s.tail < 0 or s.tokens <= 0:
                raise PlanFileError(f"step {k}: a step must train at least one token")
            seen += s.tokens
        self.steps = list(steps)
        self._starts = [s.tokens_before for s in steps]

    @classmethod
    def read(cls, path: str | Path) -> StepPlan:
        """The plan in a CSV file with the header ``COLUMNS``."""
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            head = next(reader, None)
            if head is None or tuple(head) != COLUMNS:
                raise PlanFileError(f"{path}: the header must be {','.join(COLUMNS)}, got {head}")
            try:
                steps = [Step(*(int(x) for x in row)) for row in reader if row]
            except (TypeError, ValueError) as exc:
                why = f"{path}: not a table of {len(COLUMNS)} integers ({exc})"
                raise PlanFileError(why) from None
        return cls(steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int) -> Step:
        if not 0 <= k < len(self.steps):
            raise IndexError(f"step {k} is outside the plan's {len(self.steps)} steps")
        return self.steps[k]

    def at_tokens(self, seen: int) -> Step:
        """The step that trains the token after the first ``seen``: where a run that counts
        tokens rather than steps stands."""
        if seen < 0 or seen >= self.total_tokens:
            raise IndexError(f"{seen} tokens is outside the plan's {self.total_tokens}")
        return self.steps[bisect.bisect_right(self._starts, seen) - 1]

    @property
    def total_tokens(self) -> int:
        last = self.steps[-1]
        return last.tokens_before + last.tokens

    @property
    def max_length(self) -> int:
        return max(max(s.length for s in self.steps), max(s.tail for s in self.steps))

    def tokens_by_length(self) -> dict[int, int]:
        """Tokens trained at each row length (a tail row counted at its own length)."""
        out: dict[int, int] = {}
        for s in self.steps:
            out[s.length] = out.get(s.length, 0) + s.rows * s.length
            if s.tail:
                out[s.tail] = out.get(s.tail, 0) + s.tail
        return dict(sorted(out.items()))
