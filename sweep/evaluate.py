"""Per-position evaluation: the cross-entropy at every position of held-out sequences of
length E, far past the trained l_max. Position p (1-based) predicts token p+1 from p tokens
of real context."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def per_position_losses(model, sequences: np.ndarray, batch_size: int, device) -> np.ndarray:
    """Loss matrix of shape (n_sequences, E) for ``sequences`` of shape (n, E + 1)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(sequences), batch_size):
        batch = torch.as_tensor(sequences[i : i + batch_size], dtype=torch.long, device=device)
        x, y = batch[:, :-1], batch[:, 1:]
        logits = model(input_ids=x).logits.float()
        loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
        out.append(loss.cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float32)
