"""The Pareto front of a sweep's schedules."""

from __future__ import annotations

PARETO_KEYS = ("id_loss", "far_loss", "flops")


def pareto_front(rows: list[dict], keys=PARETO_KEYS) -> list[str]:
    """Schedules no other schedule beats on every key (all minimised)."""
    front = []
    for r in rows:
        dominated = any(
            all(o[k] <= r[k] for k in keys) and any(o[k] < r[k] for k in keys)
            for o in rows
            if o is not r
        )
        if not dominated:
            front.append(r["schedule"])
    return front
