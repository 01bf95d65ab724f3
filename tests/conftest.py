import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def root() -> Path:
    return ROOT


def sweep_cmd() -> list[str]:
    return [sys.executable, "-m", "sweep"]
