"""The ways of making sequences short (schedules.modes): the spec axis, window attention,
single-document rows, and the position-exposure histogram every record carries."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from support import ROOT, tiny_proxy

from sweep.analysis import metrics
from sweep.config import schedules, spec
from sweep.train import data
from sweep.train.trial import token_loss_sum

L_MAX = 32


def local(**schedules_kw):
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["schedules"].update(schedules_kw)
    return raw


# ----------------------------------------------------------------------------- spec


def test_modes_cross_every_shape_and_rate_and_constant_runs_once():
    sw = spec.parse(local(modes=["reshape", "truncate", "window", "doc_buckets"]))
    labels = [t.schedule.label for t in sw.trials()]
    assert len(labels) == len(set(labels))
    # constant trains identically under reshape, truncate and window: one trial
    assert [x for x in labels if x.startswith("constant")] == ["constant", "constant-doc_buckets"]
    for mode in ("truncate", "window", "doc_buckets"):
        assert f"linear-r0.5-{mode}" in labels and f"short_only-{mode}" in labels
    t = next(t for t in sw.trials() if t.schedule.label == "geometric-r0.5-window")
    assert t.schedule.mode == "window" and t.role == "candidate"
    assert next(t for t in sw.trials() if t.schedule.label == "short_only-window").role == "control"
    # the trial round-trips through its dict (what Ray hands the worker)
    assert spec.TrialSpec.from_dict(t.to_dict()).schedule == t.schedule


@pytest.mark.parametrize(
    "change, field, value",
    [
        ({"schedules": {"modes": ["reshape", "squash"]}}, "schedules.modes", "squash"),
        ({"schedules": {"modes": []}}, "schedules.modes", []),
        ({"schedules": {"modes": ["window", "window"]}}, "schedules.modes", ["window", "window"]),
        ({"budget": {"batching": "truncate"}}, "budget.batching", "truncate"),
        (
            {"schedules": {"modes": ["doc_buckets"]}, "data": {"doc_mask": True}},
            "data.doc_mask",
            True,
        ),
    ],
)
def test_bad_modes_name_the_field(change, field, value):
    raw = local()
    for section, kw in change.items():
        raw[section].update(kw)
    with pytest.raises(spec.SpecError) as e:
        spec.parse(raw)
    assert e.value.field == field and e.value.value == value


def test_window_mode_needs_the_proxy():
    raw = local(modes=["window"])
    raw["model"] = {"arch": "llama", "d_model": 32, "n_layers": 1, "n_heads": 2}
    with pytest.raises(spec.SpecError, match="schedules.modes='window'"):
        spec.parse(raw)


# ----------------------------------------------------------------------------- window


def test_window_at_l_max_trains_exactly_like_reshape_at_l_max():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 64, (4, L_MAX))
    y = np.concatenate([x[:, 1:], rng.integers(0, 64, (4, 1))], axis=1)
    rows = np.arange(4)
    grads, losses = [], []
    for window in (0, L_MAX):  # reshape at l_max, then window mode with the window at l_max
        m = tiny_proxy(n_layers=2)
        loss = token_loss_sum(m, x, y, rows, "cpu", None, window)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in m.parameters()])
    assert torch.equal(losses[0], losses[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    # and the plan: where the window has reached l_max, the steps are reshape's steps
    lin = schedules.ScheduleSpec("linear", 8, L_MAX, ramp_rate=0.5, multiple_of=8)
    win = schedules.plan(dataclasses.replace(lin, mode="window"), 64 * L_MAX, 4 * L_MAX)
    ref = schedules.plan(lin, 64 * L_MAX, 4 * L_MAX)
    at = ref.context == L_MAX
    assert at.sum() >= ref.steps // 2
    for a in ("lengths", "rows", "tails"):
        assert np.array_equal(getattr(win, a)[at], getattr(ref, a)[at])


@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_window_limits_each_query_to_its_last_keys(attention):
    # One layer: with a window of w, position p's output depends on tokens p-w+1..p only,
    # and (ALiBi being relative) equals the output on that span alone.
    m = tiny_proxy(n_layers=1, attention=attention).eval()
    x = torch.as_tensor(np.random.default_rng(1).integers(0, 64, (2, L_MAX)))
    w = 8
    with torch.no_grad():
        full = m(x).logits
        windowed = m(x, window=w).logits
        for p in (w - 1, w, 20, L_MAX - 1):
            alone = m(x[:, max(0, p - w + 1) : p + 1]).logits[:, -1]
            assert torch.allclose(windowed[:, p], alone, atol=1e-5)
        assert torch.allclose(windowed[:, :w], full[:, :w], atol=1e-6)
        assert not torch.allclose(windowed[:, w:], full[:, w:], atol=1e-4)


# ----------------------------------------------------------------------------- doc_buckets

EOS = -1


def doc_stream(lengths, seed=0):
    """Documents of the given lengths, each closed by EOS; every other token is its own
    stream position, so a row cut from one document is a run of consecutive integers."""
    out = []
    for n in lengths:
        start = sum(len(d) for d in out)
        out.append(np.concatenate([np.arange(start, start + n), [EOS]]))
    return np.concatenate(out).astype(np.int64)


def test_doc_bucket_rows_never_cross_a_document_boundary():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, 400)
    stream = doc_stream(lengths)
    eos_at = set(np.flatnonzero(stream == EOS).tolist())
    rows_ = data.DocRows(stream, EOS)
    ladder = [8, 16, 32, 64, 48, 24, 8, 64]  # up, then down: bucketed pieces get used
    from_buckets = 0
    for L in ladder:
        for tail in (0, 5):
            cursor = rows_.cursor  # reading on only moves forward: rows behind it are pieces
            x, y = rows_.next(L, 3, tail)
            from_buckets += int((x[:, 0] < cursor).sum())
            assert (y != -100).sum() == 3 * L + tail  # the plan's tokens, exactly
            for r in range(len(x)):
                width = L if r < 3 else tail
                xr, yr = x[r, :width], y[r, :width]
                assert EOS not in xr  # no row reads past the end of its document
                assert np.array_equal(np.diff(xr), np.ones(width - 1))  # one contiguous run
                assert np.array_equal(yr[:-1], xr[1:])
                # the last target is the next token of the same document, or its EOS
                assert yr[-1] == xr[-1] + 1 or (yr[-1] == EOS and xr[-1] + 1 in eos_at)
                assert not any(p in eos_at for p in range(xr[0], xr[-1] + 1))
    assert from_buckets >= 6 and rows_.pieces  # tails and the way down used buckets


def test_doc_bucket_state_round_trips():
    stream = doc_stream(np.random.default_rng(2).integers(3, 100, 300))
    a = data.DocRows(stream, EOS)
    for L in (8, 32, 16):
        a.next(L, 4, 3)
    b = data.DocRows(stream, EOS)
    b.load(a.state())
    for L in (16, 64, 8):
        assert all(np.array_equal(u, v) for u, v in zip(a.next(L, 4, 3), b.next(L, 4, 3)))


def test_doc_buckets_says_when_no_document_holds_a_row():
    with pytest.raises(ValueError, match="no train document holds a row of 64 tokens"):
        data.DocRows(doc_stream([10, 20, 30]), EOS).next(64, 1, 0)


# ----------------------------------------------------------------------------- exposure


def test_attended_distances_per_mode():
    x = np.array([[5, 6, 7, 9, 1, 2, 3, 4]])
    y = np.concatenate([x[:, 1:], [[0]]], axis=1)
    assert data.attended_distances(y).tolist() == list(range(8))
    assert data.attended_distances(y, window=3).tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    # document masking: token 9 is an EOS, the next document starts after it
    assert data.attended_distances(y, 0, x, eos_id=9).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    y[0, 5:] = -100  # a padded tail row trains its first 5 targets only
    assert data.attended_distances(y).tolist() == [0, 1, 2, 3, 4]


def test_exposure_bins_are_log2_and_sum_to_the_query_tokens():
    assert metrics.exposure_edges(256) == [0, 1, 2, 4, 8, 16, 32, 64, 128]
    counts = metrics.exposure_counts(np.arange(256), 256)
    assert counts.tolist() == [1, 1, 2, 4, 8, 16, 32, 64, 128]
    assert metrics.exposure_counts([300, 0, 3], 256).tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 1]
    # l_max not a power of two: l_max / 2 is an edge, so exposure_far is whole bins
    assert metrics.exposure_edges(1536) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024]
    c = metrics.exposure_counts(np.arange(1536), 1536)
    assert c.sum() == 1536 and c[-2] == 1024 - 768 and c[-1] == 1536 - 1024
    s = schedules.ScheduleSpec("linear", 16, 64, ramp_rate=0.5, multiple_of=16)
    for mode in ("reshape", "truncate", "window"):
        p = schedules.plan(dataclasses.replace(s, mode=mode), 20 * 2048, 2048)
        total = np.zeros(len(metrics.exposure_edges(64)), dtype=np.int64)
        for L, rows, tail, w in zip(p.lengths, p.rows, p.tails, p.windows):
            x, y = data.Batcher(np.arange(100_000) % 50).next(int(L), int(rows), int(tail))
            total += metrics.exposure_counts(data.attended_distances(y, int(w)), 64)
        assert total.sum() == p.total_tokens
        far = total[metrics.exposure_edges(64).index(32) :].sum()
        if mode == "window":  # the window caps what a query reaches, not the row length
            # rows of 64: positions 32..63 reach 32 or further only while the window is > 32
            assert far == sum(int(r) * 32 for r, w in zip(p.rows, p.windows) if w > 32)
