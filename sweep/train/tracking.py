"""W&B mirror of a trial. Offline by default: no account, no network. The results
directory stays the source of truth; nothing here decides anything. The API key only
ever travels in the environment (WANDB_API_KEY), never in a config or record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Tracker:
    """One W&B run per trial, grouped by sweep name; a no-op when mode is 'disabled'."""

    def __init__(
        self,
        mode: str,
        project: str,
        entity: str | None,
        group: str,
        name: str,
        config: dict,
        run_dir: Path,
    ):
        self.run = None
        if mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        if mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # deferred: a disabled tracker never pays for wandb (~0.5 s to import)

        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            mode=mode,
            project=project,
            entity=entity,
            group=group,
            name=name,
            id=f"{group}-{name}".replace(".", "_"),
            config=config,
            dir=str(run_dir),
            reinit="create_new",
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        self.run.define_metric("tokens")
        for key in ("train/*", "eval/*"):
            self.run.define_metric(key, step_metric="tokens")

    def log(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(metrics)

    def log_curve(self, curve: list[float], l_max: int) -> None:
        if self.run is None:
            return
        import wandb  # deferred: a disabled tracker never pays for wandb

        stride = max(1, len(curve) // 512)  # a W&B line plot needs no more points than this
        rows = [[p, curve[p - 1], p / l_max] for p in range(1, len(curve) + 1, stride)]
        table = wandb.Table(data=rows, columns=["position", "loss", "position_over_l_max"])
        self.run.log(
            {"eval/curve": wandb.plot.line(table, "position", "loss", title="loss vs position")}
        )

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> str | None:
        if self.run is None:
            return None
        for k, v in summary.items():
            self.run.summary[k] = v
        path = self.run.dir
        self.run.finish(exit_code=exit_code)
        return path


RANKING_COLUMNS = (
    "schedule", "role", "seeds", "id_loss", "far_loss", "far_minus_ref", "far_excess",
    "own_excess", "context_use", "slope", "outcome", "chosen",
)  # fmt: skip


def mirror_summary(summary: dict, mode: str, project: str, entity, group: str, run_dir) -> None:
    """One more W&B run in the sweep's group, named "summary": the ranking as a table with
    the level and shape metrics against the reference, what the sweep sees, the verdict and
    the decision (margin, comparisons). A mirror of summary.json, which stays the source."""
    tracker = Tracker(mode, project, entity, group, "summary", {"kind": "summary"}, Path(run_dir))
    if tracker.run is None:
        return
    import wandb  # deferred: a disabled tracker never pays for wandb

    picks = {p["schedule"] for p in summary.get("picks", [])}
    cands = {c["schedule"] for c in summary.get("candidates", [])}

    def mean(iv) -> float | None:
        return (iv or {}).get("mean")

    rows = []
    for r in summary.get("ranking", []):
        name = r["schedule"]
        rows.append(
            [
                name,
                r.get("role"),
                r.get("seeds"),
                r.get("id_loss"),
                r.get("far_loss"),
                mean((r.get("vs_ref") or {}).get("far_loss")),
                mean(r.get("far_excess")),
                mean(r.get("own_excess")),
                mean(r.get("context_use_ci")),
                r.get("slope"),
                (r.get("decision") or {}).get("outcome"),
                "pick" if name in picks else "candidate" if name in cands else "",
            ]
        )
    tracker.run.log({"summary/ranking": wandb.Table(columns=list(RANKING_COLUMNS), data=rows)})
    decision = summary.get("decision") or {}
    tracker.finish(
        {
            "summary/sees": summary.get("sees"),
            "summary/verdict": summary.get("verdict"),
            "summary/picks": sorted(picks),
            "summary/candidates": sorted(cands),
            "summary/margin": decision.get("margin"),
            "summary/comparisons": decision.get("comparisons"),
        }
    )
