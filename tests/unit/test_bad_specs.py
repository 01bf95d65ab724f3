"""Bad input at scale: every spec in ``tests/bad_specs/`` names the field it is wrong in
(``# field:``) and the value it shows (``# shows:``), and the dry run refuses it in
process with exit status 2 and that one line, writing nothing. The same corpus as a user
runs it, a process per case (no traceback, no Ray process, bounded time and memory):
tests/e2e/test_bad_specs_cli.py."""

import pytest
from support import BAD_SPECS, bad_spec_header, bad_spec_results

from sweep import cli


def test_corpus_is_large_and_every_file_names_its_field():
    assert len(BAD_SPECS) >= 30
    for path in BAD_SPECS:
        h = bad_spec_header(path)
        assert h.get("field") and h.get("shows"), path.name
        assert h["field"] in h["shows"] or h["field"] == "spec", path.name


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec_dry_run_exits_2_with_one_line_naming_the_field(path, tmp_path, capsys):
    h = bad_spec_header(path)
    results = bad_spec_results(h.get("setup", ""), tmp_path)
    before = sorted(p.name for p in results.rglob("*")) if results.is_dir() else None
    rc = cli.main(["run", str(path), "--results", str(results), "--dry-run"])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    assert h["field"] in lines[0] and h["shows"] in lines[0], lines[0]
    assert all(ln.startswith("held-out:") for ln in out.splitlines() if ln.strip()), out
    after = sorted(p.name for p in results.rglob("*")) if results.is_dir() else None
    assert after == before  # nothing written
