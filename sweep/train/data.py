"""Corpora through ``datasets``: load, split train/held-out by a stable hash of each
document's name, tokenize, pack training rows and cut per-position eval sequences.

The embedded default corpus is ``stdlib``: the source files of the running interpreter's
standard library (site-packages excluded), one document per file. Nothing downloads.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from sweep.config.spec import MIN_HELD_OUT, DataSpec, EvalSpec, SpecError


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


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ctx-sweep" / "tokenizers"


def train_bpe(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (the train split only), cached by a hash of
    the texts and the vocabulary size, so every trial of a sweep shares one tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    h = hashlib.sha256(str(vocab_size).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8", errors="replace")).digest())
    path = _cache_dir() / f"bpe-{vocab_size}-{h.hexdigest()[:20]}.json"
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
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(spec.tokenizer[3:])
        return TrainedTokenizer(hf.backend_tokenizer, hf.eos_token or EOS_TOKEN)
    from tokenizers import Tokenizer

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
    return _unit_hash(name) < fraction


def _unit_hash(key: str) -> float:
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


def load_split(spec: DataSpec) -> Split:
    """The corpus split train / held-out, with held-out documents that share long spans
    with training documents (verbatim or near-duplicate) removed: memorised text must not
    pass for the use of context."""
    parts = split(load_corpus(spec), spec.held_out_fraction)
    held, overlap = clean_held_out(parts.train, parts.held_out)
    return Split(parts.train, held, overlap.removed, overlap.exact, overlap.near)


@dataclass(frozen=True)
class Repeats:
    """Long-range structure mixed into the corpus (``data.repeat_share``): in a share of
    the documents, chosen by a hash of their name, spans of ``span`` tokens are replaced
    with a copy of the span ``d`` tokens earlier, d log-uniform in [span, max_distance].
    A model can only lower its loss on those spans by retrieving from d tokens back."""

    share: float
    span: int
    max_distance: int

    @classmethod
    def of(cls, spec: DataSpec, eval_length: int) -> Repeats:
        return cls(spec.repeat_share, spec.repeat_span, spec.repeat_max_distance or eval_length)

    def windows(self, count: int) -> int:
        """How many of ``count`` eval windows come from documents with copies."""
        return round(count * self.share)

    def applies(self, name: str) -> bool:
        return self.share > 0 and _unit_hash(f"repeat:{name}") < self.share

    def apply(self, ids: np.ndarray, name: str) -> np.ndarray:
        """The document with copies; deterministic in its name, so train and eval agree
        across trials and machines."""
        rng = np.random.default_rng(int(_unit_hash(f"repeat-rng:{name}") * 2**63))
        out = ids.copy()
        k = self.span
        for start in range(k, len(out) - k + 1, k):
            if rng.random() < 0.5:
                hi = min(self.max_distance, start)
                d = round(math.exp(rng.uniform(math.log(k), math.log(hi)))) if hi > k else k
                out[start : start + k] = out[start - d : start - d + k]
        return out


def _encode(tok, text: str, name: str, repeats: Repeats | None) -> np.ndarray:
    ids = tok.encode(text)
    return repeats.apply(ids, name) if repeats and repeats.applies(name) else ids


def pack_train_stream(
    train: datasets.Dataset,
    tok: ByteTokenizer,
    n_tokens: int,
    seed: int,
    repeats: Repeats | None = None,
) -> tuple[np.ndarray, int]:
    """Documents in a seeded order, EOS between them, until ``n_tokens`` are there.
    Returns the stream and how many passes over the train split it took."""
    order = np.random.default_rng(seed).permutation(len(train))
    texts, names = train["text"], train["name"]
    chunks, have, passes = [], 0, 1
    i = 0
    while have < n_tokens:
        if i == len(order):
            i, passes = 0, passes + 1
        j = int(order[i])
        ids = _encode(tok, texts[j], names[j], repeats)
        chunks.append(ids)
        chunks.append(np.array([tok.eos_id], dtype=np.int32))
        have += len(ids) + 1
        i += 1
    return np.concatenate(chunks)[:n_tokens], passes


@dataclass
class EvalSet:
    """Eval windows of E + 1 tokens, each at a seeded random offset inside one held-out
    document, so that position p means "p tokens of context" and not "p tokens into a
    file". ``source`` is ``natural`` or ``repeat`` (a document with copied spans)."""

    tokens: np.ndarray
    source: list[str]
    doc: list[str]
    offset: list[int]

    def __len__(self) -> int:
        return len(self.tokens)

    def natural(self) -> np.ndarray:
        return np.array([s == "natural" for s in self.source], dtype=bool)


