"""Terminal progress of a sweep's Tune run: trials done / running / pending, the running
trials' tokens, and a line for each trial that ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from sweep.analysis.records import TrialRecord, read_record, record_path
from sweep.config.spec import SweepSpec
from sweep.run.cost import fmt_tokens
from sweep.run.search import sample_trial


def trial_line(tid: str, rec: TrialRecord | None) -> str:
    """One line on how a trial ended: its losses, or why it has none (a diverged trial's
    error names the step and the loss)."""
    if not rec:
        return f"{tid} ended"
    msg = f"{tid} {rec.status}"
    m = rec.metrics or {}
    if rec.status != "finished" and rec.error:
        return f"{msg}: {rec.error}"
    if all(isinstance(m.get(k), (int, float)) for k in ("id_loss", "far_loss")):
        msg += f": id_loss {m['id_loss']:.4f} far_loss {m['far_loss']:.4f}"
    return msg + f" in {rec.wall_s or 0:.0f}s"


class Progress:
    """What the terminal shows of a Tune run: each trial's state (by its sweep trial id)
    and the last training report of each running one."""

    def __init__(
        self,
        ids: list[str],
        kept: int,
        out: TextIO,
        spec: SweepSpec,
        sweep_dir: Path,
        every_s: float = 15.0,
    ):
        self.state = dict.fromkeys(ids, "pending")
        self.names: dict[str, str] = {}  # Tune's trial id -> the sweep's, for samples
        self.kept, self.out, self.every_s = kept, out, every_s
        self.spec, self.sweep_dir = spec, Path(sweep_dir)
        self.live: dict[str, dict] = {}
        self.t0 = time.time()
        self.last = 0.0

    def trial_id(self, tune_id: str, config: dict) -> str:
        """The sweep's id of a Tune trial: in its config for a grid trial, made from its
        parameters for a searched one."""
        if "trial_id" in config:
            return config["trial_id"]
        tid = self.names.get(tune_id)
        if tid is None:
            tid = sample_trial(config["params"], config["number"], self.spec).trial_id
            self.names[tune_id] = tid
            # a search's trials are known only when asked: take a placeholder's place
            slot = next((k for k in self.state if k.startswith("?")), None)
            if slot is not None:
                del self.state[slot]
            self.state[tid] = "pending"
        return tid

    def say(self, msg: str) -> None:
        el = int(time.time() - self.t0)
        print(f"[{el // 60:02d}:{el % 60:02d}] {msg}", file=self.out, flush=True)

    def status(self) -> str:
        n = list(self.state.values())
        parts = [
            f"{n.count('done') + self.kept}/{len(n) + self.kept} done",
            f"{n.count('running')} running",
            f"{n.count('pending')} pending",
        ]
        if n.count("failed"):
            parts.append(f"{n.count('failed')} failed")
        runs = [
            f"{tid} {100 * r['tokens'] / r['budget']:.0f}% "
            f"({fmt_tokens(r['tokens'])}, L={r.get('seq_len', '?')}, "
            f"loss {r.get('loss', float('nan')):.3f})"
            for tid, r in self.live.items()
            if self.state[tid] == "running"
        ]
        return " | ".join([", ".join(parts), *runs])

    def started(self, tid: str) -> None:
        self.state[tid] = "running"
        self.say(f"started {tid}; {self.status()}")

    def reported(self, tid: str, result: dict) -> None:
        if result.get("phase") == "train":
            self.live[tid] = result
        if time.time() - self.last >= self.every_s:
            self.last = time.time()
            self.say(self.status())

    def completed(self, tid: str) -> None:
        self.state[tid] = "done"
        rec = read_record(record_path(self.sweep_dir, tid))
        self.say(f"{trial_line(tid, rec)}; {self.status()}")

    def failed(self, tid: str) -> None:
        self.state[tid] = "failed"
        rec = read_record(record_path(self.sweep_dir, tid))
        self.say(f"{tid} FAILED: {(rec and rec.error) or '?'}; {self.status()}")


def tune_callback(progress: Progress):
    """A Ray Tune Callback that shows ``progress``; built on call, so importing this
    module starts nothing."""
    # deferred: the offline commands import this module and must not pay for ray
    from ray import tune

    class TuneProgress(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.started(progress.trial_id(trial.trial_id, trial.config))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            progress.reported(progress.trial_id(trial.trial_id, trial.config), result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.completed(progress.trial_id(trial.trial_id, trial.config))

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.failed(progress.trial_id(trial.trial_id, trial.config))

    return TuneProgress()
