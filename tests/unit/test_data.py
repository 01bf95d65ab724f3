import datasets
import numpy as np
import pytest

from sweep.config.spec import DataSpec
from sweep.train import data
from sweep.train.corpus import is_held_out


@pytest.fixture(scope="module")
def stdlib() -> datasets.Dataset:
    """The stdlib corpus, read once for the module (1-2 s a read); the tests only read it
    (``split`` filters it into new datasets)."""
    return data.load_corpus(DataSpec())


def test_stdlib_corpus_split_is_disjoint_and_stable(stdlib):
    assert len(stdlib) > 500
    assert not any("site-packages" in n for n in stdlib["name"])
    sp = data.split(stdlib, 0.1)
    train, held = set(sp.train["name"]), set(sp.held_out["name"])
    assert train.isdisjoint(held) and len(train) + len(held) == len(stdlib)
    assert 0.05 < len(held) / len(stdlib) < 0.15
    assert all(is_held_out(n, 0.1) for n in held)


def test_no_held_out_text_in_train_stream(stdlib):
    sp = data.split(stdlib, 0.1)
    tok = data.ByteTokenizer()
    stream, passes = data.pack_train_stream(sp.train, tok, 3_000_000, seed=0)
    assert passes == 1 and len(stream) == 3_000_000
    blob = bytes(np.where(stream == tok.eos_id, 0, stream).astype(np.uint8))
    # a distinctive 200-byte window of each of 20 held-out documents never appears in train
    for text in sp.held_out["text"][:20]:
        b = text.encode()
        if len(b) > 2000:
            assert b[1000:1200] not in blob


def test_eval_windows_start_at_random_offsets_and_are_stable(stdlib):
    sp = data.split(stdlib, 0.1)
    tok = data.ByteTokenizer()
    a = data.eval_windows(sp.held_out, tok, 512, 64, seed=0)
    b = data.eval_windows(sp.held_out, tok, 512, 64, seed=0)
    assert a.tokens.shape == (64, 513) and np.array_equal(a.tokens, b.tokens)
    assert len(set(a.doc)) == 64  # one window per document while documents last
    texts = dict(zip(sp.held_out["name"], sp.held_out["text"]))
    lengths = []
    for row, doc, off in zip(a.tokens, a.doc, a.offset):
        ids = tok.encode(texts[doc])
        assert np.array_equal(row, ids[off : off + 513])  # the window is where it says
        lengths.append(len(ids))
    # offsets spread over the documents rather than sitting at their first bytes
    rel = np.array(a.offset) / (np.array(lengths) - 513)
    assert np.median(a.offset) > 1000 and 0.3 < np.mean(rel) < 0.7
    c = data.eval_windows(sp.held_out, tok, 512, 64, seed=1)
    assert not np.array_equal(a.tokens, c.tokens)  # another eval seed, other windows


def test_eval_windows_mix_repeat_documents_in_proportion(stdlib):
    sp = data.split(stdlib, 0.2)
    tok = data.ByteTokenizer()
    rep = data.Repeats(share=0.5, span=32, max_distance=1024)
    ev = data.eval_windows(sp.held_out, tok, 1024, 40, seed=0, repeats=rep)
    assert ev.source.count("repeat") == 20 and ev.source[:2] in (
        ["natural", "repeat"],
        ["repeat", "natural"],
    )
    assert all(rep.applies(d) == (s == "repeat") for d, s in zip(ev.doc, ev.source))


def test_repeats_copy_earlier_spans_within_the_distance_range():
    rep = data.Repeats(share=1.0, span=16, max_distance=200)
    ids = np.arange(5000, dtype=np.int32) + 1000  # every token distinct
    out = rep.apply(ids, "doc.py")
    assert np.array_equal(out[:16], ids[:16]) and len(out) == len(ids)
    copied = 0
    for start in range(16, 5000 - 15, 16):
        seg = out[start : start + 16]
        if np.array_equal(seg, ids[start : start + 16]):
            continue
        copied += 1
        # a copy of the span d tokens earlier, 16 <= d <= 200
        ds = [d for d in range(16, 201) if np.array_equal(seg, out[start - d : start - d + 16])]
        assert ds, start
    assert 0.35 < copied / (5000 // 16) < 0.65
    assert np.array_equal(rep.apply(ids, "doc.py"), out)  # deterministic in the name


def test_batcher_rows_and_tail_padding():
    stream = np.arange(1000)
    b = data.Batcher(stream)
    x, y = b.next(length=10, rows=3, tail=4)
    assert x.shape == (4, 10)
    assert np.array_equal(y[0], x[0] + 1) and x[1, 0] == 10
    assert np.all(y[3, 4:] == -100) and np.array_equal(y[3, :4], x[3, :4] + 1)
    assert b.position == 34
