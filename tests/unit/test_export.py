"""The scale-up export. The done-when check replays every exported DeepSpeed config through
DeepSpeed's own config parser and curriculum scheduler, stepping it as DeepSpeed's
data-efficiency sampler does (``DeepSpeedDataSampler.get_next_global_batch``: the step
counter goes 1, 2, ... and ``update_difficulty(step)`` gives each step's length), and sums
the tokens a step trains when the rows are cut to that length: ``train_batch_size * L``."""

import copy
import json

import numpy as np
import pytest
import yaml
from deepspeed.runtime.config import DeepSpeedConfig
from deepspeed.runtime.data_pipeline.curriculum_scheduler import CurriculumScheduler
from support import run_sweep

from sweep import export
from sweep.config import schedules, spec
from sweep.config.spec import TrialSpec

BTLM = export.Target(8192, 627_000_000_000, 4_194_304)
SMALL = export.Target(2048, 1_000_000_000, 1_048_576)


def sweep_dict(**schedules_) -> dict:
    return {
        "name": "exp",
        "budget": {"tokens": 4_096_000, "tokens_per_step": 2048},  # 2,000 proxy steps
        "model": {"d_model": 64, "n_layers": 2, "n_heads": 4},
        "schedules": {
            "l_min": 64,
            "l_max": 256,
            "multiple_of": 8,
            "shapes": ["constant"],
            "reference": "constant",
            **schedules_,
        },
        "eval": {"multiple": 4, "sequences": 8, "batch_size": 8, "probe_sequences": 8},
        "wandb": {"mode": "disabled"},
    }


SWEEP = spec.parse(sweep_dict())


def trial(shape: str, **kw) -> TrialSpec:
    """The trial of a one-schedule sweep, so that its label carries the grid tags."""
    mode = kw.pop("mode", "reshape")
    entry = {"shape": shape, "ramp_rates": [kw.pop("ramp_rate", 1.0)]}
    entry |= {k: [list(x) for x in v] if k == "stages" else v for k, v in kw.items()}
    (t,) = spec.parse(sweep_dict(shapes=[entry], modes=[mode], reference=shape)).trials()
    return t