def _windows(
    docs: list[tuple[str, np.ndarray]], length: int, count: int, seed: int, source: str
) -> list[tuple[str, str, int, np.ndarray]]:
    """Up to ``count`` windows of ``length`` tokens: a document of n tokens holds
    n // length disjoint slots, visited in a seeded random order, each window at a random
    offset inside its slot (so a document's first window may start anywhere in it);
    every document's first window comes before any document's second, so windows come
    from as many different documents as possible."""
    order = sorted(docs, key=lambda d: hashlib.sha256(f"{seed}:{d[0]}".encode()).digest())
    plans = []
    for name, ids in order:
        slots = len(ids) // length
        rng = np.random.default_rng(int(_unit_hash(f"{seed}:{name}") * 2**63))
        size = len(ids) // slots
        offs = [
            int(s) * size + int(rng.integers(0, size - length + 1)) for s in rng.permutation(slots)
        ]
        plans.append((name, ids, offs))
    out = []
    for k in range(max((len(p[2]) for p in plans), default=0)):
        for name, ids, offs in plans:
            if k < len(offs):
                out.append((source, name, offs[k], ids[offs[k] : offs[k] + length]))
                if len(out) == count:
                    return out
    return out


def eval_windows(
    held_out: datasets.Dataset,
    tok: ByteTokenizer,
    length: int,
    count: int,
    seed: int = 0,
    repeats: Repeats | None = None,
) -> EvalSet:
    """``count`` eval windows of ``length + 1`` tokens from the held-out documents, the
    same for every trial of a sweep: natural documents, and a ``repeats.share`` of them
    from documents with copied spans, interleaved so that any prefix of the set (the
    intermediate evaluations use one) holds both in proportion."""
    names, texts = held_out["name"], held_out["text"]
    by_source: dict[str, list] = {"natural": [], "repeat": []}
    for name, text in zip(names, texts):
        rep = repeats is not None and repeats.applies(name)
        ids = _encode(tok, text, name, repeats)
        if len(ids) >= length + 1:
            by_source["repeat" if rep else "natural"].append((name, ids))
    n_rep = repeats.windows(count) if repeats else 0
    want = {"natural": count - n_rep, "repeat": n_rep}
    picked = {
        src: _windows(docs, length + 1, want[src], seed, src) for src, docs in by_source.items()
    }
    merged = sorted(
        (i / max(1, len(ws)), src, w) for src, ws in picked.items() for i, w in enumerate(ws)
    )
    rows = [w for _, _, w in merged]
    if not rows:
        return EvalSet(np.zeros((0, length + 1), dtype=np.int32), [], [], [])
    return EvalSet(
        np.stack([w[3] for w in rows]).astype(np.int32),
        [w[0] for w in rows],
        [w[1] for w in rows],
        [w[2] for w in rows],
    )


def check_eval_feasible(spec: DataSpec, ev: EvalSpec, l_max: int) -> Split:
    """Raises SpecError (before any training starts) when fewer than MIN_HELD_OUT held-out
    documents survive overlap removal, or when they cannot hold ``eval.sequences`` windows
    of E + 1 tokens (in each source, natural and repeat, in proportion). Returns the split
    it checked."""
    length, count = ev.length(l_max), ev.sequences
    parts = load_split(spec)
    n_held = len(parts.held_out)
    if n_held < MIN_HELD_OUT:
        total = n_held + parts.held_out_removed + len(parts.train)
        raise SpecError(
            "data.held_out_fraction",
            spec.held_out_fraction,
            f"leaves {n_held} held-out document(s) of the corpus's {total} (after removing "
            f"{parts.held_out_removed} that overlap the train split); intervals over "
            f"documents need at least {MIN_HELD_OUT}: raise data.held_out_fraction or use "
            "a larger corpus",
        )
    tok = tokenizer_for(spec, parts.train["text"])  # trains and caches a BPE once, here
    repeats = Repeats.of(spec, length)
    got = eval_windows(parts.held_out, tok, length, count, ev.seed, repeats)
    if len(got) == 0:
        longest = max((tok.count(t) for t in parts.held_out["text"]), default=0)
        raise SpecError(
            "eval.multiple",
            ev.multiple,
            f"E={length} tokens is longer than every held-out document "
            f"(the longest has {longest} tokens)",
        )
    have = {s: got.source.count(s) for s in ("natural", "repeat")}
    if len(got) < count or have["repeat"] < repeats.windows(count):
        raise SpecError(
            "eval.sequences",
            count,
            f"the held-out documents hold only {have['natural']} natural and "
            f"{have['repeat']} repeat windows of E+1={length + 1} tokens",
        )
    return parts


