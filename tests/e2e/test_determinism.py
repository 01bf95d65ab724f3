"""The same trial run twice on the CPU gives byte-identical results: the curve, its
per-sequence values and the training history (all but its wall-clock fields)."""

import json

import pytest
from support import ROOT, run_sweep

pytestmark = pytest.mark.e2e
TIMING = ("tokens_per_s",)


def test_same_trial_twice_is_byte_identical(tmp_path):
    recs = []
    for name in ("a", "b"):
        r = run_sweep(
            "trial", ROOT / "configs" / "smoke.yaml", "--trial", "linear-r0.5-s0",
            "--results", tmp_path / name, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        rec = tmp_path / name / "smoke" / "trials" / "linear-r0.5-s0" / "record.json"
        recs.append(json.loads(rec.read_text()))
    a, b = recs
    for key in ("curve", "curve_se", "per_sequence", "evals", "exposure", "ctx_gain_curve"):
        assert json.dumps(a[key]) == json.dumps(b[key]), key
    strip = [[{k: v for k, v in h.items() if k not in TIMING} for h in r["history"]] for r in recs]
    assert json.dumps(strip[0]) == json.dumps(strip[1])
    assert len(a["history"]) >= 3 and a["evals"]  # there was something to compare
