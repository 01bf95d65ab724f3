"""GPU check for a short lease: one command, under 10 minutes on one H100/H200, printing
each figure as it is measured and writing them all to ``--out`` (JSON).

    python scripts/gpu_check.py [--out $OUT/gpu_check.json] [--only numerics mfu pack ddp]

- numerics: chunked evaluation against the plain forward, and FlexAttention (ALiBi as a
  score_mod, compiled) against SDPA in bf16, on CUDA.
- mfu: a proxy of >= 100M parameters (d_model 768, 12 layers, 12 heads, vocab 32,768:
  85M non-embedding, 110M in all) at l_max 2,048 in bf16 with FlexAttention, training
  tokens/s and model FLOPs utilisation (6N + 6 n_l d L per token, against the measured
  bf16 matmul peak), eager and under torch.compile (compile time reported apart).
- pack: 1, 2 and 4 trials side by side on the one GPU as separate processes (what
  ``resources.gpus_per_worker: 0.25`` has Ray do; the Ray wheel is too large to carry to
  the device machine, so Ray's fractional-GPU path itself is tested on the CPU side), each
  training configs/study-gpu-short.yaml's proxy at its l_max; tokens/s of each and in all.
- ddp: the two-worker step without Ray: two processes in one torch.distributed group
  (NCCL on CUDA, gloo on the CPU), both on the one GPU, each a DeepSpeed ZeRO-2 engine
  built from the trial's own config; after a step the loss all-reduces to the same value
  on both ranks and their weights agree.

``--device cpu --tiny`` runs every section at toy sizes on the CPU through the same code
(gloo for the group; no peak, so no MFU): what the tests run."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the sweep package, when run as a script from anywhere

from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM, param_groups  # noqa: E402

# (d_model, layers, heads, vocab, l_max, rows a step): the >= 100M proxy and a toy one
MFU_MODEL = {"full": (768, 12, 12, 32768, 2048, 8), "tiny": (64, 2, 4, 512, 128, 4)}


def proxy(d: int, layers: int, heads: int, vocab: int, attention: str) -> BtlmProxyForCausalLM:
    torch.manual_seed(0)
    cfg = BtlmProxyConfig(
        vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, mup_base_width=128,
        attention=attention,
    )  # fmt: skip
    return BtlmProxyForCausalLM(cfg)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bf16_peak(device: str) -> float | None:
    """The measured bf16 matmul FLOP/s of the device (None on the CPU: no MFU there)."""
    if device != "cuda":
        return None
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    sync(device)
    return 20 * 2 * 8192**3 / (time.perf_counter() - t0)


def train_steps(model, device: str, length: int, rows: int, steps: int, compiled: bool) -> dict:
    """Tokens/s of ``steps`` training steps (bf16 autocast, AdamW), after warm-up steps
    whose time (the compile, when ``compiled``) is reported apart."""
    model = model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 3e-3, 0.1), betas=(0.9, 0.95))
    step_fn = torch.compile(model) if compiled else model
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (rows, length + 1), generator=gen).to(device)
    ctx = torch.autocast(device, dtype=torch.bfloat16)

    def step() -> float:
        with ctx:
            loss = step_fn(input_ids=x[:, :-1], labels=x[:, 1:]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    t0 = time.perf_counter()
    for _ in range(2):
        step()
    sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(device)
    sec = time.perf_counter() - t0
    return {"tokens_per_s": steps * rows * length / sec, "warmup_s": warm, "loss": loss}


def section_numerics(device: str, tiny: bool) -> dict:
    from sweep.train.evaluate import per_position_losses

    d, layers, heads, vocab, length = (64, 2, 4, 512, 512) if tiny else (256, 4, 8, 264, 4096)
    m = proxy(d, layers, heads, vocab, "sdpa").to(device).eval()
    seqs = np.random.default_rng(0).integers(0, vocab, (2, length + 1))
    full = per_position_losses(m, seqs, 2, device, chunk=None)
    chunked = per_position_losses(m, seqs, 2, device, chunk=min(512, length // 4))
    out = {"chunked_vs_full_max_diff": float(np.abs(full - chunked).max())}
    if device == "cuda":  # FlexAttention compiled is the CUDA path
        x = torch.as_tensor(seqs[:, :1024], device=device)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
            ref = m(input_ids=x).logits.float()
            m.config.attention = "flex"
            flex = m(input_ids=x).logits.float()
        out["flex_vs_sdpa_bf16_max_diff"] = float((flex - ref).abs().max())
    return out


def section_mfu(device: str, tiny: bool, steps: int) -> dict:
    d, layers, heads, vocab, length, rows = MFU_MODEL["tiny" if tiny else "full"]
    attention = "flex" if device == "cuda" else "sdpa"
    probe = proxy(d, layers, heads, vocab, attention)
    total = sum(p.numel() for p in probe.parameters())
    embed = probe.embed.weight.numel() + probe.lm_head.weight.numel()
    n = total - embed
    per_token = 6.0 * n + 6.0 * layers * d * length
    peak = bf16_peak(device)
    out = {
        "params": total, "non_embedding_params": n, "l_max": length, "rows": rows,
        "attention": attention, "peak_bf16_flops": peak,
    }  # fmt: skip
    for compiled in (False, True):
        r = train_steps(proxy(d, layers, heads, vocab, attention), device, length, rows, steps,
                        compiled)  # fmt: skip
        key = "compiled" if compiled else "eager"
        r["mfu"] = r["tokens_per_s"] * per_token / peak if peak else None
        out[key] = r
    out["compiled_over_eager"] = out["compiled"]["tokens_per_s"] / out["eager"]["tokens_per_s"]
    return out


def pack_worker(args) -> None:
    """One packed trial: configs/study-gpu-short.yaml's proxy (or a toy one) trained for
    ``--steps`` steps; prints its tokens/s as the last line (JSON)."""
    if args.tiny:
        d, layers, heads, vocab, length, rows = 64, 2, 4, 512, 128, 4
    else:
        base = yaml.safe_load((ROOT / "configs" / "study-gpu-short.yaml").read_text())["base"]
        m, s, b = base["model"], base["schedules"], base["budget"]
        d, layers, heads = m["d_model"], m["n_layers"], m["n_heads"]
        vocab, length = base["data"]["vocab_size"], s["l_max"]
        rows = b["tokens_per_step"] // length
    attention = "flex" if args.device == "cuda" else "sdpa"
    model = proxy(d, layers, heads, vocab, attention)
    r = train_steps(model, args.device, length, rows, args.steps, compiled=False)
    print(json.dumps(r))


def section_pack(args) -> dict:
    out = {}
    for n in (1, 2, 4):
        cmd = [sys.executable, __file__, "--role", "pack", "--device", args.device,
               "--steps", str(args.steps)] + (["--tiny"] if args.tiny else [])  # fmt: skip
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        each = []
        for p in procs:
            text, _ = p.communicate(timeout=300)
            if p.returncode:
                raise RuntimeError(f"a packed trial exited {p.returncode}")
            each.append(json.loads(text.strip().splitlines()[-1])["tokens_per_s"])
        out[str(n)] = {"each_tokens_per_s": each, "total_tokens_per_s": sum(each)}
        each_s = ", ".join(f"{v:,.0f}" for v in each)
        print(f"  pack {n}: {sum(each):,.0f} tokens/s in all ({each_s})", flush=True)
    out["4_over_1"] = out["4"]["total_tokens_per_s"] / out["1"]["total_tokens_per_s"]
    return out


def ddp_worker(args) -> None:
    """One rank of the two-worker step: DeepSpeed ZeRO-2 from the trial's own config, one
    step on rank-specific rows; prints the all-reduced loss and a weight checksum."""
    import deepspeed
    import torch.distributed as dist

    from sweep.config import spec as spec_mod
    from sweep.train.dsconfig import deepspeed_config

    rank = int(os.environ["RANK"])
    backend = "nccl" if args.device == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=2)
    device = "cuda:0" if args.device == "cuda" else "cpu"
    if args.device == "cuda":
        torch.cuda.set_device(0)  # both ranks on the one GPU
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["deepspeed"] = {"zero_stage": 2, "precision": "bf16" if args.device == "cuda" else "fp32"}
    sw = spec_mod.parse(raw)
    model = proxy(32, 1, 2, 264, "sdpa")
    opt = torch.optim.AdamW(param_groups(model, 3e-3, 0.1))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=deepspeed_config(sw, 2, args.device == "cuda")
    )
    L = sw.schedules.l_max
    rows = max(1, sw.budget.tokens_per_step // L // 2)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randint(0, 264, (rows, L + 1), generator=gen).to(device)
    loss = engine(input_ids=x[:, :-1], labels=x[:, 1:]).loss
    engine.backward(loss)
    engine.step()
    both = loss.detach().float().clone()
    dist.all_reduce(both)
    check = sum(float(p.detach().float().sum()) for p in engine.module.parameters())
    print(json.dumps({"rank": rank, "loss_sum": float(both), "weights_sum": check}))
    dist.destroy_process_group()


def section_ddp(args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
        cmd = [sys.executable, __file__, "--role", "ddp", "--device", args.device]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env))
    got = []
    for p in procs:
        text, _ = p.communicate(timeout=300)
        if p.returncode:
            raise RuntimeError(f"a rank of the two-worker step exited {p.returncode}")
        got.append(json.loads(text.strip().splitlines()[-1]))
    return {
        "backend": "nccl" if args.device == "cuda" else "gloo",
        "loss_sum": [g["loss_sum"] for g in got],
        "same_loss": got[0]["loss_sum"] == got[1]["loss_sum"],
        "same_weights": abs(got[0]["weights_sum"] - got[1]["weights_sum"]) < 1e-3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="JSON of every figure (default: print only)")
    ap.add_argument("--only", nargs="+", default=["numerics", "mfu", "pack", "ddp"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (the CPU tests)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 3 tiny)")
    roles = ["main", "pack", "ddp"]  # pack and ddp: the processes the main one starts
    ap.add_argument("--role", default="main", choices=roles, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.steps = args.steps or (3 if args.tiny else 20)
    if args.role == "pack":
        pack_worker(args)
        return 0
    if args.role == "ddp":
        ddp_worker(args)
        return 0
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}", flush=True)
    result: dict = {"device": name, "torch": torch.__version__}
    sections = {
        "numerics": lambda: section_numerics(args.device, args.tiny),
        "mfu": lambda: section_mfu(args.device, args.tiny, args.steps),
        "pack": lambda: section_pack(args),
        "ddp": lambda: section_ddp(args),
    }
    for key in args.only:
        t0 = time.perf_counter()
        try:
            result[key] = sections[key]()
        except Exception as exc:  # one section failing leaves the others' figures
            result[key] = {"error": f"{type(exc).__name__}: {exc}"}
        result[key]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"{key}: {json.dumps(result[key], default=str)}", flush=True)
        if args.out:  # after every section: a lease that ends mid-run keeps what was measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    failed = [k for k in args.only if "error" in result[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
