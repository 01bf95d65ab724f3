"""The data a trial trains and evaluates on: the corpus split with its held-out documents
decontaminated, the packed training stream (with optional copied spans, ``Repeats``),
per-position eval windows, and the rows each step trains on (packed or per document)."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import numpy as np

from sweep.config.spec import MIN_HELD_OUT, DataSpec, EvalSpec, SpecError
from sweep.train.corpus import ByteTokenizer, Split, load_corpus, split, tokenizer_for, unit_hash
from sweep.train.dedup import clean_held_out


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
        return self.share > 0 and unit_hash(f"repeat:{name}") < self.share

    def apply(self, ids: np.ndarray, name: str) -> np.ndarray:
        """The document with copies; deterministic in its name, so train and eval agree
        across trials and machines."""
        rng = np.random.default_rng(int(unit_hash(f"repeat-rng:{name}") * 2**63))
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
        rng = np.random.default_rng(int(unit_hash(f"{seed}:{name}") * 2**63))
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
