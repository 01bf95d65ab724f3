"""The W&B workspace of a sweep, defined with ``wandb-workspaces``: eval curves and
training grouped by schedule shape, flatness versus ramp rate, sequence length versus
tokens, and a summary table. ``sweep dashboard --project P`` saves it (online only);
building it needs no network, so tests check its panels offline.

Run keys come from ``sweep.tracking``: config is the trial dict (``schedule.shape``,
``schedule.ramp_rate``, ...), history is ``train/*`` and ``eval/*`` against ``tokens``,
summary is ``final/*``."""

from __future__ import annotations

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

SHAPE = "schedule.shape"


def build(entity: str, project: str, sweep: str | None = None) -> ws.Workspace:
    """The workspace, filtered to one sweep (W&B group) when ``sweep`` is given."""
    sections = [
        ws.Section(
            name="Extrapolation",
            panels=[
                wr.LinePlot(
                    title="far_loss during training, by shape",
                    x="tokens",
                    y=["eval/far_loss"],
                    groupby=wr.Config(SHAPE),
                ),
                wr.LinePlot(
                    title="far_loss during training, by shape",
                    x="tokens",
                    y=["eval/far_loss"],
                    groupby=wr.Config(SHAPE),
                ),
                wr.ScatterPlot(
                    title="far_loss versus ramp rate",
                    x=wr.Config("schedule.ramp_rate"),
                    y=wr.SummaryMetric("final/far_loss"),
                ),
                wr.ScatterPlot(
                    title="far_loss versus id_loss",
                    x=wr.SummaryMetric("final/id_loss"),
                    y=wr.SummaryMetric("final/far_loss"),
                ),
            ],
            is_open=True,
        ),
        ws.Section(
            name="Training",
            panels=[
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
            name="Summary",
            panels=[
                wr.RunComparer(diff_only="split"),
                wr.ParallelCoordinatesPlot(
                    title="schedule parameters to final metrics",
                    columns=[
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("schedule.ramp_rate")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("final/id_loss")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("final/far_loss")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("final/slope")),
                    ],
                ),
            ],
            is_open=True,
        ),
    ]
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
