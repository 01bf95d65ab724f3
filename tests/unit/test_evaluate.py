"""Every evaluation path against the reference evaluation: the model's own full-sequence
forward in float32 (the training path: one attention call over the whole row, the bias
materialised whole). The fast paths (query chunks with one shared bias tensor, the last
layer computing only the scored positions) must agree with it to ``evaluate.TOLERANCE``
nats at every position, for every position encoding and for a window-masked model."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import tiny_proxy

from sweep.analysis import metrics
from sweep.train import evaluate

E, L_MAX = 300, 64  # E not a multiple of the chunk: the last chunk is short


def sharp(position="alibi", n_layers=2, **config):
    """A seeded proxy with weights scaled up so that attention is peaked and position
    matters: random small weights attend almost uniformly and would hide a wrong bias."""
    m = tiny_proxy(n_layers, position=position, **config).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 2:
                p.mul_(4.0)
    return m


def reference(model, seqs: np.ndarray) -> np.ndarray:
    """Loss at every position from the plain forward, float32, no chunks, no keep."""
    x = torch.as_tensor(seqs, dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=x[:, :-1]).logits.float()
    return F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none").numpy()


def rows(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 64, (n, E + 1))


MODELS = {
    "alibi": lambda: sharp("alibi"),
    "rope": lambda: sharp("rope"),
    "none": lambda: sharp("none"),
    "alibi-window": lambda: sharp("alibi", attn_window=40),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("chunk", [64, 100, 512])
def test_per_position_losses_match_the_reference(name, chunk):
    m, x = MODELS[name](), rows()
    ref = reference(m, x)
    assert ref.std() > 0.3  # a sharp model: losses differ by position and row
    got = evaluate.per_position_losses(m, x, 3, "cpu", chunk=chunk)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= evaluate.TOLERANCE


@pytest.mark.parametrize("keep", [1, 17, 64, E])
def test_keeping_the_last_positions_equals_slicing_the_reference(keep):
    m, x = sharp(), rows()
    got = evaluate.per_position_losses(m, x, 4, "cpu", chunk=64, keep=keep)
    assert got.shape == (len(x), keep)
    assert np.abs(got - reference(m, x)[:, -keep:]).max() <= evaluate.TOLERANCE


def test_keep_needs_chunked_inference():
    m = sharp()
    with pytest.raises(ValueError, match="keep"):
        m.hidden_states(torch.zeros(1, 8, dtype=torch.long), keep=4)


def test_window_losses_match_reference_windows():
    m, x = sharp(), rows(2)
    stride = 4  # divides E - l_max, as l_max / 4 does for E = k l_max
    win = evaluate.window_losses(m, x, L_MAX, stride, 4, "cpu")
    for p in (L_MAX + 1, L_MAX + stride + 2, 200, E):  # 1-based positions past l_max
        j = p - 1
        ctx = L_MAX - stride + 1 + (j - L_MAX) % stride
        one = reference(m, x[:, j + 1 - ctx : j + 2])[:, -1]
        assert np.abs(win[:, p - L_MAX - 1] - one).max() <= evaluate.TOLERANCE


def test_cut_context_losses_match_reference_windows():
    m, x = sharp(), rows(3)
    c = metrics.context_cut(L_MAX)
    stride = max(1, c // 4)
    cut = evaluate.cut_context_losses(m, x, L_MAX, 4, "cpu")
    assert cut.shape == (3, L_MAX - L_MAX // 2)
    for p in range(L_MAX // 2 + 1, L_MAX + 1):
        # the window scoring p ends at the first e = half + k stride >= p (or at l_max)
        half = L_MAX // 2
        e = min(L_MAX, half + stride * -(-(p - half) // stride))
        w = c + stride - 1
        one = reference(m, x[:, e - w : e + 1])[:, w - 1 - (e - p)]
        assert np.abs(cut[:, p - half - 1] - one).max() <= evaluate.TOLERANCE


def test_copy_probe_matches_the_reference_forward():
    m, x = sharp(), rows(6)
    span, dists = 8, [16, 64]
    got = evaluate.copy_probe(m, x, dists, span, 4, "cpu")
    for j, d in enumerate(dists):
        end = d + 2 * span + 1
        probe = x[:, :end].copy()
        probe[:, d + span : d + 2 * span] = probe[:, span : 2 * span]
        control = probe.copy()
        control[:, span : 2 * span] = np.roll(x[:, :end], 1, axis=0)[:, span : 2 * span]
        scored = slice(d + span, d + 2 * span - 1)
        drop = reference(m, control)[:, scored].mean(1) - reference(m, probe)[:, scored].mean(1)
        assert np.abs(got[:, j] - drop).max() <= 2 * evaluate.TOLERANCE
    assert np.abs(got).max() > 1e-3  # the sharp model's losses do move with the copy
