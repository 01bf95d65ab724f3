"""Per-position evaluation: the cross-entropy at every position of held-out sequences of
length E, far past the trained l_max. Position p (1-based) predicts token p+1 from p tokens
of real context. The proxy is evaluated layer by layer in query chunks, so peak memory
grows linearly with E (no E x E attention matrix), and logits are formed a chunk at a time."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 512  # query positions per attention chunk


@torch.no_grad()
def sequence_losses(model, x: torch.Tensor, y: torch.Tensor, chunk: int | None = CHUNK):
    """Per-position cross-entropy (batch, T) of ``model`` on inputs ``x``, targets ``y``."""
    if not hasattr(model, "hidden_states"):  # any other causal LM: a plain forward
        logits = model(input_ids=x).logits.float()
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    hidden = model.hidden_states(x, chunk=chunk)
    out = torch.empty(y.shape, dtype=torch.float32, device=y.device)
    step = chunk or hidden.shape[1]
    for s in range(0, hidden.shape[1], step):
        logits = model.logits(hidden[:, s : s + step]).float()
        out[:, s : s + step] = F.cross_entropy(
            logits.transpose(1, 2), y[:, s : s + step], reduction="none"
        )
    return out


@torch.no_grad()
def per_position_losses(
    model, sequences: np.ndarray, batch_size: int, device, chunk: int | None = CHUNK
) -> np.ndarray:
    """Loss matrix of shape (n_sequences, E) for ``sequences`` of shape (n, E + 1)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(sequences), batch_size):
        batch = torch.as_tensor(sequences[i : i + batch_size], dtype=torch.long, device=device)
        out.append(sequence_losses(model, batch[:, :-1], batch[:, 1:], chunk).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float32)
