"""Corpora through datasets: local text, jsonl and parquet in SlimPajama's record shape,
the set filter, and the clear errors. Nothing downloads."""

import json
from pathlib import Path

import datasets
import pytest
import yaml
from support import ROOT, run_sweep

from sweep.config.spec import DataSpec, SpecError, load
from sweep.train import data

SETS = ["RedPajamaGithub", "RedPajamaBook", "RedPajamaArXiv"]


def slimpajama_jsonl(path: Path, n: int = 60) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            text = f"document {i} " + "lorem ipsum dolor sit amet " * (20 + i)
            fh.write(json.dumps({"text": text, "meta": {"redpajama_set_name": SETS[i % 3]}}))
            fh.write("\n")
    return path


def test_jsonl_records_in_slimpajama_shape(tmp_path):
    f = slimpajama_jsonl(tmp_path / "part-0.jsonl")
    ds = data.load_corpus(DataSpec(corpus=f"files:{f}"))
    assert len(ds) == 60 and ds["name"][0] == "part-0.jsonl#0"
    only = data.load_corpus(DataSpec(corpus=f"files:{f}", sets=("RedPajamaBook",)))
    assert len(only) == 20 and all("document" in t for t in only["text"])


def test_parquet_and_text_folder(tmp_path):
    f = slimpajama_jsonl(tmp_path / "src.jsonl")
    folder = tmp_path / "corpus"
    folder.mkdir()
    datasets.load_dataset("json", data_files=str(f), split="train").to_parquet(
        str(folder / "a.parquet")
    )
    (folder / "notes.txt").write_text("a plain text document\n" * 10)
    ds = data.load_corpus(DataSpec(corpus=f"files:{folder}"))
    assert len(ds) == 61 and "notes.txt" in ds["name"]


def test_record_without_text_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"content": "x"}) + "\n")
    with pytest.raises(SpecError) as e:
        data.load_corpus(DataSpec(corpus=f"files:{f}"))
    assert e.value.field == "data.text_field"


def run_spec(tmp_path, **data_fields):
    s = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    s["data"].update(data_fields)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(s))
    return run_sweep("run", spec, "--results", tmp_path / "res", timeout=120)


@pytest.mark.parametrize("case", ["missing", "empty", "no-text-field"])
def test_bad_corpus_exits_2_before_anything(tmp_path, case):
    if case == "missing":
        r = run_spec(tmp_path, corpus=f"files:{tmp_path / 'nowhere'}")
        field = "data.corpus"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "blank.txt").write_text("   \n")
        r = run_spec(tmp_path, corpus=f"files:{tmp_path / 'empty'}")
        field = "data.corpus"
    else:
        (tmp_path / "r.jsonl").write_text(json.dumps({"body": "text"}) + "\n")
        r = run_spec(tmp_path, corpus=f"files:{tmp_path / 'r.jsonl'}")
        field = "data.text_field"
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and field in r.stderr
    assert not (tmp_path / "res").exists()


def test_spec_round_trip_with_sets():
    s = load(ROOT / "configs" / "smoke.yaml")
    from sweep.config.spec import parse

    assert parse(s.to_dict()) == s


def test_bpe_trained_on_train_split_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = slimpajama_jsonl(tmp_path / "p.jsonl", n=90)
    spec = DataSpec(corpus=f"files:{f}", tokenizer="bpe", vocab_size=300)
    parts = data.split(data.load_corpus(spec), spec.held_out_fraction)
    tok = data.tokenizer_for(spec, parts.train["text"])
    cached = list((tmp_path / "cache").rglob("bpe-300-*.json"))
    assert len(cached) == 1 and tok.vocab_size == 300
    text = parts.held_out["text"][0]
    ids = tok.encode(text)
    assert len(ids) < len(text.encode()) / 2  # merges learned: far fewer tokens than bytes
    assert tok.tk.decode(ids.tolist()) == text and tok.eos_id not in ids
    again = data.tokenizer_for(spec, parts.train["text"])
    assert list((tmp_path / "cache").rglob("bpe-*.json")) == cached  # reused, not retrained
    assert again.encode(text).tolist() == ids.tolist()
    stream, _ = data.pack_train_stream(parts.train, tok, 5000, seed=0)
    assert (stream == tok.eos_id).sum() >= 1 and stream.max() < 300


def test_bad_tokenizer_is_a_spec_error(tmp_path):
    r = run_spec(tmp_path, tokenizer="sentencepiece")
    assert r.returncode == 2 and "data.tokenizer" in r.stderr
