"""VisualMixer window-size bounds (Sec. IV-B/IV-C): hand-computed cases and the 2,560-case induction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from privis.errors import InvalidInputError
from privis.privacy import visualmixer_bounds as vb


def test_eq12_example_of_the_paper() -> None:
    # Sec. IV-B: 224 x 224 and WS = 8 give mean 2*8*7 = 112 and variance 4*8^3*7/224^2 = 2/7.
    mean, var = vb.vfe_distribution(8, 224, 224)
    assert mean == pytest.approx(112.0)
    assert var == pytest.approx(2.0 / 7.0)


def test_lower_bound_by_hand_normal_and_chi2() -> None:
    # 28 x 28, target 4 (Eq. 12 units). WS = 2: mean 4, so P(V >= 4) is about 1/2 < 0.95.
    # WS = 3: mean 12, sd = sqrt(4 * 27 * 2 / 784) = 0.525, so P(V >= 4) ~ 1.  WS_l = 3 for both methods.
    assert vb.window_lower_bound(4.0, 28, 28, method="normal") == 3
    assert vb.window_lower_bound(4.0, 28, 28, method="chi2") == 3
    p2 = vb.prob_vfe_at_least(4.0, 2, 28, 28, method="normal")
    assert p2 == pytest.approx(0.5)
    # exact chi-square: V = (WS^2/wh) X, X ~ chi2_k with k = 2 wh (WS-1)/WS = 784 at WS = 2.
    assert vb.prob_vfe_at_least(4.0, 2, 28, 28, method="chi2") == pytest.approx(stats.chi2.sf(784.0, 784))
    # target 112 on 224 x 224: WS = 8 has mean exactly 112 (P ~ 0.5), WS = 9 has mean 144.
    assert vb.window_lower_bound(112.0, 224, 224) == 9


def test_lower_bound_in_image_units_uses_the_window_variance() -> None:
    # Eq. 3 units: mean 4 sigma^2 (WS-1)/WS. With sigma^2 = 0.05 for every WS: WS = 2 -> 0.1, WS = 3 -> 0.133.
    sigma2 = {ws: 0.05 for ws in range(2, 29)}
    mean, _ = vb.vfe_distribution(np.array([2, 3]), 28, 28, units="image", sigma2=sigma2)
    np.testing.assert_allclose(mean, [0.1, 4 * 0.05 * 2 / 3])
    assert vb.window_lower_bound(0.12, 28, 28, units="image", sigma2=sigma2) == 3
    with pytest.raises(InvalidInputError, match="sigma2"):
        vb.window_lower_bound(0.12, 28, 28, units="image")


def test_lower_bound_unreachable_target_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="no window"):
        vb.window_lower_bound(1e6, 8, 8)


def test_window_variances_of_a_checkerboard() -> None:
    board = ((np.arange(4)[:, None] + np.arange(4)[None, :]) % 2).astype(float)[None, None]
    # every 2x2 window holds two 0s and two 1s: sample variance (Eq. 5) = 4 * 0.25 / 3 = 1/3
    assert vb.window_variances(board, [2])[2] == pytest.approx(1 / 3)


def test_upper_bound_formula() -> None:
    # WS_u = WS_0 + 2 floor(sqrt(log alpha / log alpha0)); alpha0 = 0.9, alpha = 0.3: ratio 11.43 -> m = 3.
    assert vb.window_upper_bound(0.3, 0.9) == 3 + 2 * 3
    assert vb.window_upper_bound(0.5, 0.4) == 3  # alpha0 below alpha: the base case only
    assert vb.window_upper_bound(0.5, 1.0, max_ws=28) == 28
    m = math.floor(math.sqrt(math.log(0.1) / math.log(0.8)))
    assert vb.window_upper_bound(0.1, 0.8) == 3 + 2 * m


def test_enumeration_covers_2560_cases_and_is_exact_where_decidable() -> None:
    counts = vb.enumerate_base_case("w4-diagonal", "expected")
    assert list(counts) == list(vb.PAPER_TABLE1)
    assert sum(counts.values()) == 2560 == sum(vb.PAPER_TABLE1.values())
    # All-zero window: B = 0 under every sign pattern (5 cases). All-ones window with four positive
    # weights: w1+w2+w3+w4. Counts for sums that can only arise in a few patterns must be positive.
    assert counts["0"] >= 5
    assert counts["w1+w2+w3+w4"] >= 1
    # the five sign patterns x 512 windows: windows with a 2x2 all-zero block give B = 0 whenever all
    # weights are negative; there are 512 - #(no all-zero 2x2 block) of them.
    win = vb._windows()
    blocks = [win[:, r:r + 2, c:c + 2].reshape(512, 4).sum(1) == 0 for r in (0, 1) for c in (0, 1)]
    zero_block = np.any(np.stack(blocks), axis=0).sum()
    assert counts["0"] >= zero_block


def test_base_case_outputs_by_hand() -> None:
    # kernel [[1, -1], [0, 2]]; window 0 (all zeros) -> 0; window 511 (all ones) -> sum = 2 at every position.
    b = vb.base_case_outputs(np.array([[[1.0, -1.0], [0.0, 2.0]]]))
    assert b[0, 0] == 0 and b[0, 511] == pytest.approx(2.0)
    # a single 1 at the centre (bit 4) is hit by cell (1,1) at offset (0,0) -> 2, the max.
    assert b[0, 1 << 4] == pytest.approx(2.0)


def test_alpha0_is_a_cdf_in_d() -> None:
    draws = vb.diff_max_samples(2000, seed=1)
    assert (draws >= 0).all()
    a = [vb.alpha0(d, samples=2000, seed=1) for d in (0.5, 2.0, 8.0)]
    assert a[0] <= a[1] <= a[2] and a[2] > 0.99
    # shuffles keep the multiset, so their diff_max never exceeds the unconstrained Eq. 13-15 one
    free = vb.diff_max_samples(2000, seed=1, constraint="any")
    assert (draws <= free + 1e-12).all()
