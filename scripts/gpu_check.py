"""GPU check (one-GPU machine, under 3 minutes): one trial with NCCL, DeepSpeed ZeRO-2 and
bf16 through the real sweep path, then its tokens/s and model FLOPs utilisation against
the GPU's measured bf16 matmul peak, and the chunked evaluation against the plain forward.

    python scripts/gpu_check.py [--results /tmp/gpu-check] [--no-ray]

--no-ray (a machine without Ray): the trial runs through `sweep trial` (the same loop,
DeepSpeed and all, without Tune) and the two-worker step is left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the sweep package, when run as a script from anywhere


def bf16_peak() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - t0)


def check_specs() -> list[dict]:
    """The sweeps the check runs: one trial with NCCL, ZeRO-2 and bf16 at a size where MFU
    means something; then one step's worth of a two-worker trial, both workers on the one
    GPU (0.5 each), so the step loss's all-reduce runs through NCCL on device tensors."""
    base = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    one = {**base, "name": "gpu-check", "seeds": [0]}
    one["budget"] = {"tokens": 8_388_608, "tokens_per_step": 65536}
    one["model"] = {**base["model"], "d_model": 512, "n_layers": 8, "n_heads": 8,
                    "mup_base_width": 128}  # fmt: skip
    one["schedules"] = {**base["schedules"], "shapes": ["linear"], "ramp_rates": [0.5],
                        "l_max": 1024, "l_min": 128, "multiple_of": 128, "controls": [],
                        "reference": "linear-r0.5"}  # fmt: skip
    one["deepspeed"] = {"zero_stage": 2}
    one["resources"] = {"workers_per_trial": 1, "cpus_per_worker": 4, "gpus_per_worker": 1,
                        "max_concurrent_trials": 1}  # fmt: skip
    one["wandb"] = {"mode": "offline", "project": "ctx-schedules"}
    two = {**one, "name": "gpu-check-2w", "budget": {"tokens": 262_144, "tokens_per_step": 65536}}
    two["resources"] = {**one["resources"], "workers_per_trial": 2, "cpus_per_worker": 2,
                        "gpus_per_worker": 0.5}  # fmt: skip
    return [one, two]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="/tmp/gpu-check")
    ap.add_argument("--no-ray", action="store_true", help="sweep trial, no Tune, one worker")
    a = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    print(torch.cuda.get_device_name(0), torch.__version__, flush=True)

    from sweep.evaluate import per_position_losses
    from sweep.model import BtlmProxyConfig, BtlmProxyForCausalLM

    m = (
        BtlmProxyForCausalLM(
            BtlmProxyConfig(d_model=256, n_layers=4, n_heads=8, mup_base_width=256)
        )
        .cuda()
        .eval()
    )
    import numpy as np

    seqs = np.random.default_rng(0).integers(0, 256, (2, 4097))
    full = per_position_losses(m, seqs, 2, "cuda", chunk=None)
    chunked = per_position_losses(m, seqs, 2, "cuda", chunk=512)
    print(f"chunked vs full eval on CUDA, max |diff| = {np.abs(full - chunked).max():.2e}")
    x = torch.as_tensor(seqs[:, :1024], device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        m.config.attention = "sdpa"
        ref = m(input_ids=x).logits.float()
        m.config.attention = "flex"
        flex = m(input_ids=x).logits.float()
    print(
        f"FlexAttention (ALiBi score_mod, compiled) vs SDPA in bf16, max |diff| = "
        f"{(flex - ref).abs().max().item():.2e}"
    )

    codes = []
    for spec in check_specs()[: 1 if a.no_ray else None]:
        path = Path(a.results) / f"{spec['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if a.no_ray:  # a machine without Ray may lack W&B too
            spec = {**spec, "wandb": {"mode": "disabled"}}
        path.write_text(yaml.safe_dump(spec))
        how = ["trial", str(path), "--trial", "linear-r0.5-s0"] if a.no_ray else [
            "run", str(path), "--overwrite"]  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "sweep", *how, "--results", a.results], text=True)
        codes.append(r.returncode)
        for rec_path in sorted(Path(a.results, spec["name"], "trials").glob("*/record.json")):
            rec = json.loads(rec_path.read_text())
            losses = [round(h["loss"], 3) for h in rec.get("history", [])][-3:]
            print(
                f"{spec['name']} {rec['trial_id']}: {rec['status']} on {rec.get('workers')} "
                f"worker(s), last losses {losses}, error {rec.get('error')}"
            )
    rec_path = next(Path(a.results, "gpu-check", "trials").glob("linear*/record.json"))
    rec = json.loads(rec_path.read_text())
    peak = bf16_peak()
    achieved = rec["metrics"]["flops"] / rec["train_wall_s"]
    print(
        f"trial {rec['trial_id']}: {rec['status']}, {rec['tokens_per_s']:.0f} tokens/s, "
        f"{achieved / 1e12:.2f} TFLOP/s of a {peak / 1e12:.1f} TFLOP/s bf16 matmul peak "
        f"(MFU {100 * achieved / peak:.1f}%), exits {codes}"
    )
    sys.exit(max(codes))


if __name__ == "__main__":
    main()
