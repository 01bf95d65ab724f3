"""Corpora through ``datasets`` and their tokenizers: load a corpus, split it train /
held-out by a stable hash of each document's name, and tokenize it (bytes, a BPE trained
here, a tokenizer.json or a hub tokenizer).

The embedded default corpus is ``stdlib``: the source files of the running interpreter's
standard library (site-packages excluded), one document per file. Nothing downloads.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from sweep.config.spec import DataSpec, SpecError


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255; 256 is the end-of-document token."""

    eos_id = 256
    vocab_size = 257

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", errors="replace"), dtype=np.uint8).astype(
            np.int32
        )

    def count(self, text: str) -> int:
        return len(text.encode("utf-8", errors="replace"))


EOS_TOKEN = "<|endoftext|>"


class TrainedTokenizer:
    """A ``tokenizers.Tokenizer`` (BPE trained here, a tokenizer.json, or a hub tokenizer)
    behind the same small interface as ByteTokenizer."""

    def __init__(self, tk, eos_token: str = EOS_TOKEN):
        self.tk = tk
        eos = tk.token_to_id(eos_token)
        if eos is None:
            raise SpecError("data.tokenizer", eos_token, "the tokenizer has no such EOS token")
        self.eos_id = eos
        self.vocab_size = tk.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tk.encode(text).ids, dtype=np.int32)

    def count(self, text: str) -> int:
        return len(self.tk.encode(text).ids)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ctx-sweep" / "tokenizers"


def train_bpe(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (the train split only), cached by a hash of
    the texts and the vocabulary size, so every trial of a sweep shares one tokenizer."""
    h = hashlib.sha256(str(vocab_size).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8", errors="replace")).digest())
    path = cache_dir() / f"bpe-{vocab_size}-{h.hexdigest()[:20]}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tk.save(str(tmp))
    os.replace(tmp, path)  # concurrent trials may race here; both write the same tokenizer
    return tk


def tokenizer_for(spec: DataSpec, train_texts: list[str]) -> ByteTokenizer | TrainedTokenizer:
    """``byte`` (default), ``bpe`` (trained on the train split, cached), a local
    ``tokenizer.json`` path, or ``hf:NAME`` (a hub tokenizer, downloaded once)."""
    if spec.tokenizer == "byte":
        return ByteTokenizer()
    if spec.tokenizer == "bpe":
        return TrainedTokenizer(train_bpe(train_texts, spec.vocab_size))
    if spec.tokenizer.startswith("hf:"):
        # deferred: transformers takes seconds to import and only a hub tokenizer needs it
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(spec.tokenizer[3:])
        return TrainedTokenizer(hf.backend_tokenizer, hf.eos_token or EOS_TOKEN)
    return TrainedTokenizer(Tokenizer.from_file(spec.tokenizer))


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(
        p
        for p in root.rglob("*.py")
        if "site-packages" not in p.parts and "dist-packages" not in p.parts
    )


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


RECORD_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _records(ds: datasets.Dataset, spec: DataSpec, where: str) -> tuple[list, list]:
    """(names, texts) of a record dataset, checked for the text field and filtered to
    SlimPajama's ``meta.redpajama_set_name`` when ``data.sets`` is given."""
    if spec.text_field not in ds.column_names:
        raise SpecError(
            "data.text_field",
            spec.text_field,
            f"records of {where} have no such field (fields: {ds.column_names})",
        )
    texts = ds[spec.text_field]
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise SpecError(
            "data.text_field", spec.text_field, f"record {bad} of {where} has no text in it"
        )
    names = [f"{where}#{i}" for i in range(len(texts))]
    if spec.sets:
        metas = ds["meta"] if "meta" in ds.column_names else [None] * len(texts)
        keep = [
            i
            for i, m in enumerate(metas)
            if isinstance(m, dict) and m.get("redpajama_set_name") in spec.sets
        ]
        names, texts = [names[i] for i in keep], [texts[i] for i in keep]
    return names, texts


def load_corpus(spec: DataSpec) -> datasets.Dataset:
    """The whole corpus as a ``datasets.Dataset`` with columns ``name`` and ``text``:
    ``stdlib`` (this interpreter's standard library, one document per file),
    ``files:PATH`` (a file or folder of text files, or of jsonl / parquet records), or
    ``hf:NAME`` (the first ``data.max_documents`` records streamed from the hub)."""
    datasets.disable_progress_bars()  # corpus loads are seconds; their bars are noise
    names: list[str] = []
    texts: list[str] = []
    if spec.corpus == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        for p in _stdlib_files():
            names.append(str(p.relative_to(root)))
            texts.append(p.read_text(encoding="utf-8", errors="replace"))
    elif spec.corpus.startswith("files:"):
        root = Path(spec.corpus[len("files:") :])
        if not root.exists():
            raise SpecError("data.corpus", spec.corpus, "path does not exist")
        for p in _text_files(root):
            rel = str(p.relative_to(root)) if root.is_dir() else p.name
            if p.suffix in RECORD_SUFFIXES:
                ds = datasets.load_dataset(
                    RECORD_SUFFIXES[p.suffix], data_files=str(p), split="train"
                )
                n, t = _records(ds, spec, rel)
                names += n
                texts += t
            else:
                names.append(rel)
                texts.append(p.read_text(encoding="utf-8", errors="replace"))
    elif spec.corpus.startswith("hf:"):
        name = spec.corpus[len("hf:") :]
        stream = datasets.load_dataset(name, split="train", streaming=True)
        ds = datasets.Dataset.from_list(list(stream.take(spec.max_documents)))
        names, texts = _records(ds, spec, name)
    else:
        raise SpecError("data.corpus", spec.corpus, "unsupported corpus")
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if not keep:
        raise SpecError("data.corpus", spec.corpus, "holds no text")
    return datasets.Dataset.from_dict(
        {"name": [names[i] for i in keep], "text": [texts[i] for i in keep]}
    )


def is_held_out(name: str, fraction: float) -> bool:
    """Stable split: the same document is held out on every machine and every run."""
    return unit_hash(name) < fraction


def unit_hash(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


@dataclass
class Split:
    train: datasets.Dataset
    held_out: datasets.Dataset
    held_out_removed: int = 0  # held-out documents dropped for overlapping the train split
    held_out_exact: int = 0
    held_out_near: int = 0


def split(corpus: datasets.Dataset, fraction: float) -> Split:
    held = corpus.filter(lambda ex: is_held_out(ex["name"], fraction))
    train = corpus.filter(lambda ex: not is_held_out(ex["name"], fraction))
    return Split(train=train, held_out=held)
