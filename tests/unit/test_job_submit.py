"""`ray job submit --working-dir` without a cluster (issue 12): the driver's relative
--results is refused, and the driver survives its working directory being unpacked
again under it. The job itself runs in test_multinode.py."""

import json
import os
import shutil
from pathlib import Path

import pytest
from support import ROOT, run_sweep

from sweep.run import orchestrate

JOB = {"runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}}


def test_relative_results_in_a_working_dir_job_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(JOB)}
    r = run_sweep("run", ROOT / "configs" / "smoke.yaml", env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--results" in r.stderr and "absolute" in r.stderr and "_ray_pkg_" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "job, refused",
    [
        (None, False),
        ({"runtime_env": {}}, False),
        ({"runtime_env": {"working_dir": "local:///srv/ctx-sweep"}}, False),
        ({"runtime_env": None, "metadata": {}}, False),
        (JOB, True),
        ({"runtime_env": {"working_dir": "s3://bucket/code.zip"}}, True),
    ],
)
def test_only_an_unpacked_working_dir_refuses_relative_results(monkeypatch, job, refused):
    from sweep.config import spec

    sw = spec.load(ROOT / "configs" / "smoke.yaml")
    if job is None:
        monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    else:
        monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert orchestrate.sweep_dir_for(sw, ROOT / "results") == ROOT / "results" / "smoke"
    if refused:
        with pytest.raises(spec.SpecError, match="--results"):
            orchestrate.sweep_dir_for(sw, "results")
    else:
        assert orchestrate.sweep_dir_for(sw, "results") == Path.cwd() / "results" / "smoke"


def test_working_directory_survives_its_start_being_unpacked_again(tmp_path, monkeypatch):
    """What Ray's agent does to the driver's directory: delete it, unpack anew at the
    same path. Inside the block os.getcwd() (Tune's os.path.relpath) still works, and
    afterwards the process is in the new directory."""
    pkg, results = tmp_path / "_ray_pkg_x", tmp_path / "results"
    pkg.mkdir()
    results.mkdir()
    monkeypatch.chdir(pkg)
    shutil.rmtree(pkg)  # without the block: the FileNotFoundError
    with pytest.raises(FileNotFoundError):
        os.path.relpath("a/b", start="a")
    pkg.mkdir()
    monkeypatch.chdir(pkg)
    with orchestrate.working_directory(results):
        shutil.rmtree(pkg)
        pkg.mkdir()
        assert os.getcwd() == str(results)
        assert os.path.relpath("a/b", start="a") == "b"
    assert os.getcwd() == str(pkg)
    (pkg / "x").touch()
    assert os.path.exists("x")
