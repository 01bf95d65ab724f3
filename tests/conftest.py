import os

from hypothesis import settings

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# CI draws the same property-test examples every run, so a pass or a failure reproduces;
# `HYPOTHESIS_PROFILE=explore pytest ...` draws fresh ones to hunt for new failures (a
# failure found that way becomes an @example or a regression test).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
