"""muP coordinate check: after a few Adam steps, the typical size of every layer's
activations stays in a narrow band as width goes from 64 to 512 (standard parametrisation
would let them grow with width). It trains a dozen models up to width 512: e2e for time."""

import torch

from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM

WIDTHS = (64, 128, 256, 512)


def activation_scales(width: int, mup: bool, steps: int = 5) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = BtlmProxyConfig(
        vocab_size=264, d_model=width, n_layers=2, n_heads=4, mup_base_width=64 if mup else width
    )
    model = BtlmProxyForCausalLM(cfg)
    opt = torch.optim.AdamW(model.param_groups(1e-2, 0.0))
    data = torch.randint(0, 256, (8, 65), generator=torch.Generator().manual_seed(1))
    x, y = data[:, :-1], data[:, 1:]
    for _ in range(steps):
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    scales: dict[str, float] = {}
    hooks = [
        blk.register_forward_hook(
            lambda m, i, o, k=f"block{j}": scales.__setitem__(k, o.abs().mean().item())
        )
        for j, blk in enumerate(model.blocks)
    ]
    with torch.no_grad():
        scales["logits"] = model(input_ids=x).logits.abs().mean().item()
    for h in hooks:
        h.remove()
    return scales


def spread(mup: bool) -> dict[str, float]:
    runs = [activation_scales(w, mup) for w in WIDTHS]
    return {k: max(r[k] for r in runs) / min(r[k] for r in runs) for k in runs[0]}


def test_mup_activations_stay_in_a_band_across_widths():
    band = spread(mup=True)
    assert all(v < 2.0 for v in band.values()), band


def test_standard_parametrisation_does_not():
    """The control: without muP's width scaling the logits grow with width."""
    assert spread(mup=False)["logits"] > 2 * spread(mup=True)["logits"]
