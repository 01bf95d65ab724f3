"""Per-position evaluation: the cross-entropy at every position of held-out sequences of
length E, far past the trained l_max. Position p (1-based) predicts token p+1 from p tokens
of real context. The proxy is evaluated layer by layer in query chunks, so peak memory
grows linearly with E (no E x E attention matrix), and logits are formed a chunk at a time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweep.analysis import metrics
from sweep.config.spec import EvalSpec

CHUNK = 512  # query positions per attention chunk (256-1,024 measured within 3%)
# Every fast path agrees with the plain float32 forward to this many nats at every
# position (tests/unit/test_evaluate.py): chunks, the shared bias and keep only reorder sums.
TOLERANCE = 1e-4


@torch.no_grad()
def sequence_losses(
    model, x: torch.Tensor, y: torch.Tensor, chunk: int | None = CHUNK, keep: int = 0
) -> torch.Tensor:
    """Per-position cross-entropy (batch, T) of ``model`` on inputs ``x``, targets ``y``;
    with ``keep`` > 0 only at the last ``keep`` positions (batch, keep): the proxy's
    last layer, output layer and loss then skip every other position."""
    if keep:
        y = y[:, -keep:]
    if not hasattr(model, "hidden_states"):  # any other causal LM: a plain forward
        logits = model(input_ids=x).logits[:, -y.shape[1] :].float()
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    hidden = model.hidden_states(x, chunk=chunk or x.shape[1], keep=keep)
    out = torch.empty(y.shape, dtype=torch.float32, device=y.device)
    step = chunk or hidden.shape[1]
    for s in range(0, hidden.shape[1], step):
        logits = model.logits(hidden[:, s : s + step]).float()
        out[:, s : s + step] = F.cross_entropy(
            logits.transpose(1, 2), y[:, s : s + step], reduction="none"
        )
    return out


def cpu_precision(spec):
    """The forward's precision on the CPU for ``spec``: bf16 autocast when the spec
    trains in bf16 there (DeepSpeed's torch_autocast), else nothing. Evaluation and the
    dry run's timings run in the precision the model trains in."""
    if spec.deepspeed.cpu_autocast(False):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def per_position_losses(
    model,
    sequences: np.ndarray,
    batch_size: int,
    device,
    chunk: int | None = CHUNK,
    keep: int = 0,
) -> np.ndarray:
    """Loss matrix of shape (n_sequences, E) for ``sequences`` of shape (n, E + 1), or
    (n, ``keep``) for the last ``keep`` positions only."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(sequences), batch_size):
        batch = torch.as_tensor(sequences[i : i + batch_size], dtype=torch.long, device=device)
        losses = sequence_losses(model, batch[:, :-1], batch[:, 1:], chunk, keep)
        out.append(losses.cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float32)


@torch.no_grad()
def window_losses(
    model, sequences: np.ndarray, l_max: int, stride: int, batch_size: int, device
) -> np.ndarray:
    """Sliding-window losses (n, E - l_max) for positions p in (l_max, E]: each position
    predicted from a window of the last l_max - stride + 1 to l_max tokens only (windows
    of l_max tokens advancing by ``stride``, scoring their last ``stride`` positions).
    Against the full-prefix loss this says whether context beyond l_max is used."""
    n, total = sequences.shape
    E = total - 1
    # Window k is [a, a + l_max) with a = (k + 1) stride; it scores positions
    # l_max + k stride + 1 ... l_max + (k + 1) stride, so the scored blocks of the
    # windows in order tile (l_max, E] exactly.
    starts = np.arange(stride, E - l_max + 1, stride)
    per_batch = 4 * batch_size  # windows are l_max long, a fraction of the E-long rows
    was_training = model.training
    model.eval()
    out = np.empty((n, E - l_max), dtype=np.float32)
    for i in range(n):
        seq = torch.as_tensor(sequences[i], dtype=torch.long, device=device)
        wins = torch.stack([seq[a : a + l_max + 1] for a in starts])
        scored = [
            sequence_losses(model, w[:, :-1], w[:, 1:], CHUNK, keep=stride)
            for w in wins.split(per_batch)
        ]
        out[i] = torch.cat(scored).flatten().cpu().numpy()
    model.train(was_training)
    return out


@torch.no_grad()
def cut_context_losses(
    model, sequences: np.ndarray, l_max: int, batch_size: int, device, stride: int = 0
) -> np.ndarray:
    """Losses (n, l_max - l_max // 2) at positions p in (l_max / 2, l_max] with the context
    cut to the last c = ``metrics.context_cut(l_max)`` tokens: windows of c + stride - 1
    tokens each score their last ``stride`` positions (default c / 4), so every scored
    position sees between c and c + stride - 1 tokens of context. (A model that attends to
    its last c tokens only loses nothing to the cut.) The windows of many sequences go
    through the model together: they are short."""
    c = metrics.context_cut(l_max)
    stride = min(stride or max(1, c // 4), c)
    w, half = c + stride - 1, l_max // 2
    ends = list(range(half + stride, l_max + 1, stride))  # the last position each scores
    if not ends or ends[-1] != l_max:
        ends.append(l_max)
    firsts = [half + 1, *(e + 1 for e in ends[:-1])]
    n = len(sequences)
    seqs = torch.as_tensor(np.asarray(sequences)[:, : l_max + 1], dtype=torch.long)
    # the window ending at e: inputs e - w .. e - 1 predict tokens e - w + 1 .. e
    wins = torch.stack([seqs[:, e - w : e + 1] for e in ends], dim=1).reshape(-1, w + 1)
    was_training = model.training
    model.eval()
    per_batch = 32 * batch_size  # windows are ~l_max / 8 tokens: many fit where one row did
    scored = torch.cat(
        [
            sequence_losses(model, x[:, :-1].to(device), x[:, 1:].to(device), w, stride).cpu()
            for x in wins.split(per_batch)
        ]
    ).reshape(n, len(ends), stride)
    model.train(was_training)
    out = np.empty((n, l_max - half), dtype=np.float32)
    for k, (a, e) in enumerate(zip(firsts, ends)):
        out[:, a - half - 1 : e - half] = scored[:, k, stride - (e - a + 1) :].numpy()
    return out


def copy_distances(l_max: int, eval_length: int, span: int) -> list[int]:
    """l_max/2, l_max, 2 l_max, ... while a span repeated that far back fits in E."""
    out, d = [], l_max // 2
    while d + 2 * span <= eval_length:
        out.append(d)
        d *= 2
    return out


@torch.no_grad()
def copy_probe(
    model,
    sequences: np.ndarray,
    distances: list[int],
    span: int,
    batch_size: int,
    device,
) -> np.ndarray:
    """Retrieval at distance d (n, len(distances)): the loss drop on a span of held-out
    text placed at position d + span when the same span also appears d tokens earlier,
    against the same sequence with that earlier occurrence replaced by other held-out
    text. Same positions, same local context; only the distant copy differs, so a
    positive drop means the model retrieves from d tokens back (Olsson et al. 2022's
    in-context score is the short-range case). The first token of the span is not
    scored: nothing announces it."""
    n = len(sequences)
    out = np.zeros((n, len(distances)), dtype=np.float32)
    was_training = model.training
    model.eval()
    for j, d in enumerate(distances):
        q = span  # the first copy sits at [span, 2 span); its repeat at [d + span, d + 2 span)
        end = d + 2 * span + 1
        probe = np.array(sequences[:, :end], dtype=np.int64)
        other = np.roll(np.asarray(sequences[:, :end], dtype=np.int64), 1, axis=0)
        probe[:, d + q : d + q + span] = probe[:, q : q + span]
        control = probe.copy()
        control[:, q : q + span] = other[:, q : q + span]  # another document's text
        both = np.concatenate([probe, control])
        # the scored positions d+q .. d+q+span-2 (predicting tokens d+q+1 .. d+q+span-1)
        # are the last span of the sequence but its final one
        losses = per_position_losses(model, both, batch_size, device, keep=span)[:, :-1]
        out[:, j] = losses[n:].mean(axis=1) - losses[:n].mean(axis=1)
    model.train(was_training)
    return out


def context_probes(
    model,
    sequences: np.ndarray,
    natural: np.ndarray,
    losses: np.ndarray,
    ev: EvalSpec,
    l_max: int,
    device,
) -> dict:
    """The context-use probes on the first ``ev.probe_sequences`` eval windows: the
    sliding-window loss against the full-prefix ``losses`` (ctx_gain, per sequence and
    per position), and the copy probe on the natural windows (mask ``natural``) at
    distances l_max/2 ... E/2."""
    k = min(ev.probe_sequences, len(sequences))
    stride = ev.window_stride or l_max // 4
    win = window_losses(model, sequences[:k], l_max, stride, ev.batch_size, device)
    dists = copy_distances(l_max, ev.length(l_max), ev.copy_span)
    nat = sequences[natural][: ev.probe_sequences]
    return {
        "ctx_gain": metrics.ctx_gain(win, losses[:k], l_max),
        "ctx_gain_curve": (win - losses[:k, l_max:]).mean(axis=0),
        "copy": copy_probe(model, nat, dists, ev.copy_span, ev.batch_size, device),
        "copy_distances": dists,
    }


@dataclass
class FinalEval:
    """The final evaluation of a trial: per-position losses, their metrics and probes."""

    losses: Any
    curve: Any
    result: dict
    sparse: bool
    edges: list
    exposure: Any
    natural: Any
    probes: dict
    context_use: Any
    bin_edges: list
    by_source: dict
    eval_wall: float
    probe_wall: float


def final_evaluation(
    module,
    evset,
    device,
    precision: Callable[[], Any],
    ev: EvalSpec,
    l_max: int,
    flops: Callable[[bool], float],
    exposure: list[int],
    bin_lengths: set[int],
) -> FinalEval:
    """Per-position losses over every eval window of ``evset``, the metrics of their mean
    curve (``flops``: the trial's training FLOPs, given whether attention is sparse), the
    exposure past l_max, and the context probes; in the ``precision`` it trained in."""
    t_eval = time.time()
    with precision():
        losses = per_position_losses(module, evset.tokens, ev.batch_size, device)
    eval_wall = time.time() - t_eval
    curve = losses.mean(axis=0)
    result = metrics.all_metrics(curve, l_max)
    sparse = hasattr(module, "use_flex") and module.use_flex(device)
    result["flops"] = flops(sparse)
    edges, counts = metrics.exposure_edges(l_max), np.asarray(exposure)
    result["exposure_far"] = metrics.exposure_far(edges, counts, l_max)
    t_probe = time.time()
    natural = evset.natural()
    with precision():
        probes = context_probes(module, evset.tokens, natural, losses, ev, l_max, device)
        cut = cut_context_losses(module, evset.tokens, l_max, ev.batch_size, device)
    probe_wall = time.time() - t_probe
    context_use = metrics.context_use(cut, losses, l_max)
    result["context_use"] = float(np.mean(context_use))
    bin_edges = metrics.position_edges(len(curve), l_max, bin_lengths)
    result["ctx_gain"] = float(np.mean(probes["ctx_gain"]))
    for d, drops in zip(probes["copy_distances"], np.asarray(probes["copy"]).T):
        result[f"copy_d{d}"] = float(np.mean(drops))
    by_source = {
        src: metrics.all_metrics(losses[mask].mean(axis=0), l_max)
        for src, mask in (("natural", natural), ("repeat", ~natural))
        if mask.any()
    }
    return FinalEval(
        losses, curve, result, sparse, edges, counts, natural, probes, context_use,
        bin_edges, by_source, eval_wall, probe_wall,
    )  # fmt: skip
