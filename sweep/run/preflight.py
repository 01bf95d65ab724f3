"""What a run checks before it starts, beyond the spec itself (``spec.parse`` checks that
alone): the files the spec names exist on this machine, and a transformers architecture
is one transformers knows, configured with fields of its config. Reading results needs
none of it, so a copied results directory whose corpus is gone still reports.

Every refusal is a ``SpecError`` naming the field and the value in one line, as parse's."""

from __future__ import annotations

from pathlib import Path

from sweep.config.spec import ARCHS, PROXY_ONLY, ModelSpec, SpecError, SweepSpec


def preflight(spec: SweepSpec) -> None:
    """Every check of a spec against this machine; raises the first SpecError."""
    if spec.model.arch not in ARCHS:
        _check_transformers_arch(spec.model)
    _check_paths(spec)


def _check_paths(spec: SweepSpec) -> None:
    """The files a spec names exist on this machine: what training needs and reading
    results does not."""
    corpus, tk = spec.data.corpus, spec.data.tokenizer
    if corpus.startswith("files:") and not Path(corpus[6:]).exists():
        raise SpecError("data.corpus", corpus, "path does not exist")
    if tk.endswith(".json") and not Path(tk).is_file():
        raise SpecError("data.tokenizer", tk, "file not found")


# hf_config keys the spec sets itself, from d_model, n_layers, n_heads and the tokenizer.
_HF_SET = {
    "hidden_size": "model.d_model",
    "num_hidden_layers": "model.n_layers",
    "num_attention_heads": "model.n_heads",
    "vocab_size": "the tokenizer",
}


def _check_transformers_arch(m: ModelSpec) -> None:
    """A model type transformers can build as a causal LM (``model.causal_lm_types``), with
    none of the btlm-proxy's own fields set and an ``hf_config`` its config accepts."""
    # deferred: transformers takes seconds to import, and only a transformers arch needs it
    from transformers import AutoConfig

    # deferred: as above
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if m.arch not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise SpecError(
            "model.arch",
            m.arch,
            "unknown architecture (btlm-proxy or a transformers causal-LM "
            "model type such as falcon or llama)",
        )
    for key in PROXY_ONLY:
        value = getattr(m, key)
        if value != getattr(ModelSpec, key):
            raise SpecError(f"model.{key}", value, f"is a btlm-proxy field, unused by {m.arch}")
    base = AutoConfig.for_model(m.arch)
    aliases = {v: k for k, v in getattr(base, "attribute_map", {}).items()}
    for key in m.hf_config:
        owner = _HF_SET.get(aliases.get(key, key))
        if owner:
            raise SpecError(f"model.hf_config.{key}", m.hf_config[key], f"is set by {owner}")
        if key not in base.to_dict() and key not in aliases:
            raise SpecError(
                f"model.hf_config.{key}",
                m.hf_config[key],
                f"is not a field of {type(base).__name__}",
            )
    try:
        AutoConfig.for_model(
            m.arch,
            hidden_size=m.d_model,
            num_hidden_layers=m.n_layers,
            num_attention_heads=m.n_heads,
            **m.hf_config,
        )
    except Exception as exc:  # transformers' own check of the values, in its words
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SpecError("model.hf_config", m.hf_config, f"refused by {m.arch}: {why}") from None
