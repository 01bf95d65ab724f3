import numpy as np

from sweep import data
from sweep.spec import DataSpec


def test_stdlib_corpus_split_is_disjoint_and_stable():
    corpus = data.load_corpus(DataSpec())
    assert len(corpus) > 500
    assert not any("site-packages" in n for n in corpus["name"])
    sp = data.split(corpus, 0.1)
    train, held = set(sp.train["name"]), set(sp.held_out["name"])
    assert train.isdisjoint(held) and len(train) + len(held) == len(corpus)
    assert 0.05 < len(held) / len(corpus) < 0.15
    assert all(data.is_held_out(n, 0.1) for n in held)


def test_no_held_out_text_in_train_stream():
    corpus = data.load_corpus(DataSpec())
    sp = data.split(corpus, 0.1)
    tok = data.ByteTokenizer()
    stream, passes = data.pack_train_stream(sp.train, tok, 3_000_000, seed=0)
    assert passes == 1 and len(stream) == 3_000_000
    blob = bytes(np.where(stream == tok.eos_id, 0, stream).astype(np.uint8))
    # a distinctive 200-byte window of each of 20 held-out documents never appears in train
    for text in sp.held_out["text"][:20]:
        b = text.encode()
        if len(b) > 2000:
            assert b[1000:1200] not in blob


def test_eval_sequences_are_long_enough_and_stable():
    sp = data.split(data.load_corpus(DataSpec()), 0.1)
    tok = data.ByteTokenizer()
    a = data.eval_sequences(sp.held_out, tok, 512, 16)
    b = data.eval_sequences(sp.held_out, tok, 512, 16)
    assert a.shape == (16, 513) and np.array_equal(a, b)


def test_batcher_rows_and_tail_padding():
    stream = np.arange(1000)
    b = data.Batcher(stream)
    x, y = b.next(length=10, rows=3, tail=4)
    assert x.shape == (4, 10)
    assert np.array_equal(y[0], x[0] + 1) and x[1, 0] == 10
    assert np.all(y[3, 4:] == -100) and np.array_equal(y[3, :4], x[3, :4] + 1)
    assert b.position == 34
