import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweep import export
from sweep.config import schedules
from sweep.config.fields import SpecError
from sweep.config.grid import validate_schedule
from sweep.config.shapes import SHAPES, ScheduleSpec

SIMPLE = [s for s in SHAPES if s not in ("multi_stage", "mixture")]


def make(shape, **kw):
    base = dict(shape=shape, l_min=32, l_max=256, ramp_rate=0.5, multiple_of=32)
    base.update(kw)
    if shape == "multi_stage":
        base.setdefault("stages", ((0.3, 64), (0.7, 128), (1.0, 256)))
    if shape == "mixture":
        base.setdefault("mixture_lengths", (32, 128, 256))
        base.setdefault("mixture_start", (0.8, 0.2, 0.0))
        base.setdefault("mixture_end", (0.0, 0.2, 0.8))
    return ScheduleSpec(**base)


@pytest.mark.parametrize("shape", SHAPES)
def test_lengths_in_range_and_multiples(shape):
    s = make(shape)
    p = schedules.plan(s, 1_000_000, 8192)
    assert p.lengths.min() >= 32 and p.lengths.max() <= 256
    assert np.all(p.lengths % 32 == 0)


@pytest.mark.parametrize("shape", SHAPES)
def test_total_tokens_exact_and_every_step_full(shape):
    s = make(shape)
    p = schedules.plan(s, 1_000_000, 8192)
    assert p.total_tokens == 1_000_000
    # reshape: every step but the last holds exactly tokens_per_step tokens
    assert np.all(p.tokens[:-1] == 8192)
    assert p.tokens[-1] == 1_000_000 - 8192 * (p.steps - 1)
    assert sum(p.tokens_by_length().values()) == 1_000_000


