"""Results stand alone: a results directory copied elsewhere, with the corpus it was
trained on gone, reports, exports and re-documents exactly as the original does (paths
apart), keeps its Schedules figure and its sweep's name."""

import shutil

import yaml
from support import ROOT, fake_records, run_sweep

from sweep.config import spec
from sweep.run import orchestrate


def _sweep_on_a_files_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"doc{i}.txt").write_text(f"document {i}\n" * 50)
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["data"]["corpus"] = f"files:{corpus}"
    raw["seeds"] = [0, 1]
    sw = spec.parse(raw)
    d = tmp_path / "results" / "smoke"
    orchestrate.prepare(sw, d)
    fake_records(d, sw, {"linear-r0.5": -0.05})
    return corpus, d


def test_a_copied_directory_without_its_corpus_reports_and_exports_the_same(tmp_path):
    corpus, d = _sweep_on_a_files_corpus(tmp_path)
    first = run_sweep("report", d, timeout=120)
    assert first.returncode == 0, first.stderr
    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(d, copy)
    shutil.rmtree(corpus)
    again = run_sweep("report", copy, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.replace(str(copy), str(d)) == first.stdout
    for name in ("report.md", "summary.json"):
        a, b = (p / name for p in (d, copy))
        assert b.read_text().replace(str(copy), str(d)) == a.read_text(), name
    # every figure drawn the same, the schedules among them; the title is the sweep's name
    figs = sorted(p.name for p in (d / "figures").glob("*.png"))
    assert "schedules.png" in figs
    for name in figs:
        assert (copy / "figures" / name).read_bytes() == (d / "figures" / name).read_bytes()
    assert "# Context-length schedule sweep: smoke" in (copy / "report.md").read_text()
    # the export needs no corpus either, and writes the same files
    outs = []
    for where in (d, copy):
        out = tmp_path / f"export-{where.name}"
        r = run_sweep("export", where, "--schedule", "linear-r0.5", "--out", out, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(out / "linear-r0.5")
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir()) and "target_steps.csv" in names
    for name in names:
        assert (outs[1] / name).read_bytes() == (outs[0] / name).read_bytes(), name
    # resuming trains, and training needs the corpus: refused up front, naming it
    r = run_sweep("resume", copy, timeout=120)
    assert r.returncode == 2 and "data.corpus" in r.stderr and "does not exist" in r.stderr
