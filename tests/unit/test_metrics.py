import numpy as np
import pytest

from sweep.analysis import metrics

L = 64
E = 4 * L


def test_flat_curve_has_zero_delta_and_slope():
    c = np.full(E, 2.5)
    m = metrics.all_metrics(c, L)
    assert m["delta"] == pytest.approx(0) and m["slope"] == pytest.approx(0, abs=1e-12)
    assert m["id_loss"] == pytest.approx(2.5) and m["far_x2"] == pytest.approx(2.5)


def test_slope_per_doubling():
    p = np.arange(1, E + 1)
    c = 2.0 + 0.1 * np.log2(p)
    assert metrics.slope(c, L) == pytest.approx(0.1)


def test_regions_are_exactly_their_positions():
    # loss(p) = p: every region mean is the mean of its own positions
    c = np.arange(1, E + 1, dtype=float)
    assert metrics.id_loss(c, L) == pytest.approx((1 + L) / 2)  # p in [1, L]
    assert metrics.near_loss(c, L) == pytest.approx((L / 2 + 1 + L) / 2)  # (L/2, L]
    assert metrics.far_loss(c, L) == pytest.approx((L + 1 + E) / 2)  # (L, E]
    assert metrics.delta(c, L) == pytest.approx((L + 1 + E) / 2 - (L / 2 + 1 + L) / 2)


def test_far_bands_double_and_end_at_E():
    assert metrics.bands(16 * L, L) == [
        ("far_x2", L, 2 * L),
        ("far_x4", 2 * L, 4 * L),
        ("far_x8", 4 * L, 8 * L),
        ("far_x16", 8 * L, 16 * L),
    ]
    assert metrics.bands(5 * L, L)[-1] == ("far_x5", 4 * L, 5 * L)  # a partial last band
    c = np.arange(1, E + 1, dtype=float)
    b = metrics.band_losses(c, L)
    assert b == {
        "far_x2": pytest.approx((L + 1 + 2 * L) / 2),
        "far_x4": pytest.approx((2 * L + 1 + 4 * L) / 2),
    }
    # the bands partition (L, E]: their position-weighted mean is far_loss
    assert (b["far_x2"] * L + b["far_x4"] * 2 * L) / (3 * L) == pytest.approx(
        metrics.far_loss(c, L)
    )


def test_per_sequence_rows_average_to_the_curve_metrics():
    rng = np.random.default_rng(0)
    losses = rng.normal(3, 0.3, (10, E))
    per = metrics.per_sequence(losses, L)
    m = metrics.all_metrics(losses.mean(axis=0), L)
    for key in ("id_loss", "near_loss", "far_loss", "far_x2", "far_x4"):
        assert np.mean(per[key]) == pytest.approx(m[key], abs=1e-5)
        assert len(per[key]) == 10  # one value per sequence
    assert per["near_loss"][3] == pytest.approx(losses[3, L // 2 : L].mean(), abs=1e-5)
    assert per["far_x4"][7] == pytest.approx(losses[7, 2 * L :].mean(), abs=1e-5)


def test_ctx_gain_is_window_minus_full_past_l_max():
    full = np.full((3, E), 2.0)
    full[:, :L] = 9.0  # positions up to l_max play no part
    window = np.full((3, E - L), 2.5)
    window[2] = 2.0
    assert metrics.ctx_gain(window, full, L).tolist() == [0.5, 0.5, 0.0]


def test_position_se():
    losses = np.array([[1.0, 2.0], [3.0, 2.0]])
    assert metrics.position_se(losses).tolist() == pytest.approx([np.sqrt(2) / np.sqrt(2), 0.0])
    assert np.isnan(metrics.position_se(losses[:1])).all()


def test_slope_from_two_positions_past_l_max():
    c = np.array([5.0, 5.0, 1.0, 2.0])  # l_max = 2: positions 3 and 4
    assert metrics.slope(c, 2) == pytest.approx(1.0 / (np.log2(4) - np.log2(3)))
    assert np.isnan(metrics.slope(c[:3], 2))
