"""Divergence is a result, not a crash: the rule that ends a trial (a sweep whose trials
all diverge: tests/e2e/test_divergence_e2e.py)."""

import math

import pytest

from sweep.train.trial import diverged, divergence_bound


def test_the_bound_is_twice_the_uniform_guess():
    assert divergence_bound(256) == pytest.approx(2 * math.log(256))
    assert divergence_bound(4096) == pytest.approx(16.635532, abs=1e-6)


@pytest.mark.parametrize(
    "loss, why",
    [
        (math.nan, "loss became nan at step 3 (6144 tokens)"),
        (math.inf, "loss became inf at step 3 (6144 tokens)"),
        (11.2, "loss 11.200 at step 3 (6144 tokens) is past 11.090"),
    ],
)
def test_a_loss_that_is_not_finite_or_past_the_bound_ends_the_trial(loss, why):
    assert diverged(loss, divergence_bound(256), 3, 6144).startswith(why)


def test_a_bad_but_bounded_loss_trains_on():
    bound = divergence_bound(256)
    assert diverged(bound, bound, 3, 6144) is None  # at the bound, not past it
    assert diverged(9.0, bound, 3, 6144) is None
    assert diverged(-0.0, bound, 0, 0) is None
