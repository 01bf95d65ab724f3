"""The shape metrics (docs/design.md, "Level is not shape"): context_use from the cut-context
evaluation, far_excess and own_excess from position bins paired against the reference, and
the per-sequence slope. Each on a case where the right answer is known and a wrong
implementation gives another number."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import fake_records, row, smoke_spec, tiny_proxy

from sweep.analysis import aggregate, metrics
from sweep.train import evaluate

# ----------------------------------------------------------------------------- pure metrics


def test_per_sequence_slopes_average_to_the_curves_slope():
    rng = np.random.default_rng(0)
    L, E = 16, 64
    p = np.arange(1, E + 1)
    a = rng.normal(size=(5, 1))
    losses = 3.0 + a * np.log2(p) + 0.01 * rng.standard_normal((5, E))
    s = metrics.slopes(losses, L)
    assert s == pytest.approx(a.ravel(), abs=0.01)  # each sequence's own slope
    assert s.mean() == pytest.approx(metrics.slope(losses.mean(axis=0), L), abs=1e-12)
    assert metrics.per_sequence(losses, L)["slope"] == pytest.approx(s, abs=1e-6)


def test_position_edges_hold_every_length_the_excess_metrics_need():
    edges = metrics.position_edges(1024, 256, (32, 48))
    for e in (1, 2, 16, 24, 32, 48, 128, 256, 512, 1024):
        assert e in edges
    assert edges == sorted(set(edges)) and edges[-1] == 1024
    assert metrics.position_edges(96, 24)[-1] == 96  # E need not be a power of two


def test_range_mean_weights_bins_by_width():
    losses = np.arange(1.0, 17.0)[None, :]  # loss(p) = p
    edges = metrics.position_edges(16, 8, (4,))
    vals = metrics.bin_means(losses, edges)
    assert metrics.range_mean(vals, edges, 4, 16)[0] == pytest.approx(np.mean(np.arange(5, 17)))
    assert metrics.range_mean(vals, edges, 0, 16)[0] == pytest.approx(8.5)
    assert metrics.range_mean(vals, edges, 3, 16) is None  # 3 is not an edge
    # own rise: mean over (4, 8] minus mean over (2, 4]
    assert metrics.own_rise(vals, edges, 4, 8)[0] == pytest.approx(6.5 - 3.5)
    assert metrics.own_rise(vals, edges, 8, 8) is None  # trained at l_max: no own rise


# ----------------------------------------------------------------------------- excess


def test_far_excess_is_zero_for_a_uniformly_worse_model_and_positive_for_a_rising_one(tmp_path):
    """Both candidates are 0.05 nats worse past l_max (the same far_loss gap); one is as
    much worse on (l_max/2, l_max] (a uniformly worse model), the other is not (its loss
    rises past l_max). Only the second extrapolates worse."""
    fake_records(
        tmp_path,
        smoke_spec(seeds=(0, 1)),
        {"linear-r0.5": 0.05, "geometric-r0.5": 0.05},
        near_shift={"linear-r0.5": 0.05},
    )
    s = aggregate.aggregate(tmp_path)
    level, rising = row(s, "linear-r0.5"), row(s, "geometric-r0.5")
    for r in (level, rising):
        assert r["vs_ref"]["far_loss"]["mean"] == pytest.approx(0.05, abs=0.005)
    flat = level["far_excess"]
    assert flat["lo"] < 0 < flat["hi"] and abs(flat["mean"]) < 0.005
    up = rising["far_excess"]
    assert up["lo"] > 0 and up["mean"] == pytest.approx(0.05, abs=0.005)
    # per band too: every far band of the rising one is 0.05 above its near_loss rise
    assert set(up) and set(rising["far_excess_bands"]) == {"far_x2", "far_x4"}
    for band in rising["far_excess_bands"].values():
        assert band["mean"] == pytest.approx(0.05, abs=0.01)
    for band in level["far_excess_bands"].values():
        assert band["lo"] < 0 < band["hi"]


def test_own_excess_measures_from_the_controls_own_length(tmp_path):
    fake_records(tmp_path, smoke_spec(seeds=(0, 1)), own_rise=0.07, control_far=0.1)
    s = aggregate.aggregate(tmp_path)
    ctl = row(s, "short_only")
    assert ctl["own_length"] == 16
    assert ctl["own_excess"]["mean"] == pytest.approx(0.07, abs=0.005)
    assert "own_excess" not in row(s, "linear-r0.5")  # trained up to l_max: none
    # without the bins (an older record) there is no own_excess, and nothing breaks
    for f in tmp_path.glob("trials/short_only-*/record.json"):
        import json

        rec = json.loads(f.read_text())
        del rec["position_bins"]
        f.write_text(json.dumps(rec))
    s = aggregate.aggregate(tmp_path)
    assert "own_excess" not in row(s, "short_only")
    assert s.controls["excess_key"] == "far_excess"


# ----------------------------------------------------------------------------- context_use


def test_cut_context_with_stride_one_is_exactly_the_last_c_tokens():
    m = tiny_proxy(n_layers=2).eval()
    L = 32
    c = metrics.context_cut(L)
    seqs = np.random.default_rng(0).integers(0, 64, size=(3, L + 1))
    cut = evaluate.cut_context_losses(m, seqs, L, 8, "cpu", stride=1)
    for p in range(L // 2 + 1, L + 1):  # position p predicts token p from c tokens
        x = torch.as_tensor(seqs[:, p - c : p + 1])
        want = F.cross_entropy(m(input_ids=x[:, :-1]).logits[:, -1], x[:, -1], reduction="none")
        assert cut[:, p - L // 2 - 1] == pytest.approx(want.detach().numpy(), abs=1e-5)


def test_cut_context_sees_between_c_and_c_plus_stride_minus_one_tokens():
    m = tiny_proxy(n_layers=2).eval()
    L = 64
    c = metrics.context_cut(L)
    stride = max(1, c // 4)
    seqs = np.random.default_rng(1).integers(0, 64, size=(2, L + 1))
    cut = evaluate.cut_context_losses(m, seqs, L, 8, "cpu")
    assert cut.shape == (2, L // 2)
    ks = set()
    for p in range(L // 2 + 1, L + 1):
        options = []
        for k in range(1, p + 1):
            x = torch.as_tensor(seqs[:, p - k : p + 1])
            logits = m(input_ids=x[:, :-1]).logits[:, -1]
            options.append(F.cross_entropy(logits, x[:, -1], reduction="none").detach().numpy())
        got = cut[:, p - L // 2 - 1]
        gaps = [np.abs(o - got).max() for o in options]
        k = int(np.argmin(gaps)) + 1  # the context the cut loss was computed with
        assert gaps[k - 1] < 1e-5 and c <= k <= c + stride - 1, (p, k)
        ks.add(k)
    assert ks == set(range(c, c + stride))  # every context in the range occurs


def _copy_batch(rng, n, L, D, V):
    """Sequences of L + 1 tokens that repeat their first D random tokens: from position D
    on, the next token is the one D tokens back."""
    x = rng.integers(0, V, size=(n, D))
    return np.tile(x, (1, (L + 1) // D + 2))[:, : L + 1]


def _train(model, L, D, V, steps, seed=0):
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        b = torch.as_tensor(_copy_batch(rng, 32, L, D, V))
        logits = model(input_ids=b[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_context_use_of_a_model_trained_to_copy_and_of_one_masked_to_l_max_over_8():
    """A model trained to copy from D tokens back (l_max/8 < D <= l_max/2) gains from
    context beyond l_max/8 on (l_max/2, l_max]: context_use > 0. A one-layer model masked to
    a window of l_max/8 sees no more with the whole prefix than with the cut: exactly 0."""
    torch.set_num_threads(1)
    L, D, V = 64, 24, 16
    c = metrics.context_cut(L)
    seqs = _copy_batch(np.random.default_rng(99), 16, L, D, V)
    copier = _train(tiny_proxy(n_layers=2, vocab=V), L, D, V, steps=300)
    masked = _train(tiny_proxy(n_layers=1, vocab=V, attn_window=c), L, D, V, steps=50)
    uses = {}
    for name, m in (("copier", copier), ("masked", masked)):
        full = evaluate.per_position_losses(m, seqs, 8, "cpu")
        cut = evaluate.cut_context_losses(m, seqs, L, 8, "cpu")
        uses[name] = metrics.context_use(cut, full, L)
    assert uses["copier"].mean() > 0.3 and (uses["copier"] > 0).all()
    assert np.abs(uses["masked"]).max() < 1e-4
    # the copy is D back, past the cut: the full prefix predicts near-perfectly, the cut at
    # chance (log V) at best
    assert uses["copier"].mean() < math.log(V)
