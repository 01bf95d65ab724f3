"""DeepSpeed's data-efficiency curriculum for an exported ``deepspeed.json``.

The exported config has DeepSpeed's sampler set a ``seqlen_truncate`` difficulty before
every step; DeepSpeed never cuts rows itself. ``seqlen_truncate`` is the data post-process
function that does (Megatron-DeepSpeed's, for any batch of rows)::

    engine, _, loader, _ = deepspeed.initialize(model=model, optimizer=opt,
                                                config="export/linear-r1/deepspeed.json",
                                                training_data=dataset)
    engine.set_data_post_process_func(seqlen_truncate)
    for _ in range(config["ctx_sweep"]["train_iters"]):
        batch = next(it)  # rows cut to the step's length

Rows in the dataset hold l_max + 1 tokens (inputs and next-token targets); a step at
length L keeps the first L + 1, so it trains L predictions per row."""

from __future__ import annotations

METRIC = "seqlen_truncate"


def current_length(sampler_state: dict) -> int:
    """The length DeepSpeed's sampler set for this step."""
    return int(sampler_state["current_difficulties"][METRIC])


def seqlen_truncate(data, sampler_state: dict):
    """Cut a batch of rows (a tensor, or a dict or list of tensors of rows) to the
    current length + 1 tokens."""
    keep = current_length(sampler_state) + 1
    if isinstance(data, dict):
        return {k: _cut(v, keep) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_cut(v, keep) for v in data)
    return _cut(data, keep)


def _cut(x, keep: int):
    return x[:, :keep].contiguous() if getattr(x, "dim", lambda: 0)() == 2 else x
