"""BTLM-style proxy decoder: pre-norm, ALiBi attention, SwiGLU MLP and muP.

Written on transformers' ``PreTrainedConfig`` / ``PreTrainedModel`` conventions so the
proxy saves, loads and registers like any causal LM. muP follows BTLM (Dey et al. 2023):
with ``width_mult = d_model / mup_base_width`` the hidden matrices are initialised with
std ``init_std / sqrt(width_mult)``, their learning rate is divided by ``width_mult``,
attention logits use ``1 / d_head`` instead of ``1 / sqrt(d_head)``, and output logits are
multiplied by ``mup_output_alpha / width_mult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput


class BtlmProxyConfig(PreTrainedConfig):
    model_type = "btlm-proxy"

    def __init__(
        self,
        vocab_size: int = 264,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        ffn_mult: float = 8 / 3,
        position: str = "alibi",
        mup_base_width: int = 128,
        init_std: float = 0.02,
        embeddings_scale: float = 10.0,
        mup_output_alpha: float = 1.0,
        norm_eps: float = 1e-5,
        attention: str = "auto",
        attn_window: int = 0,
        rope_base: float = 10000.0,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_mult = ffn_mult
        self.position = position
        self.mup_base_width = mup_base_width
        self.init_std = init_std
        self.embeddings_scale = embeddings_scale
        self.mup_output_alpha = mup_output_alpha
        self.norm_eps = norm_eps
        self.attention = attention  # sdpa | flex | auto (flex on CUDA, sdpa elsewhere)
        self.attn_window = attn_window  # > 0: each query sees only its last this many keys
        self.rope_base = rope_base  # position "rope": the base of its frequencies
        super().__init__(**kwargs)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_ff(self) -> int:
        # SwiGLU hidden size, rounded up to a multiple of 32 for matmul-friendly shapes.
        return 32 * math.ceil(self.ffn_mult * self.d_model / 32)

    @property
    def width_mult(self) -> float:
        return self.d_model / self.mup_base_width


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Head slopes of Press et al. 2022: 2^(-8h/n) for h = 1..n when n is a power of two;
    otherwise the closest power of two's slopes plus every other slope of the next one."""

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    if n_heads & (n_heads - 1) == 0:
        return torch.tensor(power_of_two(n_heads))
    lower = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * lower)[0::2][: n_heads - lower]
    return torch.tensor(power_of_two(lower) + extra)


def position_bias(
    position: str,
    n_heads: int,
    q_start: int,
    q_end: int,
    k_end: int,
    device=None,
    dtype=torch.float32,
    window: int = 0,
) -> torch.Tensor:
    """Additive causal bias for queries q_start..q_end-1 over keys 0..k_end-1: ALiBi's
    -slope_h * (i - j) (shape (1, n_heads, q, k)), or zeros for rope/none (shape
    (1, 1, q, k)); -inf above the diagonal and, with ``window`` > 0, at distances of
    ``window`` or more. Rows of a long sequence can be built a chunk at a time. Four
    dimensions, because only a 4-D mask lets PyTorch's CPU flash-attention kernel run (a
    3-D one falls back to the math path at half the speed). Distances and the bias are
    computed in float32 and cast at the end: bf16 rounds distances above 256 to whole
    multiples of 2, 4, ..., which would bend ALiBi's line far past l_max."""
    i = torch.arange(q_start, q_end, device=device)[:, None]
    j = torch.arange(k_end, device=device)[None, :]
    dist = (i - j).to(torch.float32)
    if position == "alibi":
        bias = -alibi_slopes(n_heads).to(device=device)[:, None, None] * dist
    else:
        bias = torch.zeros_like(dist)[None]
    masked = (dist < 0) | (dist >= window) if window > 0 else dist < 0
    return bias.masked_fill(masked, float("-inf"))[None].to(dtype)


