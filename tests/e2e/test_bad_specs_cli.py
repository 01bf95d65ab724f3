"""Bad input at scale, as a user meets it. Every spec in ``tests/bad_specs/`` is run as a
user runs it (``python -m sweep run SPEC --results DIR``, and with ``--dry-run``) and must
end in exit status 2 and one line on stderr that names the field its header gives
(``# field:``) and shows the value (``# shows:``), with no traceback, no Ray process
started and nothing written. A ``# setup:`` line prepares the results directory. Then a
few mutated copies of the main job's spec, which must end in exit 0 or 2, never a
traceback (the in-process fuzz of the same validation path, with many more examples, is
in tests/unit/test_spec.py). A process per case: e2e for time; the same corpus refused in
process, in seconds: tests/unit/test_bad_specs.py."""

import copy
import math
import time

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import BAD_SPECS, RAY_PROCESSES, ROOT, bad_spec_header, bad_spec_results, run_watched

DRY_RUN_SECONDS = 15
DRY_RUN_BYTES = 2 * 2**30  # a refused spec never comes near the memory of a measurement


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec_exits_2_with_one_line_naming_the_field(path, dry, tmp_path):
    """The run and the dry run refuse the same specs, through the same preflight; the dry
    run within seconds and a bounded memory (it once grew to 24 GB on spec 53)."""
    h = bad_spec_header(path)
    setup = h.get("setup", "")
    results = bad_spec_results(setup, tmp_path)
    before = sorted(p.name for p in results.rglob("*")) if results.is_dir() else None
    peak: list[int] = []
    t0 = time.time()
    args = ["run", str(path), "--results", str(results), *(["--dry-run"] if dry else [])]
    rc, out, err, started = run_watched(args, tmp_path, peak=peak)
    if dry:
        assert time.time() - t0 <= DRY_RUN_SECONDS and peak[0] <= DRY_RUN_BYTES, (
            time.time() - t0,
            peak,
        )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1, err
    assert h["field"] in lines[0] and h["shows"] in lines[0], lines[0]
    # stdout: nothing, or the held-out line of a spec that got as far as the corpus check
    assert all(ln.startswith("held-out:") for ln in out.splitlines() if ln.strip()), out
    assert not [p for p in started if any(r in p for r in RAY_PROCESSES)], started
    after = sorted(p.name for p in results.rglob("*")) if results.is_dir() else None
    assert after == before  # nothing written


# ----------------------------------------------------------------------------- fuzz

MAIN_JOB = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())


def paths(node, prefix=()) -> list[tuple]:
    """Every key path of the spec's mappings (list elements included)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, (dict, list)):
            out.extend(paths(value, (*prefix, key)))
    return out


PATHS = paths(MAIN_JOB)
# Wrong values, but never absurd sizes (a valid spec with a 2**60 d_model would run).
CHEAP_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["", "x", "linear", "0.5", "nan"]),
    st.integers(-3, 3),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.5, 0.5, 2.5]),
    st.lists(st.integers(0, 2), max_size=2),
    st.just([[0.5]]),
    st.just({"x": 1}),
)


def mutate(spec: dict, where: tuple, value, delete: bool) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for key in where[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return spec


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=st.sampled_from(PATHS), value=CHEAP_VALUES, delete=st.booleans())
@example(where=("optim", "lr"), value=0.5, delete=False)  # still valid: a dry run, exit 0
@example(where=("optim", "lr"), value=math.nan, delete=False)  # was accepted by --dry-run
def test_mutated_main_job_exits_0_or_2_never_a_traceback(tmp_path, where, value, delete):
    f = tmp_path / "mutated.yaml"
    f.write_text(yaml.safe_dump(mutate(MAIN_JOB, where, value, delete)))
    rc, out, err, started = run_watched(["run", str(f), "--dry-run"], tmp_path, timeout=300)
    assert rc in (0, 2), (where, value, delete, err[-3000:])
    assert "Traceback" not in out + err
    if rc == 2:
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert not [p for p in started if any(r in p for r in RAY_PROCESSES)], started
