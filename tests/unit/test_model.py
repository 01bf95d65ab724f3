import math

import pytest
import torch
from support import ROOT

from sweep.train.model import BtlmProxyConfig, BtlmProxyForCausalLM, alibi_bias, register


def tiny(**kw):
    torch.manual_seed(0)
    return BtlmProxyForCausalLM(
        BtlmProxyConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, mup_base_width=32, **kw)
    ).eval()


@pytest.mark.parametrize("position", ["alibi", "none"])
def test_causal_future_tokens_do_not_change_earlier_logits(position):
    m = tiny(position=position)
    x = torch.randint(0, 64, (2, 40))
    y = x.clone()
    y[:, 25:] = torch.randint(0, 64, (2, 15))
    with torch.no_grad():
        a, b = m(input_ids=x).logits, m(input_ids=y).logits
    assert torch.allclose(a[:, :25], b[:, :25], atol=1e-6)
    assert not torch.allclose(a[:, 25:], b[:, 25:])


@pytest.mark.parametrize("n_heads", [1, 2, 4, 8, 16])
def test_alibi_bias_matches_formula(n_heads):
    L = 12
    bias = alibi_bias(n_heads, L)
    for h in range(n_heads):
        slope = 2.0 ** (-8.0 * (h + 1) / n_heads)
        for i in range(L):
            for j in range(L):
                expect = -slope * (i - j) if j <= i else -math.inf
                assert bias[h, i, j].item() == pytest.approx(expect)


def test_loss_ignores_padded_targets():
    m = tiny()
    x = torch.randint(0, 64, (1, 16))
    y = x.roll(-1, 1)
    full = m(input_ids=x, labels=y).loss
    y2 = y.clone()
    y2[0, 8:] = -100
    part = m(input_ids=x, labels=y2).loss
    logits = m(input_ids=x).logits
    ref = torch.nn.functional.cross_entropy(logits[0, :8], y[0, :8])
    assert part.item() == pytest.approx(ref.item(), rel=1e-5)
    assert full.item() != pytest.approx(part.item())


def test_mup_groups_scale_hidden_lr():
    m = BtlmProxyForCausalLM(
        BtlmProxyConfig(vocab_size=64, d_model=128, n_heads=4, n_layers=1, mup_base_width=32)
    )
    groups = m.param_groups(1e-2, 0.1)
    assert groups[0]["lr"] == pytest.approx(1e-2 / 4)
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in m.parameters())


def test_save_and_load_round_trip(tmp_path):
    register()
    from transformers import AutoModelForCausalLM

    m = tiny()
    m.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 64, (1, 20))
    with torch.no_grad():
        assert torch.allclose(m(input_ids=x).logits, loaded(input_ids=x).logits)


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="not divisible"):
        BtlmProxyForCausalLM(BtlmProxyConfig(d_model=30, n_heads=4))


@pytest.mark.parametrize("position", ["alibi", "rope", "none"])
def test_chunked_evaluation_matches_full_forward(position):
    import numpy as np

    from sweep.train.evaluate import per_position_losses

    m = tiny(position=position)
    seqs = np.random.default_rng(0).integers(0, 64, (3, 301))
    full = per_position_losses(m, seqs, 2, "cpu", chunk=None)
    chunked = per_position_losses(m, seqs, 2, "cpu", chunk=64)
    assert full.shape == (3, 300)
    np.testing.assert_allclose(chunked, full, atol=1e-4)


def test_rope_is_relative():
    """RoPE attention scores depend only on the offset between query and key."""
    from sweep.train.model import apply_rope, rope_tables

    cos, sin = rope_tables(8, 40)
    q, k = torch.randn(8), torch.randn(8)

    def score(i, j):
        return (apply_rope(q, cos[i], sin[i]) * apply_rope(k, cos[j], sin[j])).sum()

    assert score(10, 3).item() == pytest.approx(score(30, 23).item(), rel=1e-5)


