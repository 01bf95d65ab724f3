"""The fast tier's models are tiny, so a second CPU thread buys them no speed; on a shared
2-core machine it costs much: while the other core is busy, torch's second OpenMP thread
spin-waits at every parallel region (measured on the model tests with the other core
busy: 1.7x the wall time, 2.2x the CPU), and each ``python -m sweep`` the tests start
spends 0.3 s more CPU starting thread pools (1.0 s of CPU, not 0.7 s). So one thread, in this
process and in the commands the tests start, unless the caller chose (OMP_NUM_THREADS
set). Per test, because libraries set their own count (accelerate, behind the Hugging
Face Trainer, sets the cores' count when the variable is unset; a trial sets
``resources.cpus_per_worker``). The e2e tier keeps its own."""

import os
import sys
from collections.abc import Iterator

import pytest

CHOSEN = "OMP_NUM_THREADS" in os.environ


@pytest.fixture(scope="session", autouse=True)
def _one_thread_in_commands() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        if not CHOSEN:
            mp.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(autouse=True)
def _one_torch_thread(_one_thread_in_commands: None) -> None:
    torch = sys.modules.get("torch")  # not imported here: tests without torch stay light
    if not CHOSEN and torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
