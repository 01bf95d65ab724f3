"""A real two-node Ray cluster on this machine (a head and a second raylet with its own
CPU), token authentication on, a sweep submitted through the Ray Jobs client."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from support import ROOT, run_sweep

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args, env, check=True):
    ray = str(Path(sys.executable).with_name("ray"))
    return subprocess.run(
        [ray, *args], env=env, capture_output=True, text=True, timeout=180, check=check
    )


@pytest.fixture(scope="module")
def cluster():
    """Two raylets under a temp dir of this test's own, stopped by finding exactly the
    processes that carry it (and their workers): never `ray stop`, which ends every Ray
    on the machine."""
    temp = tempfile.mkdtemp(prefix="ctxmn", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    # Free ports, not Ray's defaults: every node's dashboard agent otherwise listens on
    # 52365, and while any other Ray on the machine holds it, job submission finds "no
    # available agent" (seen when a local sweep ran beside this test).
    port, dash = free_port(), free_port()
    try:
        ray_cli(
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            f"--temp-dir={temp}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--include-dashboard=true",
            "--disable-usage-stats",
            env=env,
        )
        ray_cli(
            "start",
            f"--address=127.0.0.1:{port}",
            "--num-cpus=1",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
            env=env,
        )
        yield env, f"http://127.0.0.1:{dash}"
    finally:
        stop_processes_marked(temp)
        shutil.rmtree(temp, ignore_errors=True)


def stop_processes_marked(marker: str) -> None:
    """Terminate (then kill) the processes whose command line holds ``marker``, with all
    their descendants; this process and its parents are never among them."""
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    procs: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        if p.pid in skip or not any(marker in a for a in p.info["cmdline"] or []):
            continue
        try:
            for q in [p, *p.children(recursive=True)]:
                procs[q.pid] = q
        except psutil.NoSuchProcess:
            continue
    for p in procs.values():
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def submit_smoke(cluster, res: Path, spec: str, *submit_args: str):
    """`ray job submit` of the smoke sweep to the two-node cluster; asserts it finished
    every trial with trials on both nodes (one CPU a node: they had to spread)."""
    env, address = cluster
    r = ray_cli(
        "job", "submit", f"--address={address}", *submit_args, "--",
        sys.executable, "-m", "sweep", "run", spec, "--results", str(res),
        env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 node(s)" in r.stdout and "4/4 done" in r.stdout
    recs = [json.loads(p.read_text()) for p in (res / "smoke").glob("trials/*/record.json")]
    assert len(recs) == 4 and {x["status"] for x in recs} == {"finished"}
    assert len({x["node_id"] for x in recs}) == 2
    assert (res / "smoke" / "report.html").exists()


def test_sweep_through_ray_job_submit_spreads_over_two_nodes(cluster, tmp_path):
    submit_smoke(cluster, tmp_path / "results", str(ROOT / "configs" / "smoke.yaml"))


def test_sweep_through_ray_job_submit_with_working_dir(cluster, tmp_path):
    """Issue 12: `--working-dir` ships the code the way Ray's docs do. Ray unpacks it on
    each node into the session's runtime_resources; on one machine both raylets share
    that directory, so the second node's unpack replaces the one the driver started in."""
    res = tmp_path / "results"
    # the spec path is relative: read from the unpacked working dir
    submit_smoke(cluster, res, "configs/smoke.yaml", f"--working-dir={ROOT}")
    assert (res / "smoke" / "summary.json").exists()


def test_unreachable_address_is_one_line_exit_2(tmp_path):
    t0 = time.time()
    r = run_sweep(
        "run",
        ROOT / "configs" / "smoke.yaml",
        "--results",
        tmp_path,
        "--address",
        "127.0.0.1:1",
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--address" in r.stderr and "127.0.0.1:1" in r.stderr
    assert time.time() - t0 < 30
    assert not (tmp_path / "smoke").exists()


def test_resources_no_node_can_satisfy(tmp_path):
    import yaml

    s = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    s["resources"]["cpus_per_worker"] = 64
    spec = tmp_path / "big.yaml"
    spec.write_text(yaml.safe_dump(s))
    r = run_sweep("run", spec, "--results", tmp_path / "res", timeout=120)
    assert r.returncode == 2 and "resources.cpus_per_worker" in r.stderr and "64" in r.stderr
    assert not (tmp_path / "res").exists()
