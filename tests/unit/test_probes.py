"""The context-use probes: sliding-window evaluation (ctx_gain) and the copy probe, on
models whose reach is known by construction (attention masked to a window) and on a tiny
model trained here to copy."""

import numpy as np
import pytest
import torch
from support import tiny_proxy

from sweep.analysis import metrics
from sweep.train import evaluate
from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

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


@pytest.fixture(scope="module")
def copier():
    """Two layers trained for a few hundred steps on random tokens that repeat with a
    period of 8 to 48 tokens, in rows longer than E: an induction head, full attention."""
    torch.manual_seed(0)
    cfg = BtlmProxyConfig(vocab_size=32, d_model=64, n_layers=2, n_heads=4, mup_base_width=64)
    m = BtlmProxyForCausalLM(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(400):
        k = int(rng.integers(8, 49))
        a = rng.integers(0, 32, (32, k))
        x = torch.as_tensor(np.tile(a, (1, 136 // k + 1))[:, :136])
        loss = m(input_ids=x[:, :-1], labels=x[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def test_a_model_that_copies_shows_a_positive_copy_probe_and_ctx_gain(copier):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 32, (16, E + 1))
    drop = evaluate.copy_probe(copier, x, [16, 32], 8, 8, "cpu")
    assert drop.mean(axis=0).min() > 0.5  # nats: it retrieves the span from d back
    # text with a period of 40 tokens: the sliding window (25 to 32 tokens) never holds
    # the previous period, the full prefix always does past l_max
    y = np.tile(rng.integers(0, 32, (16, 40)), (1, 4))[:, : E + 1]
    win = evaluate.window_losses(copier, y, L_MAX, STRIDE, 8, "cpu")
    full = evaluate.per_position_losses(copier, y, 8, "cpu")
    assert metrics.ctx_gain(win, full, L_MAX).mean() > 1.0