class ChunkBias:
    """The position bias of any query chunk of one length-``t`` sequence, as views of one
    tensor: the bias depends only on the distance i - j, so the rows of the last
    ``chunk`` queries over all ``t`` keys hold every chunk's bias (a chunk ending at e
    is their last e keys). Built once per forward and dtype, in float32 and then cast,
    as ``position_bias`` does; the per-chunk construction and cast it replaces cost
    about a quarter of a CPU evaluation."""

    def __init__(self, position: str, n_heads: int, t: int, chunk: int, device, window: int):
        self.t, self.chunk = t, chunk
        self.rows = position_bias(position, n_heads, t - chunk, t, t, device, window=window)
        self.cast: dict[torch.dtype, torch.Tensor] = {}

    def __call__(self, s: int, e: int, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self.cast:
            self.cast[dtype] = self.rows.to(dtype)
        # queries s..e-1 are rows chunk-(e-s).. of queries t-chunk..; keys shift by t-e
        return self.cast[dtype][:, :, self.chunk - (e - s) :, self.t - e :]


def alibi_bias(n_heads: int, length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Causal ALiBi bias of shape (n_heads, L, L): -slope_h * (i - j) for j <= i, -inf above."""
    return position_bias("alibi", n_heads, 0, length, length, device, dtype)[0]


def rope_tables(d_head: int, length: int, device=None, base: float = 10000.0):
    """cos and sin of rotary position embedding angles, each (length, d_head / 2)."""
    inv = 1.0 / base ** (torch.arange(0, d_head, 2, device=device, dtype=torch.float32) / d_head)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: BtlmProxyConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.scale = 1.0 / self.d_head  # muP: 1/d_head keeps logits O(1) as width grows

    def project(self, x: torch.Tensor, rope=None) -> tuple[torch.Tensor, ...]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.d_head))

    def forward(self, x: torch.Tensor, attend: Callable, rope=None) -> torch.Tensor:
        q, k, v = self.project(x, rope)
        return self.merge(attend(q, k, v, self.scale))


class SwiGLU(nn.Module):
    def __init__(self, cfg: BtlmProxyConfig):
        super().__init__()
        # Two matrices rather than one fused and split: the split's backward is a
        # concatenation that costs more on the CPU than the second matmul launch saves.
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: BtlmProxyConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, attend: Callable, rope=None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attend, rope)
        return x + self.mlp(self.norm2(x))

    @torch.no_grad()
    def forward_chunked(
        self, x: torch.Tensor, bias_rows: Callable, rope, chunk: int, keep: int = 0
    ) -> torch.Tensor:
        """The same block, for inference on long sequences: attention a chunk of queries
        at a time against all earlier keys, the MLP a chunk of positions at a time, so
        no L x L tensor exists and peak memory grows linearly with L. With ``keep`` > 0
        only the last ``keep`` positions are computed and returned (keys and values still
        come from every position): the last layer of an evaluation that scores only
        those."""
        t = x.shape[1]
        first = t - keep if 0 < keep < t else 0
        q, k, v = self.attn.project(self.norm1(x), rope)
        q, x = q[:, :, first:], x[:, first:]
        y = torch.empty_like(q)
        for s in range(first, t, chunk):
            e = min(t, s + chunk)
            y[:, :, s - first : e - first] = F.scaled_dot_product_attention(
                q[:, :, s - first : e - first],
                k[:, :, :e],
                v[:, :, :e],
                attn_mask=bias_rows(s, e, q.dtype),
                scale=self.attn.scale,
            )
        del q, k, v
        x = x + self.attn.merge(y)
        for s in range(0, x.shape[1], chunk):
            x[:, s : s + chunk] += self.mlp(self.norm2(x[:, s : s + chunk]))
        return x


class BtlmProxyForCausalLM(PreTrainedModel):
    config_class = BtlmProxyConfig
    base_model_prefix = "btlm_proxy"
    _no_split_modules = ["Block"]

    def __init__(self, config: BtlmProxyConfig):
        super().__init__(config)
        if config.d_model % config.n_heads:
            raise ValueError(
                f"d_model {config.d_model} is not divisible by n_heads {config.n_heads}"
            )
        if config.position not in ("alibi", "rope", "none"):
            raise ValueError(f"position {config.position!r} is not supported by btlm-proxy")
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm_f = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        cfg = self.config
        hidden_std = cfg.init_std / math.sqrt(cfg.width_mult)
        if isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, cfg.init_std)
        elif isinstance(module, nn.Linear):
            std = hidden_std
            if module is self.lm_head:
                std = cfg.init_std
            elif any(module is blk.attn.proj or module is blk.mlp.down for blk in self.blocks):
                std = hidden_std / math.sqrt(2 * cfg.n_layers)  # GPT-2 residual scaling
            module.weight.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        chunk: int | None = None,
        doc_ids: torch.Tensor | None = None,
        window: int | None = None,
        keep: int = 0,
    ) -> torch.Tensor:
        """Final hidden states; with ``chunk``, computed layer by layer in query chunks
        (inference only) so that memory grows linearly with sequence length, and with
        ``keep`` > 0 only for the last ``keep`` positions (the last layer computes no
        other queries). With ``doc_ids`` (batch, L), no position attends across a
        document boundary; with ``window`` (> 0) each query sees only its last ``window``
        keys (the config's ``attn_window`` when None: window mode sets it per training
        step)."""
        cfg = self.config
        window = cfg.attn_window if window is None else window
        if doc_ids is not None and chunk is not None:
            raise ValueError("document masking is for training; evaluate without doc_ids")
        if keep and chunk is None:
            raise ValueError("keep is for chunked inference; pass chunk as well")
        x = self.embed(input_ids) * cfg.embeddings_scale
        t = input_ids.shape[1]
        rope = None
        if cfg.position == "rope":
            rope = rope_tables(cfg.d_head, t, x.device, cfg.rope_base)
        if chunk is None:
            attend = self.attention_fn(t, x.device, x.dtype, doc_ids, window)  # all layers
            for block in self.blocks:
                x = block(x, attend, rope)
            return self.norm_f(x)
        rows = ChunkBias(cfg.position, cfg.n_heads, t, min(chunk, t), x.device, window)
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block.forward_chunked(x, rows, rope, chunk, keep if last else 0)
        return self.norm_f(x)

    def use_flex(self, device: torch.device) -> bool:
        mode = self.config.attention
        return mode == "flex" or (mode == "auto" and device.type == "cuda")

    def attention_fn(self, t: int, device, dtype, doc_ids=None, window: int = 0) -> Callable:
        """Causal attention with this model's position bias (and optional document
        mask) over sequences of length ``t``: SDPA with the bias materialised once per
        forward, or FlexAttention with the bias as a ``score_mod``, so that no L x L
        bias tensor exists (the default on CUDA)."""
        cfg = self.config
        if not self.use_flex(device):
            bias = position_bias(cfg.position, cfg.n_heads, 0, t, t, device, dtype, window)
            if doc_ids is not None:
                same = doc_ids[:, None, :, None] == doc_ids[:, None, None, :]
                bias = bias.masked_fill(~same, float("-inf"))  # (batch, heads, L, L)

            def sdpa(q, k, v, scale):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)

            return sdpa
        # deferred: FlexAttention loads only for a model that uses it (CUDA by default)
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        slopes = alibi_slopes(cfg.n_heads).to(device=device, dtype=torch.float32)
        alibi = cfg.position == "alibi"

        def score_mod(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx - kv_idx) if alibi else score

        def mask_mod(b, h, q_idx, kv_idx):
            keep = q_idx >= kv_idx
            if window > 0:
                keep = keep & (q_idx - kv_idx < window)
            if doc_ids is not None:
                keep = keep & (doc_ids[b, q_idx] == doc_ids[b, kv_idx])
            return keep

        n_b = doc_ids.shape[0] if doc_ids is not None else None
        block_mask = create_block_mask(mask_mod, n_b, None, t, t, device=str(device))
        flex = torch.compile(flex_attention) if device.type == "cuda" else flex_attention

        def attend(q, k, v, scale):
            return flex(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)

        return attend

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden) * (self.config.mup_output_alpha / self.config.width_mult)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        window: int | None = None,
        **_,
    ) -> CausalLMOutput:
        """``labels`` are already shifted (targets aligned with inputs); -100 is ignored."""
        logits = self.logits(self.hidden_states(input_ids, doc_ids=doc_ids, window=window))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100
            )
        return CausalLMOutput(loss=loss, logits=logits)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """muP optimizer groups: hidden matrices get lr / width_mult; embeddings, the output
        layer and norms keep the base lr; weight decay only on matrices."""
        hidden, vector_like, norms = [], [], []
        for name, p in self.named_parameters():
            if name.startswith("blocks.") and p.ndim == 2:
                hidden.append(p)
            elif p.ndim == 2:
                vector_like.append(p)
            else:
                norms.append(p)
        wm = self.config.width_mult
        return [
            {"params": hidden, "lr": lr / wm, "base_lr": lr / wm, "weight_decay": weight_decay},
            {"params": vector_like, "lr": lr, "base_lr": lr, "weight_decay": weight_decay},
            {"params": norms, "lr": lr, "base_lr": lr, "weight_decay": 0.0},
        ]

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head


def build(m, vocab_size: int) -> PreTrainedModel:
    """The proxy named by a ``ModelSpec``, randomly initialised: ``btlm-proxy``, or any
    transformers causal-LM architecture by its model type (``falcon``, ``llama``, ...)
    built from its config with the spec's width, depth and heads plus ``hf_config``."""
    vocab = 8 * math.ceil(vocab_size / 8)
    if m.arch == "btlm-proxy":
        return BtlmProxyForCausalLM(
            BtlmProxyConfig(
                vocab_size=vocab,
                d_model=m.d_model,
                n_layers=m.n_layers,
                n_heads=m.n_heads,
                ffn_mult=m.ffn_mult,
                position=m.position,
                mup_base_width=m.mup_base_width,
                init_std=m.init_std,
                embeddings_scale=m.embeddings_scale,
                attention=m.attention,
                mup_output_alpha=m.mup_output_alpha,
                rope_base=m.rope_base,
            )
        )
    # deferred: transformers loads its auto classes lazily; only a transformers arch needs them
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        m.arch,
        vocab_size=vocab,
        hidden_size=m.d_model,
        num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads,
        **dict(m.hf_config),
    )
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """The proxy's muP groups; for other architectures, decay on matrices only."""
    if isinstance(model, BtlmProxyForCausalLM):
        return model.param_groups(lr, weight_decay)
    params = list(model.parameters())
    return [
        {"params": [p for p in params if p.ndim >= 2], "lr": lr, "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "lr": lr, "weight_decay": 0.0},
    ]


def non_embedding_params(model: PreTrainedModel) -> int:
    """N of Kaplan et al.: parameters less the input and output embeddings."""
    skip = {id(model.get_input_embeddings().weight)}
    out = model.get_output_embeddings()
    if out is not None:
        skip.add(id(out.weight))
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def causal_lm_types() -> set[str]:
    """Model types transformers can build as a causal LM."""
    # deferred: transformers loads its auto classes lazily; only this question needs them
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know the proxy (idempotent)."""
    # deferred: transformers loads its auto classes lazily; only registering needs them
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        AutoConfig.register(BtlmProxyConfig.model_type, BtlmProxyConfig)
        AutoModelForCausalLM.register(BtlmProxyConfig, BtlmProxyForCausalLM)
    except ValueError:  # already registered in this process
        pass
