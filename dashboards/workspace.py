"""The W&B workspace of a sweep, defined with ``wandb-workspaces``: the verdict's numbers
(far_loss and its bands per schedule, the controls, context use, tokens at l_max), training
curves grouped by schedule shape, and shape / ramp rate / mode against far_loss.
``sweep dashboard --project P`` saves it (online only); building it needs no network, so
tests check its panels offline.

Run keys come from ``sweep.train.tracking``: config is the trial dict (``schedule.shape``,
``schedule.ramp_rate``, ...) with the schedule's ``label`` and ``role``, history is
``train/*`` and ``eval/*`` against ``tokens``, summary is ``final/*``
(tests/unit/test_dashboard.py checks the workspace names no other key)."""

from __future__ import annotations

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

SHAPE = "schedule.shape"
LABEL = "label"  # the schedule's label (shape, rate, mode), set by the trial
ROLE = "role"  # reference, candidate or control
FAR_BANDS = ("final/far_x2", "final/far_x4")  # present whenever E >= 4 x l_max


def _bars(title: str, keys: list[str]) -> wr.BarPlot:
    """One bar per schedule (seed mean, with the seeds' range)."""
    return wr.BarPlot(
        title=title,
        metrics=[wr.SummaryMetric(k) for k in keys],
        groupby=wr.Config(LABEL),
        groupby_aggfunc="mean",
        groupby_rangefunc="minmax",
    )


def build(entity: str, project: str, sweep: str | None = None) -> ws.Workspace:
    """The workspace, filtered to one sweep (W&B group) when ``sweep`` is given: the
    verdict's numbers first (far_loss and its bands per schedule, the controls against
    the reference, context use, tokens at l_max), then training, then the parameters."""
    sections = [
        ws.Section(
            name="Verdict: far_loss and the controls",
            panels=[
                _bars("far_loss per schedule (the objective; lower is better)", ["final/far_loss"]),
                _bars("far bands per schedule", list(FAR_BANDS)),
                wr.ScatterPlot(
                    title="far_loss versus id_loss (controls: role = control)",
                    x=wr.SummaryMetric("final/id_loss"),
                    y=wr.SummaryMetric("final/far_loss"),
                ),
                _bars("the controls and the reference: far_loss by role", ["final/far_loss"]),
                _bars(
                    "context_use (gain from context between l_max/8 and l_max)",
                    ["final/context_use"],
                ),
                _bars("ctx_gain (context used past l_max)", ["final/ctx_gain"]),
                wr.ScatterPlot(
                    title="far_loss versus tokens at l_max",
                    x=wr.SummaryMetric("final/tokens_at_l_max"),
                    y=wr.SummaryMetric("final/far_loss"),
                ),
            ],
            is_open=True,
        ),
        ws.Section(
            name="Training",
            panels=[
                wr.LinePlot(
                    title="far_loss during training, by shape",
                    x="tokens",
                    y=["eval/far_loss"],
                    groupby=wr.Config(SHAPE),
                ),
                wr.LinePlot(title="sequence length versus tokens", x="tokens", y=["train/seq_len"]),
                wr.LinePlot(
                    title="training loss, by shape",
                    x="tokens",
                    y=["train/loss"],
                    groupby=wr.Config(SHAPE),
                ),
                wr.LinePlot(title="learning rate", x="tokens", y=["train/lr"]),
                wr.LinePlot(title="tokens per second", x="tokens", y=["train/tokens_per_s"]),
            ],
            is_open=True,
        ),
        ws.Section(
            name="Parameters",
            panels=[
                wr.RunComparer(diff_only="split"),
                wr.ParallelCoordinatesPlot(
                    title="shape, ramp rate and mode to far_loss",
                    columns=[
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config(SHAPE)),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("schedule.ramp_rate")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("schedule.mode")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("final/far_loss")),
                    ],
                ),
            ],
            is_open=True,
        ),
    ]
    # the controls' panel groups by role, not by schedule
    sections[0].panels[3].groupby = wr.Config(ROLE)
    filters = f"Metric('Group') == '{sweep}'" if sweep else None
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"ctx-sweep: {sweep}" if sweep else "ctx-sweep",
        sections=sections,
        runset_settings=ws.RunsetSettings(
            filters=filters,
            groupby=[ws.Config(SHAPE)],
            order=[ws.Ordering(ws.Summary("final/far_loss"))],
        ),
    )
