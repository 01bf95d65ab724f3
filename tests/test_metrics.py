import numpy as np
import pytest

from sweep import metrics

L = 64
E = 4 * L


def test_flat_curve_has_zero_delta_and_slope():
    c = np.full(E, 2.5)
    m = metrics.all_metrics(c, L)
    assert m["delta"] == pytest.approx(0) and m["slope"] == pytest.approx(0, abs=1e-12)
    assert m["id_loss"] == pytest.approx(2.5) and m["l_eff"] == pytest.approx(4.0)


def test_slope_per_doubling():
    p = np.arange(1, E + 1)
    c = 2.0 + 0.1 * np.log2(p)
    assert metrics.slope(c, L) == pytest.approx(0.1)


def test_regions():
    c = np.concatenate([np.full(L // 2, 5.0), np.full(L // 2, 3.0), np.full(E - L, 4.0)])
    assert metrics.near_loss(c, L) == 3.0
    assert metrics.far_loss(c, L) == 4.0
    assert metrics.id_loss(c, L) == 4.0
    assert metrics.delta(c, L) == pytest.approx(1.0)


def test_l_eff_finds_where_loss_rises():
    c = np.full(E, 3.0)
    c[150:] = 3.5  # jumps at position 151
    assert metrics.l_eff(c, L, window=1) == pytest.approx(150 / L)


def test_bootstrap_interval_covers_mean():
    rng = np.random.default_rng(0)
    v = rng.normal(1.0, 0.1, 200)
    lo, hi = metrics.bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 0.05
