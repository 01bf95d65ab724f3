"""What a study trial's evaluation costs, before and after the shared-bias / scored-
positions-only evaluation, side by side in one process on the same windows and model.

    python bench/eval_cost.py [--sequences 128 --probe-sequences 32 --repeats 3]

The model and sizes are configs/study.yaml's (d_model 128, 2 layers, 4 heads, ALiBi,
l_max 256, E = 16 x l_max = 4,096, batch 4, bf16 autocast as the study trains, one
thread). "before" is the evaluation as it was up to this change, kept here to compare
against: the position bias built and cast for every chunk of every layer, and the probes
through the full forward (every position of every layer, then sliced). "after" is
sweep.train.evaluate. Repeats alternate the order; medians are printed, with each part's
ratio, the largest |after - before| and |after - float32 reference| per position, the
profile's top operators of the after path, and the share of a trial's wall time that
evaluation + probes take given its training time (``--train-s``; default 58 s, the
1.31M-token bf16 study trial this was first measured on; the 10.5M-token study trial
trains for ~690 s)."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from sweep.train import evaluate
from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM, position_bias

L_MAX, MULTIPLE, BATCH, SPAN = 256, 16, 4, 64


@torch.no_grad()
def before_hidden(model, x: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """The chunked forward as it was: a fresh bias (built in float32, cast) per chunk and
    layer. ``chunk`` None: the full forward (the training path)."""
    if chunk is None:
        return model.hidden_states(x)
    cfg, t = model.config, x.shape[1]
    h = model.embed(x) * cfg.embeddings_scale
    for blk in model.blocks:
        q, k, v = blk.attn.project(blk.norm1(h))
        y = torch.empty_like(q)
        for s in range(0, t, chunk):
            e = min(t, s + chunk)
            bias = position_bias(cfg.position, cfg.n_heads, s, e, e, h.device, h.dtype)
            y[:, :, s:e] = F.scaled_dot_product_attention(
                q[:, :, s:e], k[:, :, :e], v[:, :, :e], attn_mask=bias, scale=blk.attn.scale
            )
        h = h + blk.attn.merge(y)
        for s in range(0, t, chunk):
            h[:, s : s + chunk] += blk.mlp(blk.norm2(h[:, s : s + chunk]))
    return model.norm_f(h)


@torch.no_grad()
def before_losses(model, seqs: np.ndarray, chunk: int | None, batch: int) -> np.ndarray:
    out = []
    for i in range(0, len(seqs), batch):
        b = torch.as_tensor(seqs[i : i + batch], dtype=torch.long)
        logits = model.logits(before_hidden(model, b[:, :-1], chunk)).float()
        out.append(F.cross_entropy(logits.transpose(1, 2), b[:, 1:], reduction="none").numpy())
    return np.concatenate(out)


def before_window(model, seqs: np.ndarray, stride: int) -> np.ndarray:
    E = seqs.shape[1] - 1
    starts = np.arange(stride, E - L_MAX + 1, stride)
    out = np.empty((len(seqs), E - L_MAX), dtype=np.float32)
    for i, row in enumerate(seqs):
        wins = np.stack([row[a : a + L_MAX + 1] for a in starts])
        out[i] = before_losses(model, wins, None, 4 * BATCH)[:, -stride:].reshape(-1)
    return out


def before_copy(model, seqs: np.ndarray, distances: list[int]) -> np.ndarray:
    n, q = len(seqs), SPAN
    out = np.zeros((n, len(distances)), dtype=np.float32)
    for j, d in enumerate(distances):
        end = d + 2 * SPAN + 1
        probe = np.array(seqs[:, :end])
        probe[:, d + q : d + q + SPAN] = probe[:, q : q + SPAN]
        control = probe.copy()
        control[:, q : q + SPAN] = np.roll(seqs[:, :end], 1, axis=0)[:, q : q + SPAN]
        losses = before_losses(model, np.concatenate([probe, control]), None, BATCH)
        s = slice(d + q, d + q + SPAN - 1)
        out[:, j] = losses[n:, s].mean(1) - losses[:n, s].mean(1)
    return out


def parts(model, seqs: np.ndarray, probes: int, which: str) -> dict[str, tuple[float, object]]:
    """Seconds and result of each part of a trial's evaluation, ``which`` implementation."""
    stride, dists = L_MAX // 4, evaluate.copy_distances(L_MAX, seqs.shape[1] - 1, SPAN)
    jobs = {
        "per_position": (
            lambda: before_losses(model, seqs, evaluate.CHUNK, BATCH),
            lambda: evaluate.per_position_losses(model, seqs, BATCH, "cpu"),
        ),
        "window (ctx_gain)": (
            lambda: before_window(model, seqs[:probes], stride),
            lambda: evaluate.window_losses(model, seqs[:probes], L_MAX, stride, BATCH, "cpu"),
        ),
        "copy probe": (
            lambda: before_copy(model, seqs[:probes], dists),
            lambda: evaluate.copy_probe(model, seqs[:probes], dists, SPAN, BATCH, "cpu"),
        ),
    }
    out = {}
    for name, (before, after) in jobs.items():
        fn = before if which == "before" else after
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            result = fn()
        out[name] = (time.perf_counter() - t, result)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=128)
    ap.add_argument("--probe-sequences", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-s", type=float, default=58.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BtlmProxyForCausalLM(
        BtlmProxyConfig(vocab_size=264, d_model=128, n_layers=2, n_heads=4, attention="sdpa")
    ).eval()
    E = MULTIPLE * L_MAX
    seqs = np.random.default_rng(0).integers(0, 256, (args.sequences, E + 1))
    times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    results = {}
    for r in range(args.repeats):
        for which in ("before", "after") if r % 2 == 0 else ("after", "before"):
            for name, (sec, res) in parts(model, seqs, args.probe_sequences, which).items():
                times[which].setdefault(name, []).append(sec)
                results[which, name] = res
            print(f"repeat {r + 1}/{args.repeats} {which} done", flush=True)
    print(f"\n{'part':<20} {'before s':>9} {'after s':>8} {'ratio':>6} {'max |diff|':>11}")
    total = {"before": 0.0, "after": 0.0}
    for name in times["after"]:
        b, a = (statistics.median(times[w][name]) for w in ("before", "after"))
        total["before"] += b
        total["after"] += a
        diff = np.abs(np.asarray(results["after", name]) - np.asarray(results["before", name]))
        print(f"{name:<20} {b:>9.2f} {a:>8.2f} {b / a:>5.2f}x {diff.max():>11.1e}")
    b, a = total["before"], total["after"]
    print(f"{'total':<20} {b:>9.2f} {a:>8.2f} {b / a:>5.2f}x")
    for which, t in total.items():
        share = t / (t + args.train_s)
        print(f"share of a trial training {args.train_s:.0f} s, {which}: {share:.1%}")
    # against the float32 reference (the plain forward), on a few windows
    ref_rows = seqs[:4]
    ref = before_losses(model, ref_rows, None, BATCH)
    fast = evaluate.per_position_losses(model, ref_rows, BATCH, "cpu")
    print(f"after vs float32 full forward, per position: max |diff| {np.abs(fast - ref).max():.1e}")
    with torch.profiler.profile() as prof, torch.autocast("cpu", dtype=torch.bfloat16):
        evaluate.per_position_losses(model, seqs[:8], BATCH, "cpu")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
