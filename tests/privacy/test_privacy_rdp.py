"""RDP of the Gaussian mechanism and its conversions: closed forms, Google's dp-accounting, the exact profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privis.errors import InvalidInputError
from privis.privacy.rdp import (
    classic_epsilon,
    classic_optimum_linear,
    gaussian_epsilon,
    gaussian_rdp,
    rdp_rate,
    rdp_to_dp,
    sigma_for_epsilon,
    tight_epsilon,
)

RHOS = [1e-6, 1e-3, 0.125, 1.0, 50.0, 1.8432e3, 1.8432e8]
DELTAS = [1e-12, 1e-8, 1e-5, 0.1]


def test_gaussian_rdp_is_alpha_delta_squared_over_two_sigma_squared():
    alphas = np.array([1.5, 2.0, 32.0])
    np.testing.assert_allclose(gaussian_rdp(alphas, 3.0, 2.0), alphas * 9.0 / 8.0, rtol=1e-15)
    assert gaussian_rdp(2.0, 3.0, 2.0) == pytest.approx(2.25, rel=1e-15)
    assert rdp_rate(3840.0, 0.2, 10, "claimed") == pytest.approx(3840.0**2 / (2 * 0.04 * 10), rel=1e-14)
    assert rdp_rate(3840.0, 0.2, 10, "post-processing") == pytest.approx(3840.0**2 / 0.08, rel=1e-14)


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_classic_numeric_minimum_equals_the_closed_form(rho, delta):
    closed = classic_optimum_linear(rho, delta)
    numeric = rdp_to_dp(lambda a: rho * a, delta, conversion="classic")
    assert numeric.epsilon == pytest.approx(closed.epsilon, rel=1e-11)
    assert numeric.epsilon >= closed.epsilon * (1 - 1e-14)  # the closed form is the true minimum
    assert numeric.alpha == pytest.approx(closed.alpha, rel=1e-5)
    assert closed.epsilon == pytest.approx(classic_epsilon(rho * closed.alpha, closed.alpha, delta), rel=1e-13)


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_tight_never_exceeds_classic_and_is_a_minimum(rho, delta):
    classic = classic_optimum_linear(rho, delta)
    tight = rdp_to_dp(lambda a: rho * a, delta, conversion="tight")
    assert 0 <= tight.epsilon <= classic.epsilon
    if tight.epsilon > 0:  # no order near the best one does better
        near = tight.alpha + np.array([-1e-3, 1e-3]) * (tight.alpha - 1)
        assert np.all(tight_epsilon(rho * near, near, delta) >= tight.epsilon * (1 - 1e-12))
    alphas = 1 + np.logspace(-6, 6, 200)
    assert np.all(tight_epsilon(rho * alphas, alphas, delta) <= classic_epsilon(rho * alphas, alphas, delta))


@pytest.mark.parametrize(("sensitivity", "sigma", "delta"), [(1.0, 0.5, 1e-5), (1.0, 2.0, 1e-5), (2.0, 7.0, 1e-8),
                                                              (1.0, 30.0, 1e-6)])
def test_conversions_are_valid_against_the_exact_gaussian_profile(sensitivity, sigma, delta, gaussian_profile):
    exact = gaussian_profile(sensitivity, sigma, delta)
    tight = gaussian_epsilon(sensitivity, sigma, delta, conversion="tight").epsilon
    classic = gaussian_epsilon(sensitivity, sigma, delta).epsilon
    assert exact <= tight <= classic
    assert tight <= 2.0 * exact + 0.5  # and not vacuous


def test_agrees_with_dp_accounting_at_its_orders():
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_acc

    orders = [1.25, 1.5, 2.0, 3.0, 5.0, 8.0, 16.0, 32.0, 64.0, 256.0]
    for sensitivity, sigma, delta in ((1.0, 1.1, 1e-5), (2.0, 7.0, 1e-8), (0.5, 0.9, 1e-6)):
        accountant = rdp_acc.RdpAccountant(orders)
        accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier=sigma / sensitivity))
        ours = gaussian_rdp(np.array(orders), sensitivity, sigma)
        np.testing.assert_allclose(ours, accountant._rdp, rtol=1e-9)
        for order, value in zip(orders, ours, strict=True):
            theirs, _ = rdp_acc.compute_epsilon([order], [value], delta)
            assert tight_epsilon(value, order, delta) == pytest.approx(theirs, rel=1e-9, abs=1e-12)
        eps, order = accountant.get_epsilon_and_optimal_order(delta)
        best = gaussian_epsilon(sensitivity, sigma, delta, conversion="tight")
        assert best.epsilon <= eps + 1e-12  # the continuous minimum beats a grid of orders
        assert best.epsilon == pytest.approx(eps, rel=0.05)


@pytest.mark.parametrize("conversion", ["classic", "tight"])
@pytest.mark.parametrize("bound", ["claimed", "post-processing"])
def test_sigma_for_epsilon_inverts_and_is_monotone(bound, conversion):
    sigmas = [sigma_for_epsilon(eps, 1e-6, sensitivity=4.0, steps=25, bound=bound, conversion=conversion)
              for eps in (0.5, 1.0, 8.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0
    for eps, sigma in zip((0.5, 1.0, 8.0), sigmas, strict=True):
        got = gaussian_epsilon(4.0, sigma, 1e-6, steps=25, bound=bound, conversion=conversion).epsilon
        assert got == pytest.approx(eps, rel=1e-8)
    if bound == "claimed":
        post = sigma_for_epsilon(1.0, 1e-6, sensitivity=4.0, steps=25, conversion=conversion)
        assert sigmas[1] == pytest.approx(post / 5.0, rel=1e-8)


def test_classic_sigma_has_the_closed_form():
    log_inv = math.log(1e5)
    sigma = sigma_for_epsilon(1.0, 1e-5, sensitivity=1.0)
    assert sigma == pytest.approx(1 / math.sqrt(2 * (math.sqrt(log_inv + 1) - math.sqrt(log_inv)) ** 2), rel=1e-14)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: gaussian_epsilon(1.0, 1.0, 0.0), "delta"),
    (lambda: gaussian_epsilon(1.0, 1.0, 1.0), "delta"),
    (lambda: gaussian_epsilon(1.0, 1.0, float("nan")), "delta"),
    (lambda: gaussian_epsilon(1.0, 0.0, 1e-5), "sigma"),
    (lambda: gaussian_epsilon(1.0, float("inf"), 1e-5), "sigma"),
    (lambda: gaussian_epsilon(-1.0, 1.0, 1e-5), "sensitivity"),
    (lambda: gaussian_epsilon(1.0, 1.0, 1e-5, steps=0), "steps"),
    (lambda: gaussian_epsilon(1.0, 1.0, 1e-5, steps=2.0), "steps"),  # type: ignore[arg-type]
    (lambda: gaussian_epsilon(1.0, 1.0, 1e-5, steps=True), "steps"),
    (lambda: gaussian_epsilon(1.0, 1.0, 1e-5, bound="amplified"), "bound"),  # type: ignore[arg-type]
    (lambda: gaussian_epsilon(1.0, 1.0, 1e-5, conversion="best"), "conversion"),  # type: ignore[arg-type]
    (lambda: gaussian_rdp(1.0, 1.0, 1.0), "alpha"),
    (lambda: tight_epsilon(-1.0, 2.0, 1e-5), "RDP"),
    (lambda: sigma_for_epsilon(0.0, 1e-5, sensitivity=1.0), "epsilon"),
    (lambda: sigma_for_epsilon(1e300, 1e-5, sensitivity=1.0, conversion="tight"), "out of reach"),
    (lambda: gaussian_epsilon(1e200, 1e-200, 1e-5), "range"),
])
def test_bad_input_is_one_line_naming_it(call, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
