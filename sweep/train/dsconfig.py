"""The DeepSpeed config a sweep spec implies, as a plain dict (no DeepSpeed import): the
trials train with it and the export writes it for the scale-up run."""

from __future__ import annotations

from sweep.config.spec import SweepSpec


def deepspeed_config(spec: SweepSpec, world: int, use_gpu: bool) -> dict:
    micro = spec.budget.micro_batches
    rows_at_lmax = max(1, spec.budget.tokens_per_step // spec.schedules.l_max // world // micro)
    ds = spec.deepspeed
    cfg = {
        "train_micro_batch_size_per_gpu": rows_at_lmax,
        "gradient_accumulation_steps": micro,
        "gradient_clipping": spec.optim.grad_clip,
        "zero_optimization": {"stage": spec.deepspeed.zero_stage},
        # The muP param groups need a client AdamW; DeepSpeed's fused one is CUDA-only.
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": ds.bf16_weights(use_gpu)},
        "steps_per_print": 10**12,
        "wall_clock_breakdown": False,
    }
    if ds.cpu_autocast(use_gpu):
        cfg["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    return cfg
