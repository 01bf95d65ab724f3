"""Held-out decontamination: exact (shared long line spans) and near (MinHash) overlap."""

import random
import re

import datasets
import pytest

from sweep.train import dedup


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(3))


def _code(rng: random.Random, n_lines: int) -> list[str]:
    """Random code-looking lines, ~50 characters each, 8 words a line."""
    return [
        f"    {_word(rng)}_{_word(rng)} = {_word(rng)}({_word(rng)}, {_word(rng)}, "
        f"{_word(rng)})  # {_word(rng)} {_word(rng)}"
        for _ in range(n_lines)
    ]


TRIVIAL = ["pass", "}", "", "else:", "return None", ")", "}", "pass", "]", "pass", "}"]


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    train = [_code(rng, 60) for _ in range(3)]
    train[2] = train[2][:30] + TRIVIAL + train[2][30:]

    # (1) a verbatim 12-line block of train[0], re-indented, inside otherwise new text
    block = train[0][10:22]
    assert sum(len(s.strip()) for s in block) > 200
    exact = _code(rng, 40) + ["        " + s.strip() for s in block] + _code(rng, 40)

    # (2) train[1] with every 20th word replaced (5%): no 8-line window survives intact,
    # and about 75% of the word 5-grams do (Jaccard ~0.6)
    text = "\n".join(train[1])
    count = iter(range(10**6))
    near = re.sub(r"\w+", lambda m: m[0] if next(count) % 20 else "qq" + _word(rng), text)
    assert near.count("qq") == -(-len(re.findall(r"\w+", text)) // 20)

    # (3) unrelated; (4) new text around the same trivial run train[2] holds
    unrelated = _code(rng, 80)
    trivial = _code(rng, 30) + TRIVIAL + _code(rng, 30)

    train_texts = ["\n".join(t) for t in train]
    held_texts = ["\n".join(exact), near, "\n".join(unrelated), "\n".join(trivial)]
    return train_texts, held_texts


def test_exact_near_unrelated_trivial(corpus):
    train, held = corpus
    ov = dedup.overlap_with_train(train, held)
    assert ov.keep == [False, False, True, True]
    assert (ov.exact, ov.near, ov.removed) == (1, 1, 2)
    assert dedup.overlap_with_train(train, held) == ov  # deterministic


def test_near_duplicate_is_not_an_exact_match(corpus):
    train, held = corpus
    ov = dedup.overlap_with_train(train, held[1:2])
    assert (ov.keep, ov.exact, ov.near) == ([False], 0, 1)
    # above its estimated Jaccard, the same document is kept
    assert dedup.overlap_with_train(train, held[1:2], near_threshold=0.95).keep == [True]


def test_exact_block_alone_is_not_a_near_duplicate(corpus):
    train, held = corpus
    ov = dedup.overlap_with_train(train, held[:1], span_lines=13)  # 12 shared lines < 13
    assert (ov.keep, ov.exact, ov.near) == ([True], 0, 0)


def test_trivial_windows_do_not_count(corpus, monkeypatch):
    train, held = corpus
    assert dedup.overlap_with_train(train, held[3:]).keep == [True]
    # the shared trivial run is 8+ lines long: without the character floor it would match
    monkeypatch.setattr(dedup, "OVERLAP_MIN_SPAN_CHARS", 0)
    ov = dedup.overlap_with_train(train, held[3:])
    assert (ov.keep, ov.exact) == ([False], 1)


def test_a_verbatim_copy_counts_as_exact_only(corpus):
    train, _ = corpus
    ov = dedup.overlap_with_train(train, [train[2], train[0]])
    assert (ov.keep, ov.exact, ov.near) == ([False, False], 2, 0)


def test_empty_and_tiny_inputs():
    assert dedup.overlap_with_train([], ["a b c d e f g"]).keep == [True]
    ov = dedup.overlap_with_train(["a b c d e f g"], [])
    assert (ov.keep, ov.exact, ov.near) == ([], 0, 0)
    # identical documents too short for a window or a 5-gram are kept
    assert dedup.overlap_with_train(["x = 1"], ["x = 1"]).keep == [True]
    assert dedup.overlap_with_train(["a b c d e"], ["a b c d e"]).keep == [False]


def test_clean_held_out_filters_and_caches(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    train_texts, held_texts = corpus
    train = datasets.Dataset.from_dict(
        {"name": [f"t{i}" for i in range(len(train_texts))], "text": train_texts}
    )
    names = ["exact", "near", "unrelated", "trivial"]
    held = datasets.Dataset.from_dict({"name": names, "text": held_texts})

    kept, ov = dedup.clean_held_out(train, held)
    assert list(kept["name"]) == ["unrelated", "trivial"]
    assert list(kept["text"]) == held_texts[2:]
    assert (ov.exact, ov.near) == (1, 1)
    cached = list((tmp_path / "ctx-sweep" / "overlap").glob("*.json"))
    assert len(cached) == 1

    def no_recompute(*a, **k):
        raise AssertionError("the cached keep-list was not used")

    monkeypatch.setattr(dedup, "overlap_with_train", no_recompute)
    kept2, ov2 = dedup.clean_held_out(train, held)
    assert ov2 == ov
    assert list(kept2["name"]) == list(kept["name"]) and list(kept2["text"]) == held_texts[2:]

    # other texts (here the same ones in another order) are another key
    other = held.select([3, 2, 1, 0])
    with pytest.raises(AssertionError, match="cached keep-list"):
        dedup.clean_held_out(train, other)
