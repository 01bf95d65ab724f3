"""The exported plan in real trainers: the dependency-free plan reader, a Hugging Face
``Trainer`` that trains the plan's rows and lengths step for step, and a DeepSpeed engine
whose data-efficiency sampler, with ``seqlen_truncate``, trains exactly the exported tokens
at every length."""

import json

import numpy as np
import pytest
import torch
from support import smoke_spec

from sweep import export
from sweep.plan_file import COLUMNS, PlanFileError, StepPlan

TARGET = export.Target(l_max=64, tokens=64 * 4 * 40, tokens_per_step=64 * 4)


def _exported(tmp_path, shape="linear"):
    sw = smoke_spec(controls=(), seeds=(0,))
    trial = next(t for t in sw.trials() if t.schedule.shape == shape)
    out = tmp_path / trial.schedule.label
    export.export_schedule(trial, out, TARGET, echo=None)
    return trial, out


def test_the_plan_file_reads_what_the_export_writes(tmp_path):
    trial, out = _exported(tmp_path)
    plan = StepPlan.read(out / "target_steps.csv")
    want = export.target_plan(trial, TARGET)
    assert len(plan) == want.steps
    assert [s.length for s in plan.steps] == want.lengths.tolist()
    assert [s.rows for s in plan.steps] == want.rows.tolist()
    assert plan.total_tokens == want.total_tokens == TARGET.tokens
    assert plan.tokens_by_length() == {int(k): int(v) for k, v in want.tokens_by_length().items()}
    assert plan[len(plan) - 1].length == 64 and plan[0].length < 64  # it ramps
    # where a run that counts tokens stands
    assert plan.at_tokens(0) is plan[0]
    assert plan.at_tokens(plan[3].tokens_before) is plan[3]
    assert plan.at_tokens(plan[3].tokens_before - 1) is plan[2]
    with pytest.raises(IndexError):
        plan.at_tokens(plan.total_tokens)
    with pytest.raises(IndexError):
        plan[len(plan)]


@pytest.mark.parametrize(
    "text, why",
    [
        ("step,length\n0,4\n", "the header must be"),
        (",".join(COLUMNS) + "\n0,0,4,2,0,4,0\n2,8,4,2,0,4,0\n", "step 2 is row 1"),
        (",".join(COLUMNS) + "\n0,0,4,2,0,4,0\n1,9,4,2,0,4,0\n", "tokens_before is 9"),
        (",".join(COLUMNS) + "\n0,0,4,x,0,4,0\n", "not a table of 7 integers"),
        (",".join(COLUMNS) + "\n", "no steps"),
    ],
)
def test_a_malformed_plan_file_is_refused(tmp_path, text, why):
    f = tmp_path / "p.csv"
    f.write_text(text)
    with pytest.raises(PlanFileError, match=why):
        StepPlan.read(f)


def _tiny_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=128, n_embd=16, n_layer=1, n_head=2)
    return GPT2LMHeadModel(cfg)


def test_a_hf_trainer_follows_the_exported_plan_step_for_step(tmp_path):
    from transformers import Trainer, TrainingArguments

    from sweep.adapters.hf_trainer import PlanCallback, PlanDataset, plan_collator

    _, out = _exported(tmp_path)
    plan = StepPlan.read(out / "target_steps.csv")
    model = _tiny_lm()
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    tokens = np.random.default_rng(0).integers(0, 64, 5000)
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        max_steps=len(plan),
        learning_rate=1e-3,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=5,
        dataloader_num_workers=0,
    )
    cb = PlanCallback(plan)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=PlanDataset(plan, tokens),
        data_collator=plan_collator,
        callbacks=[cb],
    )
    trainer.train()
    assert trainer.state.global_step == len(plan)
    # one forward per optimizer step, with the step's rows of length + 1 tokens
    assert seen == [(s.rows + (s.tail > 0), s.length + 1) for s in plan.steps]
    assert cb.lengths == [(k + 1, s.context) for k, s in enumerate(plan.steps)]


def test_the_callback_refuses_arguments_that_break_the_step_mapping(tmp_path):
    from types import SimpleNamespace

    from sweep.adapters.hf_trainer import PlanCallback

    _, out = _exported(tmp_path)
    plan = StepPlan.read(out / "target_steps.csv")
    cb = PlanCallback(plan)
    ok = dict(per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=len(plan))
    cb.on_train_begin(SimpleNamespace(**ok), None, None)
    for bad, word in (
        ({"per_device_train_batch_size": 2}, "per_device_train_batch_size=2"),
        ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps=4"),
        ({"max_steps": len(plan) + 1}, f"max_steps={len(plan) + 1}"),
        ({"max_steps": -1}, "max_steps=-1"),
    ):
        with pytest.raises(ValueError, match=word):
            cb.on_train_begin(SimpleNamespace(**(ok | bad)), None, None)