def replay(ds: dict) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Tokens per length, and (length, tokens before) at every change of length, of the
    config as DeepSpeed runs it for its ``ctx_sweep.train_iters`` steps."""
    cfg = DeepSpeedConfig(copy.deepcopy(ds))  # rejects the legacy curriculum_learning block
    cl = cfg.data_efficiency_config["data_sampling"]["curriculum_learning"]
    assert cl["enabled"]
    (metric,) = cl["curriculum_metrics"].values()
    sched = CurriculumScheduler(metric)
    rows = cfg.train_batch_size
    tokens: dict[int, int] = {}
    changes: list[tuple[int, int]] = []
    seen = 0
    for step in range(1, ds["ctx_sweep"]["train_iters"] + 1):
        L = sched.update_difficulty(step)
        if not changes or changes[-1][0] != L:
            changes.append((L, seen))
        tokens[L] = tokens.get(L, 0) + rows * L
        seen += rows * L
    return tokens, changes


def shares(by_length: dict[int, int]) -> dict[int, float]:
    total = sum(by_length.values())
    return {L: n / total for L, n in by_length.items()}


def assert_shares_close(a: dict[int, int], b: dict[int, int], tol: float = 0.01) -> None:
    sa, sb = shares(a), shares(b)
    worst = max(abs(sa.get(L, 0) - sb.get(L, 0)) for L in set(sa) | set(sb))
    assert worst <= tol, (worst, sa, sb)


CASES = [
    ("constant", {}),
    ("two_stage", {}),
    ("multi_stage", {"stages": ((0.25, 64), (0.6, 128), (1.0, 256))}),
    ("linear", {}),
    ("linear", {"ramp_rate": 0.5}),
    ("root", {}),
    ("geometric", {}),
    ("geometric", {"cycles": 2}),  # comes back down from l_max
    ("exponential", {}),
    ("cosine", {}),
    ("reverse", {}),  # starts at l_max
    ("short_only", {}),
    ("two_stage", {"mode": "truncate"}),
    ("linear", {"mode": "truncate"}),
]


def test_cases_cover_every_deterministic_shape():
    assert {s for s, _ in CASES} == set(spec.SHAPES) - {"mixture"}


@pytest.mark.parametrize("shape,kw", CASES, ids=[f"{s}-{kw}" for s, kw in CASES])
def test_deepspeed_replay_is_token_faithful_at_btlm_scale(shape, kw):
    tr = trial(shape, **kw)
    tplan = export.target_plan(tr, BTLM)
    ds = export.deepspeed_export(tr, BTLM, tplan)
    assert "curriculum_learning" not in ds  # DeepSpeed rejects the legacy block
    tokens, changes = replay(ds)
    total = sum(tokens.values())

    # The total and the share of tokens at every length, against the target plan ...
    assert abs(total - tplan.total_tokens) <= 0.001 * tplan.total_tokens
    if tr.schedule.mode == "reshape":
        assert tplan.total_tokens == BTLM.tokens
    assert_shares_close(tokens, tplan.tokens_by_length())
    # ... and against the proxy, its lengths in target units.
    b = SWEEP.budget
    proxy = schedules.plan(tr.schedule, b.tokens, b.tokens_per_step)
    scale = BTLM.l_max // tr.schedule.l_max
    assert_shares_close(tokens, {L * scale: n for L, n in export.tokens_by_context(proxy).items()})
    # In order: every change of length within a step of where the target plan makes it.
    before = tplan.cumulative_tokens().tolist()
    want = [(L, before[k]) for k, L in enumerate(tplan.context.tolist())]
    want = [x for i, x in enumerate(want) if i == 0 or x[0] != want[i - 1][0]]
    assert [L for L, _ in changes] == [L for L, _ in want]
    assert all(abs(a - w) <= BTLM.tokens_per_step for (_, a), (_, w) in zip(changes, want))
    note = ds["ctx_sweep"]
    assert note["train_iters"] > 0 and note["train_tokens"] == total
    assert {int(L): n for L, n in note["tokens_by_length"].items()} == tokens
    if tr.schedule.mode == "truncate":  # DeepSpeed's own semantics: the same steps
        assert abs(note["train_iters"] - tplan.steps) <= 1
    if (shape, kw) == ("two_stage", {}):  # BTLM: 75% of 627B at 2,048, then 8,192
        assert set(tokens) == {2048, 8192}
        assert abs(tokens[2048] / total - 0.75) <= 0.01
        assert abs(total - 627e9) <= 0.001 * 627e9
        assert note["train_iters"] > tplan.steps  # short steps train fewer tokens each


def read_steps(path) -> np.ndarray:
    lines = path.read_text().splitlines()
    assert tuple(lines[0].split(",")) == export.STEP_COLUMNS
    return np.array([line.split(",") for line in lines[1:]], dtype=np.int64)


def tokens_by_column(table: np.ndarray, col: str) -> dict[int, int]:
    i = export.STEP_COLUMNS.index
    step_tokens = table[:, i("rows")] * table[:, i("length")] + table[:, i("tail")]
    out: dict[int, int] = {}
    for c, n in zip(table[:, i(col)].tolist(), step_tokens.tolist()):
        out[c] = out.get(c, 0) + n
    return out


@pytest.mark.parametrize("shape,kw", [("two_stage", {}), ("geometric", {"cycles": 2})])
def test_target_spec_steps_table_and_deepspeed_agree(tmp_path, shape, kw):
    tr = trial(shape, **kw)
    lines = []
    paths = export.export_schedule(tr, tmp_path, BTLM, echo=lines.append)
    assert {p.name for p in paths} == {
        "proxy_steps.csv",
        "target_steps.csv",
        "schedule_at_target.yaml",
        "deepspeed.json",
        "README.md",
    }
    raw = yaml.safe_load((tmp_path / "schedule_at_target.yaml").read_text())
    (scaled,) = spec.parse(raw).trials()
    assert scaled.schedule.label == tr.schedule.label
    b = scaled.sweep.budget
    assert (b.tokens, b.tokens_per_step, scaled.schedule.l_max) == (BTLM.tokens, 4194304, 8192)
    plan = schedules.plan(scaled.schedule, b.tokens, b.tokens_per_step)
    table = read_steps(tmp_path / "target_steps.csv")
    i = export.STEP_COLUMNS.index
    assert table[:, i("length")].tolist() == plan.lengths.tolist()
    assert table[:, i("tokens_before")].tolist() == plan.cumulative_tokens().tolist()
    from_table = tokens_by_column(table, "context")
    assert sum(from_table.values()) == BTLM.tokens
    assert from_table == export.tokens_by_context(plan)
    tokens, _ = replay(json.loads((tmp_path / "deepspeed.json").read_text()))
    assert_shares_close(tokens, from_table)
    assert abs(sum(tokens.values()) - BTLM.tokens) <= 0.001 * BTLM.tokens
    readme = (tmp_path / "README.md").read_text()
    assert "tokens per step vary" in readme and "tokens per step vary" in lines[0]


@pytest.mark.parametrize(
    "shape,kw,why",
    [
        ("linear", {"mode": "window"}, "window"),
        ("two_stage", {"mode": "doc_buckets"}, "doc_buckets"),
        ("mixture", {"mixture_lengths": (64, 128, 256)}, "random"),
    ],
)
def test_no_deepspeed_form_says_why_and_writes_the_target_table(tmp_path, shape, kw, why):
    tr = trial(shape, **kw)
    lines = []
    export.export_schedule(tr, tmp_path, SMALL, echo=lines.append)
    ds = json.loads((tmp_path / "deepspeed.json").read_text())
    assert "data_efficiency" not in ds and "curriculum_learning" not in ds
    assert ds["ctx_sweep"]["curriculum"] is None and why in ds["ctx_sweep"]["why_no_curriculum"]
    cfg = DeepSpeedConfig(copy.deepcopy(ds))  # a valid config, curriculum off
    assert cfg.train_batch_size == SMALL.rows
    assert not cfg.data_efficiency_config["data_sampling"]["curriculum_learning"]["enabled"]
    assert why in lines[0] and "target_steps.csv" in lines[0]
    readme = (tmp_path / "README.md").read_text()
    assert "No curriculum" in readme and why in readme
    table = read_steps(tmp_path / "target_steps.csv")
    assert sum(tokens_by_column(table, "context").values()) == SMALL.tokens
    plan = export.target_plan(tr, SMALL)
    assert table[:, export.STEP_COLUMNS.index("window")].tolist() == plan.windows.tolist()


def test_schedules_export_cli_writes_every_schedule(tmp_path):
    shapes = ["constant", "two_stage", "linear", "geometric"]
    shapes.append({"shape": "mixture", "mixture_lengths": [64, 128, 256]})
    modes = ["reshape", "truncate", "window"]
    d = sweep_dict(shapes=shapes, ramp_rates=[0.5, 1.0], modes=modes, controls=["short_only"])
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(d))
    target = ["--target-l-max", "2048", "--target-tokens", "1e9"]
    target += ["--target-tokens-per-step", "1048576"]
    out = tmp_path / "out"
    r = run_sweep("schedules", "export", tmp_path / "spec.yaml", "--out", out, *target, timeout=120)
    assert r.returncode == 0, r.stderr
    sw = spec.parse(d)
    assert len(sw.trials()) > 20
    for t in sw.trials():
        folder = out / t.schedule.label
        assert f"{t.schedule.label}: " in r.stdout
        rows = (folder / "proxy_steps.csv").read_text().splitlines()
        assert len(rows) == 1 + sw.budget.tokens // sw.budget.tokens_per_step
        tspec = spec.parse(yaml.safe_load((folder / "schedule_at_target.yaml").read_text()))
        assert tspec.schedules.l_max == 2048 and tspec.budget.tokens == 1_000_000_000
        (scaled,) = tspec.trials()
        assert scaled.schedule.label == t.schedule.label  # same schedule, target units
        plan = schedules.plan(scaled.schedule, 10**9, 1048576)
        table = read_steps(folder / "target_steps.csv")
        assert tokens_by_column(table, "context") == export.tokens_by_context(plan)
        ds = json.loads((folder / "deepspeed.json").read_text())
        if export.no_deepspeed_form(scaled.schedule):
            assert "data_efficiency" not in ds
            continue
        tokens, _ = replay(ds)
        assert_shares_close(tokens, export.tokens_by_context(plan))
        assert abs(sum(tokens.values()) - plan.total_tokens) <= 0.001 * plan.total_tokens


def test_target_lengths_scale_and_fractions_hold():
    sw = spec.parse(sweep_dict(shapes=["constant", "two_stage"]))
    two = next(t for t in sw.trials() if t.schedule.shape == "two_stage")
    d = export.target_spec(two, export.Target(l_max=8192))
    (t,) = spec.parse(d).trials()
    assert schedules.length(t.schedule, 0.5) == 2048 and schedules.length(t.schedule, 0.8) == 8192


def test_truncation_steps_round_to_the_nearest_token():
    # 3 runs: 10.4, 0.3 and 5.6 steps' worth; the 0.3 run is dropped, the next absorbs it.
    runs = [(8, int(10.4 * 64)), (16, int(0.3 * 128)), (32, int(5.6 * 256))]
    steps = export.truncation_steps(runs, rows=8)
    assert steps == [(8, 10), (32, 6)]
    block = export.deepspeed_data_efficiency([(8, 10), (32, 6), (16, 4)])
    metric = block["data_sampling"]["curriculum_learning"]["curriculum_metrics"][export.METRIC]
    assert metric["schedule_config"] == {"difficulty": [8, 32, 16], "max_step": [10, 16]}
    assert metric["max_difficulty"] == 33  # comes back down: update_difficulty must not stick
    sched = CurriculumScheduler(metric)
    assert [sched.update_difficulty(k) for k in range(1, 21)] == [8] * 10 + [32] * 6 + [16] * 4