@pytest.mark.parametrize(
    "arch,extra",
    [
        ("falcon", {"alibi": True, "new_decoder_architecture": False, "parallel_attn": False}),
        ("llama", {}),
    ],
)
def test_transformers_architectures_as_proxies(arch, extra):
    from sweep.config.spec import ModelSpec
    from sweep.train.model import build, non_embedding_params, param_groups

    m = build(ModelSpec(arch=arch, d_model=32, n_layers=2, n_heads=4, hf_config=extra), 257)
    assert m.config.model_type == arch and m.config.hidden_size == 32
    assert m.config.vocab_size == 264
    if arch == "falcon":
        assert m.config.alibi
    opt = torch.optim.AdamW(param_groups(m, 1e-3, 0.1))
    x = torch.randint(0, 257, (2, 16))
    logits = m(input_ids=x).logits
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.roll(-1, 1).flatten()).backward()
    opt.step()
    n = non_embedding_params(m)
    assert 0 < n < sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("position", ["alibi", "rope", "none"])
def test_document_mask_isolates_documents(position):
    """With doc masking, the second document of a packed row gets exactly the logits it
    gets alone: nothing attends across the boundary (ALiBi and RoPE are relative)."""
    from sweep.train.data import Batcher

    m = tiny(position=position)
    eos = 63
    a, b = torch.randint(0, 60, (1, 11)), torch.randint(0, 60, (1, 20))
    row = torch.cat([a, torch.tensor([[eos]]), b], dim=1)
    doc = torch.as_tensor(Batcher.doc_ids(row.numpy(), eos))
    assert doc[0, 11].item() == 0 and doc[0, 12].item() == 1
    with torch.no_grad():
        packed = m(input_ids=row, doc_ids=doc).logits
        alone = m(input_ids=b).logits
        leaky = m(input_ids=row).logits
    assert torch.allclose(packed[:, 12:], alone, atol=1e-5)
    assert not torch.allclose(leaky[:, 12:], alone, atol=1e-3)


@pytest.mark.parametrize("position", ["alibi", "rope", "none"])
def test_flex_attention_agrees_with_sdpa(position):
    """FlexAttention (the bias as a score_mod, no L x L tensor; the default on CUDA) and
    SDPA with the materialised bias give the same model, with and without doc masking."""
    m = tiny(position=position)
    x = torch.randint(0, 63, (2, 48))
    x[0, 20] = 63
    from sweep.train.data import Batcher

    doc = torch.as_tensor(Batcher.doc_ids(x.numpy(), 63))
    with torch.no_grad():
        ref = m(input_ids=x).logits
        ref_doc = m(input_ids=x, doc_ids=doc).logits
        m.config.attention = "flex"
        flex = m(input_ids=x).logits
        flex_doc = m(input_ids=x, doc_ids=doc).logits
    assert torch.allclose(flex, ref, atol=1e-4)
    assert torch.allclose(flex_doc, ref_doc, atol=1e-4)


@pytest.mark.parametrize(
    "n_heads,expect",
    [
        # Press et al.: the 4-head slopes, then every other slope of the 8-head set
        (6, [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]),
        (12, [2 ** -(k * 8 / 8) for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]),
    ],
)
def test_alibi_slopes_for_heads_not_a_power_of_two(n_heads, expect):
    from sweep.train.model import alibi_slopes

    assert alibi_slopes(n_heads).tolist() == pytest.approx(expect)


def test_every_model_field_of_the_spec_reaches_the_built_model():
    import yaml

    from sweep.config import spec
    from sweep.train.model import build

    raw = yaml.safe_load(open(ROOT / "configs" / "local.yaml"))
    fields = dict(
        d_model=96, n_layers=3, n_heads=4, position="rope", ffn_mult=3.0,
        mup_base_width=48, init_std=0.01, embeddings_scale=5.0, mup_output_alpha=2.5,
        rope_base=500000.0, attention="sdpa",
    )  # fmt: skip
    raw["model"].update(fields)
    cfg = build(spec.parse(raw).model, 257).config
    for key, val in fields.items():
        assert getattr(cfg, key) == val, key
    # rope_base is used, not only stored: another base gives other logits
    torch.manual_seed(0)
    x = torch.randint(0, 257, (1, 64))
    outs = []
    for base in (10000.0, 500000.0):
        raw["model"]["rope_base"] = base
        torch.manual_seed(1)
        m = build(spec.parse(raw).model, 257).eval()
        with torch.no_grad():
            for block in m.blocks:  # sharpen attention: a fresh model's is near uniform
                block.attn.qkv.weight.mul_(30)
            outs.append(m(x).logits)
    assert (outs[0] - outs[1]).abs().max() > 1e-2