def test_plan_dataset_rows_tile_the_stream_and_split_across_ranks():
    from sweep.adapters.hf_trainer import IGNORE, PlanDataset, plan_collator
    from sweep.plan_file import Step

    plan = StepPlan([Step(0, 0, 4, 2, 3, 4, 0), Step(1, 11, 8, 1, 0, 8, 0)])
    tokens = np.arange(100)
    items = list(PlanDataset(plan, tokens))
    a, b = items
    assert a["input_ids"].tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9, 10, 11, 0]]
    assert a["labels"][2].tolist() == [8, 9, 10, 11, IGNORE]  # the tail row, padded
    assert b["input_ids"].tolist() == [[11, 12, 13, 14, 15, 16, 17, 18, 19]]
    assert set(plan_collator([a])) == {"input_ids", "labels"}
    with pytest.raises(ValueError, match="per_device_train_batch_size=1"):
        plan_collator([a, b])
    with pytest.raises(ValueError, match="step 1 has fewer rows than the 2 ranks"):
        PlanDataset(plan, tokens, world=2)
    first = StepPlan(plan.steps[:1])
    halves = [next(iter(PlanDataset(first, tokens, rank=r, world=2))) for r in (0, 1)]
    assert torch.cat([h["input_ids"] for h in halves]).tolist() == a["input_ids"].tolist()
    with pytest.raises(ValueError, match="at least 9"):
        PlanDataset(plan, np.arange(5))


def test_deepspeed_trains_the_exported_tokens_at_every_length(tmp_path, monkeypatch):
    import deepspeed

    from sweep.adapters.ds_curriculum import current_length, seqlen_truncate
    from sweep.train.sessions import local_session

    monkeypatch.chdir(tmp_path)  # DeepSpeed's sampler writes its clusters in the cwd
    local_session()
    _, out = _exported(tmp_path)
    cfg = json.loads((out / "deepspeed.json").read_text())
    note = cfg.pop("ctx_sweep")
    cfg.update(
        {
            "zero_optimization": {"stage": 0},
            "bf16": {"enabled": False},
            "fp16": {"enabled": False},
            "train_micro_batch_size_per_gpu": cfg["train_batch_size"],
            "gradient_accumulation_steps": 1,
        }
    )
    cfg["data_efficiency"]["data_sampling"]["num_workers"] = 0

    class Rows(torch.utils.data.Dataset):  # rows of l_max + 1 tokens
        data = torch.as_tensor(np.random.default_rng(0).integers(0, 64, (400, TARGET.l_max + 1)))

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            return self.data[i]

    rows = Rows()
    model = _tiny_lm()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine, _, loader, _ = deepspeed.initialize(
        model=model, optimizer=opt, config=cfg, training_data=rows
    )
    engine.set_data_post_process_func(seqlen_truncate)
    by_length: dict[str, int] = {}
    it = iter(loader)
    for _ in range(note["train_iters"]):
        batch = next(it)
        L = batch.shape[1] - 1
        assert L == current_length(loader.data_sampler.state_dict())
        by_length[str(L)] = by_length.get(str(L), 0) + batch.shape[0] * L
        loss = engine(input_ids=batch, labels=batch).loss
        engine.backward(loss)
        engine.step()
    assert by_length == note["tokens_by_length"]


def test_the_contract_any_trainer_follows(tmp_path):
    """The documented contract for trainers without an adapter (torchtitan, OLMo-core,
    Megatron): before step k, train plan[k].rows rows of plan[k].length tokens and a tail
    row; a loop that does so trains the export's tokens at every schedule length, and a
    loop that counts tokens finds its step with at_tokens."""
    trial, out = _exported(tmp_path, shape="geometric")
    plan = StepPlan.read(out / "target_steps.csv")
    by_context: dict[int, int] = {}
    seen = 0
    for k in range(len(plan)):
        step = plan[k]
        assert plan.at_tokens(seen) is step and step.tokens_before == seen
        by_context[step.context] = by_context.get(step.context, 0) + step.tokens
        seen += step.rows * step.length + step.tail
    assert seen == TARGET.tokens
    assert by_context == export.tokens_by_context(export.target_plan(trial, TARGET))
    assert len(by_context) > 1 and max(by_context) == 64  # it ramps up to l_max
