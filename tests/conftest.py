import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# CI draws the same property-test examples every run, so a pass or a failure reproduces;
# `HYPOTHESIS_PROFILE=explore pytest ...` draws fresh ones to hunt for new failures (a
# failure found that way becomes an @example or a regression test).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

E2E = Path(__file__).parent / "e2e"
UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(config, items):
    """Where a test lives says its tier: every test under tests/e2e is marked e2e (so
    ``-m "not e2e"`` is the fast tier), and an e2e-marked test under tests/unit stops the
    run, so that the folders and the marker cannot drift apart."""
    for item in items:
        path = Path(item.path)
        if path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
        elif path.is_relative_to(UNIT) and item.get_closest_marker("e2e"):
            raise pytest.UsageError(
                f"{item.nodeid} is marked e2e but lives under tests/unit: move it to tests/e2e"
            )
