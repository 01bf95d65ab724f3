"""What many tests share: the repository root and the ``sweep`` command line, run in a
subprocess exactly as a user runs it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor")


def run_sweep(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """``python -m sweep ARGS`` with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "sweep", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def start_sweep(spec: Path, results: Path) -> subprocess.Popen:
    """``sweep run SPEC --results RESULTS`` in the background, in a session of its own so
    that ``kill_sweep`` can end it and everything it starts."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", str(spec), "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_sweep(proc: subprocess.Popen) -> None:
    """SIGKILL a sweep from ``start_sweep`` and every process it started, and wait until
    all are gone. The process group alone is not enough: Ray puts its workers in process
    groups of their own, and a worker that outlived its driver by a moment could finish a
    trial and write its record after the test's snapshot."""
    tree = [psutil.Process(proc.pid)]
    try:
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    os.killpg(proc.pid, signal.SIGKILL)
    for p in tree:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"processes outlived SIGKILL: {alive}"


def tiny_proxy(n_layers: int = 1, seed: int = 0, vocab: int = 64, **config):
    """A seeded btlm-proxy of width 32 and 4 heads (``config``: more BtlmProxyConfig
    fields, e.g. ``attn_window`` or ``attention``), for tests that need a real model."""
    import torch

    from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

    torch.manual_seed(seed)
    return BtlmProxyForCausalLM(
        BtlmProxyConfig(
            vocab_size=vocab, d_model=32, n_layers=n_layers, n_heads=4, mup_base_width=32,
            **config,
        )
    )  # fmt: skip


def smoke_spec(controls=("short_only",), seeds=(0,)):
    """configs/smoke.yaml with these controls and seeds."""
    import yaml

    from sweep.config import spec

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["controls"] = list(controls)
    raw["seeds"] = list(seeds)
    return spec.parse(raw)


def calibration_ladder(**calibrate):
    """configs/smoke.yaml with the short-only control and a ``calibrate:`` section of 3
    rungs, tokens doubling each rung, 60 minutes (``calibrate``: more or other fields)."""
    import yaml

    from sweep.config import spec

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"]["controls"] = ["short_only"]
    raw["calibrate"] = {"rungs": 3, "token_factor": 2, "minutes": 60, **calibrate}
    return spec.parse(raw)


