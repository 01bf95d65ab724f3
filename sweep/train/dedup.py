"""Held-out decontamination: a held-out document that shares a long span with a train
document measures recall, not generalisation, so it is dropped before evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib.metadata import version
from itertools import accumulate
from pathlib import Path

import datasets
import numpy as np
from datasketch import MinHash, MinHashLSH

from sweep.train.corpus import cache_dir

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
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for texts in (train_texts, held_texts):
        h.update(len(texts).to_bytes(8, "big"))
        for t in texts:
            h.update(hashlib.sha256(t.encode("utf-8", errors="replace")).digest())
    return cache_dir().parent / "overlap" / f"overlap-{h.hexdigest()[:24]}.json"


def clean_held_out(
    train: datasets.Dataset, held_out: datasets.Dataset
) -> tuple[datasets.Dataset, Overlap]:
    """``held_out`` without the documents that overlap ``train`` (see overlap_with_train),
    and the Overlap. The keep-list is cached on disk by a hash of both splits' texts and
    the parameters, so every trial of a sweep after the first pays only for that hash."""
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
