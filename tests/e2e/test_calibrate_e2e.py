"""`sweep calibrate` end to end: real rungs through Ray Tune at toy size, resumed after a
driver kill (the ladder's logic on fake rungs: tests/unit/test_calibrate.py)."""

import json
import subprocess
import sys
import time

import yaml
from support import calibration_ladder, kill_sweep, run_sweep


def test_calibrate_end_to_end_resumes_after_a_driver_kill(tmp_path):
    """Real rungs through Ray Tune at toy size: the driver is killed once rung 0 is
    measured; the rerun keeps rung 0's records byte for byte and trains rung 1 only."""
    sw = calibration_ladder(rungs=2)
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(sw.to_dict()))
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", "calibrate", str(path), "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    measured = results / "smoke-calibrate" / "rung0" / "rung.json"
    deadline = time.time() + 600
    while not measured.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    kill_sweep(proc)
    assert measured.exists()
    rung0 = {p: p.read_bytes() for p in measured.parent.glob("trials/*/record.json")}
    assert len(rung0) == 4
    r = run_sweep("calibrate", path, "--results", results, timeout=900)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert {p: p.read_bytes() for p in measured.parent.glob("trials/*/record.json")} == rung0
    assert "rung 0: 0.04M tokens" in r.stdout
    assert "sweep smoke-rung0" not in r.stdout  # rung 0 was not run again
    result = json.loads((results / "smoke-calibrate" / "calibration.json").read_text())
    if result["reached"] is None:  # at toy size it may well not see it: then it projects
        assert len(result["rungs"]) == 2 and "projection" in result
        assert "no rung sees extrapolation" in r.stdout
    else:
        assert (results / "smoke-calibrate" / "calibrated.yaml").is_file()
