"""The context-use probes: sliding-window evaluation (ctx_gain) and the copy probe, on
models whose reach is known by construction (attention masked to a window); on a tiny
model trained to copy: tests/e2e/test_probes_e2e.py."""

import numpy as np
import pytest
from support import tiny_proxy

from sweep.analysis import metrics
from sweep.train import evaluate

L_MAX, E, STRIDE = 32, 128, 8


def tiny(n_layers=1, window=0):
    return tiny_proxy(n_layers, attn_window=window).eval()


def seqs(n=6, vocab=64, seed=1):
    return np.random.default_rng(seed).integers(0, vocab, (n, E + 1))


def test_window_losses_equal_brute_force_truncated_context():
    m = tiny(n_layers=2)
    x = seqs(2)
    win = evaluate.window_losses(m, x, L_MAX, STRIDE, 4, "cpu")
    full = evaluate.per_position_losses(m, x, 4, "cpu")
    for p in (L_MAX + 1, L_MAX + 5, 70, E):  # 1-based positions past l_max
        j = p - 1  # predicts token j + 1 from tokens up to j
        ctx = L_MAX - STRIDE + 1 + (j - L_MAX) % STRIDE  # tokens of context it had
        a = j + 1 - ctx  # the window this position was scored in starts here
        one = evaluate.per_position_losses(m, x[:, a : j + 2], 4, "cpu")[:, -1]
        assert win[:, p - L_MAX - 1] == pytest.approx(one, abs=1e-5)
        assert L_MAX - STRIDE + 1 <= ctx <= L_MAX
    assert not np.allclose(win, full[:, L_MAX:], atol=1e-4)  # two layers see further


def test_ctx_gain_is_zero_when_attention_cannot_reach_past_the_window():
    # one layer masked to l_max - stride + 1 keys: every scored window holds all of them
    m = tiny(n_layers=1, window=L_MAX - STRIDE + 1)
    x = seqs()
    win = evaluate.window_losses(m, x, L_MAX, STRIDE, 4, "cpu")
    full = evaluate.per_position_losses(m, x, 4, "cpu")
    assert np.abs(win - full[:, L_MAX:]).max() < 1e-5  # at every position
    assert np.abs(metrics.ctx_gain(win, full, L_MAX)).max() < 1e-6
    # the same weights without the mask do use the distant tokens
    unmasked = tiny(n_layers=1)
    win2 = evaluate.window_losses(unmasked, x, L_MAX, STRIDE, 4, "cpu")
    full2 = evaluate.per_position_losses(unmasked, x, 4, "cpu")
    assert np.abs(win2 - full2[:, L_MAX:]).max() > 1e-3


def test_copy_probe_is_zero_beyond_a_models_reach():
    x = seqs(8)
    dists = evaluate.copy_distances(L_MAX, E, 8)
    assert dists == [16, 32, 64]
    # the closest token of the first copy is d - span + 1 = 9 back from the first scored one
    m = tiny(n_layers=1, window=9)
    drop = evaluate.copy_probe(m, x, dists, 8, 4, "cpu")
    assert np.abs(drop).max() < 1e-5
    drop_full = evaluate.copy_probe(tiny(n_layers=1), x, dists, 8, 4, "cpu")
    assert np.abs(drop_full).max() > 1e-4  # full attention: the distant copy matters