class Batcher:
    """Cuts consecutive training rows out of the packed stream; rows overlap by one token
    so each row's targets are its inputs shifted by one. Pads the tail row with -100."""

    def __init__(self, stream: np.ndarray, position: int = 0):
        self.stream = stream
        self.position = position

    def state(self) -> int:
        return self.position

    def load(self, state: int) -> None:
        self.position = state

    def next(self, length: int, rows: int, tail: int) -> tuple[np.ndarray, np.ndarray]:
        return cut_rows(self._take, length, rows, tail)

    @staticmethod
    def doc_ids(x: np.ndarray, eos_id: int) -> np.ndarray:
        """Document index of every position of every row: a new document starts after
        each EOS (the EOS itself closes the document before it)."""
        eos = x == eos_id
        return np.cumsum(eos, axis=1) - eos

    def _take(self, n: int) -> np.ndarray:
        idx = (self.position + np.arange(n)) % len(self.stream)
        self.position += n - 1  # the next row starts at this one's last target
        return self.stream[idx]


def cut_rows(
    take: Callable[[int], np.ndarray], length: int, rows: int, tail: int
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows of ``length`` tokens plus, when ``tail`` > 0, one row of ``tail``
    tokens padded with -100 targets; ``take(n)`` gives a row's n = width + 1 tokens."""
    n = rows + (1 if tail else 0)
    x = np.zeros((n, length), dtype=np.int64)
    y = np.full((n, length), -100, dtype=np.int64)
    for r in range(n):
        width = length if r < rows else tail
        seg = take(width + 1)
        x[r, :width] = seg[:-1]
        y[r, :width] = seg[1:]
    return x, y


class DocRows:
    """``doc_buckets`` rows (after Dataset Decomposition, Pouransari et al. 2024): every
    row, of ``length`` or ``tail`` tokens plus its shifted target, is cut from a single
    document (its tokens and the EOS that closes it), so nothing is packed across a
    boundary. Documents are read in the stream's (seeded) order, consecutive rows of a
    document overlapping by one token as in ``Batcher``. A document's remainder too short
    for the current row length goes to a bucket of pieces grouped by length; a row of L
    first takes the shortest bucketed piece that holds L + 1 tokens (so buckets become
    eligible when the schedule comes down to their length, and tail rows use them), else
    reads on. Tokens per step are those of the plan, exactly; what stays in the buckets
    is not trained (``passes`` counts how often the stream was read through)."""

    def __init__(self, stream: np.ndarray, eos_id: int):
        self.stream = stream
        ends = np.flatnonzero(stream == eos_id) + 1  # each document ends after its EOS
        self.starts = np.concatenate([[0], ends[ends < len(stream)]]).astype(np.int64)
        self.ends = np.concatenate([ends, [len(stream)]])[: len(self.starts)].astype(np.int64)
        self.doc, self.cursor, self.passes = 0, 0, 1
        self.pieces: list[tuple[int, int]] = []  # (length, start), sorted: the buckets

    def state(self) -> dict:
        return {"doc": self.doc, "cursor": self.cursor, "passes": self.passes,
                "pieces": [list(p) for p in self.pieces]}  # fmt: skip

    def load(self, state: dict) -> None:
        self.doc, self.cursor, self.passes = state["doc"], state["cursor"], state["passes"]
        self.pieces = [tuple(p) for p in state["pieces"]]

    def next(self, length: int, rows: int, tail: int) -> tuple[np.ndarray, np.ndarray]:
        return cut_rows(self._take, length, rows, tail)

    def _take(self, n: int) -> np.ndarray:
        i = bisect.bisect_left(self.pieces, (n, -1))
        if i < len(self.pieces):  # the shortest bucketed piece that holds the row
            size, start = self.pieces.pop(i)
            if size - (n - 1) >= 2:  # what is left of it still holds a row of one token
                bisect.insort(self.pieces, (size - (n - 1), start + n - 1))
            return self.stream[start : start + n]
        for _ in range(len(self.starts) + 1):
            start = max(self.cursor, int(self.starts[self.doc]))
            end = int(self.ends[self.doc])
            if end - start >= n:
                self.cursor = start + n - 1
                return self.stream[start : start + n]
            if end - start >= 2:
                bisect.insort(self.pieces, (end - start, start))
            self.doc += 1
            if self.doc == len(self.starts):
                self.doc, self.passes = 0, self.passes + 1
            self.cursor = int(self.starts[self.doc])
        raise ValueError(f"no train document holds a row of {n - 1} tokens (doc_buckets)")


def attended_distances(
    y: np.ndarray, window: int = 0, x: np.ndarray | None = None, eos_id: int | None = None
) -> np.ndarray:
    """The farthest key each trained query token (target != -100) attends to, as a
    distance: its position in the row, capped at ``window - 1`` by a window and, when
    ``x`` and ``eos_id`` are given (document masking), at its position in its document."""
    pos = np.broadcast_to(np.arange(y.shape[1]), y.shape)
    dist = pos
    if eos_id is not None and x is not None:
        doc = Batcher.doc_ids(x, eos_id)
        first = np.zeros_like(doc)  # position where each row's current document starts
        first[:, 1:] = np.where(doc[:, 1:] != doc[:, :-1], pos[:, 1:], 0)
        dist = pos - np.maximum.accumulate(first, axis=1)
    if window > 0:
        dist = np.minimum(dist, window - 1)
    return dist[y != -100]


# --- Held-out decontamination ------------------------------------------------------------
# A held-out document that shares a long span with a train document measures recall, not
# generalisation, so it is dropped before evaluation: "exact" when it shares a window of
# ``span_lines`` consecutive non-blank lines verbatim with some train document, "near" when
# its word 5-gram MinHash Jaccard with some train document is at least ``near_threshold``.

# A shared window counts only when its stripped lines hold at least this many characters
# (25 a line on average): eight lines of ``}``, ``pass``, ``else:`` or ``)`` are shared by
# unrelated files. Measured on the stdlib corpus (162 held-out documents), held-out
# documents with a shared window at each floor: 0 -> 27, 120 -> 25, 200 -> 22, 400 -> 12.
# Every match at >= 200 is copied text (codec tables and codec boilerplate, licence
# headers, helpers and fixtures copied between modules or tests); the matches below it
# add runs of short lines (a parameter list, ``ENDMARKER = 0`` tables) where coincidence
# is possible, and 400 already misses the copied multibyte-codec and bz2/lzma code.
OVERLAP_MIN_SPAN_CHARS = 200
_OVERLAP_SHINGLE_WORDS = 5
_OVERLAP_SEED = 1  # MinHash permutations: fixed, so every run removes the same documents
_OVERLAP_VERSION = 1  # bump when the method changes, so stale caches are not reused
_OVERLAP_DEFAULTS = {"span_lines": 8, "near_threshold": 0.5, "num_perm": 128}


@dataclass(frozen=True)
class Overlap:
    """Which held-out documents survive decontamination, and why the others do not."""

    keep: list[bool]  # one per held-out document, True = clean
    exact: int  # removed: a long verbatim span shared with a train document
    near: int  # removed: a near-duplicate (MinHash Jaccard) of a train document, not exact

    @property
    def removed(self) -> int:
        return self.exact + self.near


def _span_windows(text: str, span_lines: int):
    """Stable 8-byte digests of every window of ``span_lines`` consecutive stripped,
    non-blank lines of ``text`` whose lines hold >= OVERLAP_MIN_SPAN_CHARS characters."""
    from itertools import accumulate

    lines = [s for s in (ln.strip() for ln in text.splitlines()) if s]
    if len(lines) < span_lines:
        return
    chars = [0, *accumulate(len(s) for s in lines)]
    digests = [
        hashlib.blake2b(s.encode("utf-8", errors="replace"), digest_size=8).digest() for s in lines
    ]
    for i in range(len(lines) - span_lines + 1):
        if chars[i + span_lines] - chars[i] >= OVERLAP_MIN_SPAN_CHARS:
            yield hashlib.blake2b(b"".join(digests[i : i + span_lines]), digest_size=8).digest()


def _shingles(text: str, word_ids: dict[str, int]) -> list[int]:
    """The distinct word 5-gram shingles of ``text`` as stable 32-bit integers (a hash of
    the five words' blake2b hashes, computed with numpy; ``word_ids`` memoises words)."""
    import re

    words = re.findall(r"\w+", text)
    n = _OVERLAP_SHINGLE_WORDS
    if len(words) < n:
        return []
    for w in set(words).difference(word_ids):
        d = hashlib.blake2b(w.encode("utf-8", errors="replace"), digest_size=8).digest()
        word_ids[w] = int.from_bytes(d, "little")
    ids = np.array([word_ids[w] for w in words], dtype=np.uint64)
    m = len(words) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)  # FNV-1a over the word hashes: order matters
    for j in range(n):
        acc = (acc ^ ids[j : j + m]) * prime
    acc ^= acc >> np.uint64(29)
    return np.unique((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).tolist()


def _identity_hash(x: int) -> int:
    return x  # shingles arrive already hashed to 32 bits


def overlap_with_train(
    train_texts: list[str],
    held_texts: list[str],
    span_lines: int = 8,
    near_threshold: float = 0.5,
    num_perm: int = 128,
) -> Overlap:
    """Which of ``held_texts`` share a long span with, or nearly duplicate, any of
    ``train_texts``. Exact: a window of ``span_lines`` consecutive non-blank lines (each
    stripped, the window at least OVERLAP_MIN_SPAN_CHARS characters) appears verbatim in a
    train document. Near: MinHash LSH over word 5-grams finds a train document whose
    estimated Jaccard similarity is at least ``near_threshold``. Deterministic."""
    from datasketch import MinHash, MinHashLSH

    if span_lines < 1:
        raise ValueError(f"span_lines must be >= 1, got {span_lines}")
    train_windows: set[bytes] = set()
    for t in train_texts:
        train_windows.update(_span_windows(t, span_lines))
    is_exact = [any(w in train_windows for w in _span_windows(t, span_lines)) for t in held_texts]
    del train_windows

    word_ids: dict[str, int] = {}
    train_sh = [_shingles(t, word_ids) for t in train_texts]
    # only the held-out documents still in question need a sketch
    held_idx = [i for i, ex in enumerate(is_exact) if not ex]
    held_sh = [_shingles(held_texts[i], word_ids) for i in held_idx]
    kw = {"num_perm": num_perm, "seed": _OVERLAP_SEED, "hashfunc": _identity_hash}
    train_mh = MinHash.bulk(train_sh, **kw)
    held_mh = MinHash.bulk(held_sh, **kw)
    lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for j, (sh, mh) in enumerate(zip(train_sh, train_mh)):
            if sh:  # fewer than five words: nothing to compare
                session.insert(j, mh, check_duplication=False)
    is_near = [False] * len(held_texts)
    for i, sh, mh in zip(held_idx, held_sh, held_mh):
        if sh:
            is_near[i] = any(mh.jaccard(train_mh[j]) >= near_threshold for j in lsh.query(mh))
    keep = [not (e or n) for e, n in zip(is_exact, is_near)]
    return Overlap(keep=keep, exact=sum(is_exact), near=sum(is_near))


def _overlap_cache_path(train_texts: list[str], held_texts: list[str], params: dict) -> Path:
    import json

    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for texts in (train_texts, held_texts):
        h.update(len(texts).to_bytes(8, "big"))
        for t in texts:
            h.update(hashlib.sha256(t.encode("utf-8", errors="replace")).digest())
    return _cache_dir().parent / "overlap" / f"overlap-{h.hexdigest()[:24]}.json"


def clean_held_out(
    train: datasets.Dataset, held_out: datasets.Dataset
) -> tuple[datasets.Dataset, Overlap]:
    """``held_out`` without the documents that overlap ``train`` (see overlap_with_train),
    and the Overlap. The keep-list is cached on disk by a hash of both splits' texts and
    the parameters, so every trial of a sweep after the first pays only for that hash."""
    import json
    from importlib.metadata import version

    train_texts, held_texts = list(train["text"]), list(held_out["text"])
    params = {
        "method": _OVERLAP_VERSION,
        "min_chars": OVERLAP_MIN_SPAN_CHARS,
        "datasketch": version("datasketch"),  # its MinHash schemes differ between releases
        **_OVERLAP_DEFAULTS,
    }
    path = _overlap_cache_path(train_texts, held_texts, params)
    ov = None
    try:
        rec = json.loads(path.read_text())
        if len(rec["keep"]) == len(held_texts):
            ov = Overlap(keep=[bool(k) for k in rec["keep"]], exact=rec["exact"], near=rec["near"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or a damaged one: recompute
    if ov is None:
        ov = overlap_with_train(train_texts, held_texts, **_OVERLAP_DEFAULTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"keep": ov.keep, "exact": ov.exact, "near": ov.near}))
        os.replace(tmp, path)  # concurrent trials may race here; both write the same result
    kept = [i for i, k in enumerate(ov.keep) if k]
    return held_out.select(kept), ov