def test_rows_per_step_is_tokens_over_length():
    p = schedules.plan(make("constant"), 81920, 8192)
    assert np.all(p.rows == 8192 // 256) and np.all(p.tails == 0)
    # 96 does not divide 8192: 85 full rows and a tail row of 32 tokens
    p = schedules.plan(make("constant", l_max=96, l_min=32), 8192, 8192)
    assert (p.rows[0], p.tails[0]) == (85, 8192 - 85 * 96)


def test_shapes_follow_design_formulas():
    s = make("linear", ramp_rate=1.0, multiple_of=1)
    assert schedules.length(s, 0.0) == 32
    assert schedules.length(s, 0.5) == 32 + 112
    assert schedules.length(make("linear"), 0.5) == 256  # after the ramp: l_max
    assert schedules.length(make("exponential", ramp_rate=1.0, multiple_of=1), 0.5) == round(
        32 * 8**0.5
    )
    geo = make("geometric", ramp_rate=1.0)  # four rungs, a quarter of the ramp each
    assert [schedules.length(geo, f) for f in (0.0, 0.26, 0.51, 0.76, 1.0)] == [
        32,
        64,
        128,
        256,
        256,
    ]
    # rounded to the nearest multiple: 32 + 224 * 0.9 = 233.6 -> 224, 0.95 -> 244.8 -> 256
    lin = make("linear", ramp_rate=1.0)
    assert schedules.length(lin, 0.9) == 224 and schedules.length(lin, 0.95) == 256
    assert schedules.length(make("short_only"), 0.99) == 32
    assert schedules.length(make("short_only", l_short=64), 0.0) == 64
    two = make("two_stage")
    assert schedules.length(two, 0.74) == 64 and schedules.length(two, 0.75) == 256
    cos = make("cosine", ramp_rate=1.0, multiple_of=1)
    assert schedules.length(cos, 0.5) == 144
    root = make("root", ramp_rate=1.0, multiple_of=1, degree=2)
    assert schedules.length(root, 0.25) == 32 + 112


def test_geometric_cycles_repeat_the_ladder():
    g = make("geometric", ramp_rate=1.0, cycles=2)
    assert [schedules.length(g, f) for f in (0.0, 0.15, 0.3, 0.45, 0.5, 0.65, 0.8, 0.95)] == [
        32,
        64,
        128,
        256,
        32,
        64,
        128,
        256,
    ]


RAMP_SHAPES = ("linear", "root", "geometric", "exponential", "cosine")


@pytest.mark.parametrize("shape", RAMP_SHAPES)
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("tps", [8192, 2048])
def test_every_ramp_reaches_l_max_by_its_rate_and_stays(shape, rate, tps):
    s = make(shape, ramp_rate=rate)
    budget = 655360
    p = schedules.plan(s, budget, tps)
    start = p.cumulative_tokens() / budget
    at_max = p.lengths == 256
    assert at_max.any() and p.tokens_by_length()[256] > 0
    first = int(np.argmax(at_max))
    assert start[first] <= rate  # reached by f = r ...
    assert at_max[first:].all()  # ... and trained there for every remaining step
    assert p.lengths[0] == 32  # and it starts at l_min
    if rate < 1:
        assert p.tokens_by_length()[256] >= (1 - rate) * budget


def test_mixture_is_seeded_and_shifts():
    s = make("mixture", ramp_rate=1.0)
    a = schedules.plan(s, 2_000_000, 8192, seed=3)
    b = schedules.plan(s, 2_000_000, 8192, seed=3)
    assert np.array_equal(a.lengths, b.lengths)
    half = a.steps // 2
    assert a.lengths[:half].mean() < a.lengths[half:].mean()


def test_truncate_mode_keeps_rows_fixed_and_steps_equal_to_reshape():
    import dataclasses

    lin = make("linear")
    ref = schedules.plan(lin, 500_000, 8192)
    p = schedules.plan(dataclasses.replace(lin, mode="truncate"), 500_000, 8192)
    assert p.steps == ref.steps  # DeepSpeed's seqlen curriculum: steps fixed, rows cut
    assert np.array_equal(p.context, ref.context)
    assert np.all(p.rows[:-1] == 8192 // 256)
    assert np.all(p.tokens[:-1] == 32 * p.lengths[:-1])  # 32 rows of L(f) tokens
    assert p.tokens[0] < 8192 and p.total_tokens < 500_000  # short steps hold fewer tokens
    assert np.array_equal(p.progress, ref.progress)


@pytest.mark.parametrize("mode", ["reshape", "window", "doc_buckets"])
@pytest.mark.parametrize("shape", ["linear", "two_stage", "geometric", "short_only"])
def test_token_equal_modes_train_the_budget(mode, shape):
    import dataclasses

    s = dataclasses.replace(make(shape), mode=mode)
    p = schedules.plan(s, 500_000, 8192)
    assert p.total_tokens == 500_000
    assert np.all(p.tokens[:-1] == 8192)
    ref = schedules.plan(make(shape), 500_000, 8192)
    assert np.array_equal(p.context, ref.context)  # the same L(f) at every step
    if mode != "window":  # window rows are l_max long: no tail row at its own length
        assert p.tokens_by_length() == ref.tokens_by_length()
    if mode == "window":
        assert np.all(p.lengths == 256) and np.array_equal(p.windows, ref.lengths)
    else:
        assert np.array_equal(p.lengths, ref.lengths) and not p.windows.any()


def test_window_flops_count_what_the_kernel_computes():
    import dataclasses

    s = dataclasses.replace(make("short_only"), mode="window")
    p = schedules.plan(s, 8192, 8192)  # one step: 32 rows of 256, window 32
    dense = 8192 * (6 * 1000 + 6 * 2 * 64 * 256)
    assert p.flops(1000, 2, 64) == pytest.approx(dense)  # SDPA scores every key
    assert p.flops(1000, 2, 64, sparse=True) == pytest.approx(8192 * (6 * 1000 + 6 * 2 * 64 * 32))


def test_flops_include_attention():
    p = schedules.plan(make("constant"), 8192, 8192)
    assert p.flops(1000, 2, 64) == pytest.approx(8192 * (6 * 1000 + 6 * 2 * 64 * 256))


@pytest.mark.parametrize(
    "kw,field",
    [
        (dict(shape="multi_stage", stages=((0.5, 64), (0.4, 256))), "schedules.stages"),
        (dict(shape="multi_stage", stages=((0.5, 64), (0.9, 256))), "schedules.stages"),
        (
            dict(shape="mixture", mixture_lengths=(32, 64), mixture_start=(0.5, 0.6)),
            "schedules.mixture_start",
        ),
        (dict(shape="geometric", cycles=0), "schedules.cycles"),
    ],
)
def test_bad_shape_parameters(kw, field):
    with pytest.raises(SpecError) as e:
        validate_schedule(make(**kw))
    assert e.value.field == field


def test_lr_warmup_and_decay_in_tokens():
    assert schedules.lr_at(0, 1000, 0.1, 0.1) == pytest.approx(0.01)
    assert schedules.lr_at(100, 1000, 0.1, 0.1) == pytest.approx(1.0)
    assert schedules.lr_at(1000, 1000, 0.1, 0.1) == pytest.approx(0.1)


pow2 = st.sampled_from([8, 16, 32, 64])


@st.composite
def specs(draw):
    mult = draw(pow2)
    l_min = mult * draw(st.integers(1, 4))
    l_max = l_min * draw(st.integers(1, 16))
    shape = draw(st.sampled_from(SIMPLE))
    rate = draw(st.floats(0.05, 1.0))
    return make(
        shape,
        l_min=l_min,
        l_max=l_max,
        multiple_of=mult,
        ramp_rate=rate,
        degree=draw(st.floats(0.5, 4)),
        cycles=draw(st.integers(1, 3)),
    )


@settings(max_examples=150, deadline=None)
@given(s=specs(), steps=st.integers(1, 60), extra=st.integers(0, 10_000))
def test_property_plan_is_exact_and_in_range(s, steps, extra):
    tps = s.l_max * 4
    budget = tps * steps + extra
    p = schedules.plan(s, budget, tps)
    assert p.total_tokens == budget
    assert np.all((p.lengths >= s.l_min) & (p.lengths <= s.l_max))
    assert np.all(p.lengths % s.multiple_of == 0)
    if s.shape in ("linear", "root", "exponential", "cosine", "constant", "two_stage") or (
        s.shape == "geometric" and s.cycles == 1
    ):
        assert np.all(np.diff(p.lengths) >= 0)


@settings(max_examples=100, deadline=None)
@given(s=specs(), f=st.floats(0, 1))
def test_property_reverse_mirrors_forward(s, f):
    fwd = ScheduleSpec(**{**s.__dict__, "shape": "linear"})
    rev = ScheduleSpec(**{**s.__dict__, "shape": "reverse", "reverse_of": "linear"})
    assert schedules.length(rev, f) == schedules.length(fwd, 1 - f)


def test_restate_in_target_units_keeps_fractions():
    s = make("two_stage", l_min=512, l_max=2048, multiple_of=64)
    t = export.restate(s, 8192)
    assert (t.l_min, t.l_max, t.multiple_of) == (2048, 8192, 256)
    assert schedules.length(t, 0.5) == 2048 and schedules.length(t, 0.8) == 8192