def fake_records(
    d: Path,
    spec,
    far_shift: dict | None = None,
    *,
    near_shift: dict | None = None,
    id_shift: dict | None = None,
    control_far: float = 0.1,
    own_rise: float | None = 0.1,
    gain: dict | None = None,
    context_use: float = 0.05,
    n_seq: int = 32,
    noise: float = 0.05,
    own_noise: float = 0.02,
    seed_noise: float = 0.0,
    gain_noise: float = 0.01,
    noise_by_name: bool = False,
    base=None,
    trials=None,
    fields=None,
    flops: tuple[float, float] = (1e9, 0.9e9),
    wall_s: float = 1.0,
) -> list[str]:
    """Finished records of ``spec``'s trials (or of ``trials``) with known curves, written as
    trials write them; returns their trial ids.

    Every trial has one shared base, 3 nats plus ``noise`` per sequence and position (the
    same eval windows for all), plus noise of its own (``own_noise``) and a seed offset
    (``seed_noise``). On top: ``far_shift[label]`` nats past l_max, ``near_shift[label]``
    on (l_max/2, l_max] and ``id_shift[label]`` on [0, l_max). A control (a schedule whose
    longest length is under l_max, e.g. short_only) is worse by ``control_far`` past l_max
    unless ``far_shift`` names it, and by ``own_rise`` from its own length to l_max.
    ctx_gain is ``gain[label]`` (a control's -0.05 unless named) with ``gain_noise``;
    context_use is ``context_use`` for every schedule. ``own_rise=None``: records as
    trials wrote them before the shape metrics (no own length, position bins or
    context_use). The per-trial draws follow the base's from one generator, or with
    ``noise_by_name`` start from a generator seeded by the spec's name (a study's arms:
    the same trial in two arms gets different curves). ``base``: an (n, E) array of
    per-sequence losses in place of the 3-nat one. ``flops``: the constant schedule's and
    every other's. ``fields(trial, losses)``: more fields for a trial's record, written
    over the ones above (the probes and histories a trial records; None: left out)."""
    import zlib

    import numpy as np

    from sweep.analysis import metrics
    from sweep.analysis.records import TrialRecord, write_record

    rng = np.random.default_rng(0)
    L, E = spec.schedules.l_max, spec.eval.length(spec.schedules.l_max)
    if base is None:
        base = 3.0 + noise * rng.standard_normal((n_seq, E))
    n_seq = len(base)
    if noise_by_name:
        rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    trials = list(spec.trials()) if trials is None else trials
    own_of = {t.schedule.label: t.plan().longest for t in trials}
    edges = metrics.position_edges(E, L, (L, spec.schedules.l_min, *own_of.values()))
    far_shift, near_shift, id_shift = far_shift or {}, near_shift or {}, id_shift or {}
    gain = gain or {}
    docs = [f"doc{i}.py" for i in range(n_seq)]
    for t in trials:
        label, own = t.schedule.label, own_of[t.schedule.label]
        control = own < L
        losses = base + own_noise * rng.standard_normal((n_seq, E))
        losses += seed_noise * rng.standard_normal()
        losses[:, L:] += far_shift.get(label, control_far if control else 0.0)
        losses[:, L // 2 : L] += near_shift.get(label, 0.0)
        losses[:, :L] += id_shift.get(label, 0.0)
        if control and own_rise is not None:
            losses[:, own:L] += own_rise
        g = gain.get(label, -0.05 if control else 0.0) + gain_noise * rng.standard_normal(n_seq)
        per_sequence = {**metrics.per_sequence(losses, L), "ctx_gain": g.tolist()}
        shape = {}
        if own_rise is not None:
            use = context_use + 0.01 * rng.standard_normal(n_seq)
            per_sequence["context_use"] = use.tolist()
            bins = {"edges": edges, "values": metrics.bin_means(losses, edges).tolist()}
            shape = {"own_length": own, "position_bins": bins}
        record = dict(
            tokens_trained=spec.budget.tokens,
            tokens_by_length={str(own): spec.budget.tokens},
            wall_s=wall_s,
            curve=losses.mean(axis=0).tolist(),
            per_sequence=per_sequence,
            eval_windows={"doc": docs, "source": ["natural"] * n_seq, "offset": [0] * n_seq},
            metrics={"flops": flops[0] if t.schedule.shape == "constant" else flops[1]},
            **shape,
        )
        record |= fields(t, losses) if fields else {}
        write_record(d, TrialRecord.of(t, "finished", **record))
    return [t.trial_id for t in trials]


def selection_stage(d: Path):
    """A sweep in ``d`` whose records (known curves, seeds 0 and 1) pick linear-r0.5 by 0.1
    nats: an effect the real proxy at smoke size does not have. Returns its summary."""
    from sweep.analysis import aggregate
    from sweep.run import orchestrate

    orchestrate.prepare(smoke_spec(seeds=(0, 1)), d)
    fake_records(d, smoke_spec(seeds=(0, 1)), {"linear-r0.5": -0.1})
    summary = aggregate.aggregate(d)
    assert [p["schedule"] for p in summary.picks] == ["linear-r0.5"]
    return summary


BAD_SPECS = sorted((ROOT / "tests" / "bad_specs").glob("*.yaml"))


def bad_spec_header(path: Path) -> dict:
    """The ``# key: value`` lines at the top of a file of tests/bad_specs."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(": ")
        out[key] = value
    return out


def bad_spec_results(setup: str, tmp_path: Path) -> Path:
    """The results directory a bad spec's ``# setup:`` line asks for."""
    import yaml

    root = tmp_path / "results"
    if setup == "results-under-a-file":
        root.parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "a-file").write_text("not a directory\n")
        return tmp_path / "a-file" / "results"
    if setup == "results-hold-other-spec":  # a sweep of the same name, another spec
        other = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
        other["name"] = "bad"
        other["seeds"] = [7]
        (root / "bad").mkdir(parents=True)
        (root / "bad" / "spec.yaml").write_text(yaml.safe_dump(other))
    return root


def row(summary, name: str) -> dict:
    """The ranking row of schedule ``name``."""
    return next(r for r in summary.schedules if r["schedule"] == name)


def run_watched(
    args: list[str], cwd: Path, timeout: float = 120, peak: list | None = None
) -> tuple[int, str, str, set]:
    """``python -m sweep ARGS``; returns exit status, stdout, stderr and the names of every
    process it started (sampled every 20 ms while it ran); ``peak`` gets the largest
    resident memory of the command and its children together, in bytes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    watched = psutil.Process(proc.pid)
    t0 = time.time()
    top = 0
    while proc.poll() is None and time.time() - t0 < timeout:
        try:
            rss = watched.memory_info().rss
            for child in watched.children(recursive=True):
                seen.add(" ".join(child.cmdline()[:2]) or child.name())
                rss += child.memory_info().rss
            top = max(top, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    if peak is not None:
        peak.append(top)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return proc.returncode, out, err, seen
