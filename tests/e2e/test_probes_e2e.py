"""The context-use probes on a tiny model trained here to copy (a few hundred steps: about
half a minute on 2 cores); on models whose reach is known by construction:
tests/unit/test_probes.py."""

import numpy as np
import pytest
import torch

from sweep.analysis import metrics
from sweep.train import evaluate
from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

L_MAX, E, STRIDE = 32, 128, 8


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
