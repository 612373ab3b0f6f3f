"""The distinguishing-game audit: Clopper-Pearson intervals, the bound's formula, and a Gaussian mechanism whose
true epsilon is known (the exact profile of tests/privacy/conftest.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import beta

from privis.errors import InvalidInputError
from privis.privacy.audit import audit_mechanism, clopper_pearson, compare, epsilon_lower_bound


def test_clopper_pearson_closed_forms_at_the_edges():
    lo, hi = clopper_pearson(0, 50, 0.9)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.05 ** (1 / 50), rel=1e-12)
    lo, hi = clopper_pearson(50, 50, 0.9)
    assert hi == 1.0 and lo == pytest.approx(0.05 ** (1 / 50), rel=1e-12)
    lo, hi = clopper_pearson(7, 20, 0.95)
    assert lo == pytest.approx(beta.ppf(0.025, 7, 14)) and hi == pytest.approx(beta.ppf(0.975, 8, 13))
    assert lo < 7 / 20 < hi


def test_epsilon_lower_bound_is_the_conservative_formula():
    tpr_lo, _ = clopper_pearson(900, 1000, 0.95)
    _, fpr_hi = clopper_pearson(30, 1000, 0.95)
    expected = max(math.log((tpr_lo - 1e-5) / fpr_hi), math.log((1 - fpr_hi - 1e-5) / (1 - tpr_lo)))
    assert epsilon_lower_bound(900, 1000, 30, 1000, delta=1e-5) == pytest.approx(expected, rel=1e-12)
    # the second term wins when the test rarely errs on x1: (1 - FPR) / (1 - TPR)
    tpr_lo, _ = clopper_pearson(990, 1000, 0.95)
    _, fpr_hi = clopper_pearson(400, 1000, 0.95)
    assert epsilon_lower_bound(990, 1000, 400, 1000) == pytest.approx(math.log((1 - fpr_hi) / (1 - tpr_lo)))
    assert epsilon_lower_bound(500, 1000, 500, 1000) == 0.0
    assert epsilon_lower_bound(1000, 1000, 0, 1000, delta=0.999) == 0.0  # delta eats everything
    # more trials, same rates: a larger bound
    assert epsilon_lower_bound(9000, 10000, 300, 10000) > epsilon_lower_bound(900, 1000, 30, 1000)


def test_compare():
    assert compare(2.0, 1.0) == "violated"
    assert compare(0.5, 1.0) == "consistent"
    assert compare(3.0, math.inf) == "consistent"
    with pytest.raises(InvalidInputError):
        compare(-1.0, 1.0)


def _gaussian(sigma: float):
    def mechanism(x: torch.Tensor) -> torch.Tensor:
        return x + sigma * torch.randn(x.shape, dtype=x.dtype, device=x.device)

    return mechanism


@pytest.mark.parametrize(("sigma", "least"), [(0.3, 3.0), (1.0, 0.8), (100.0, None)])
def test_audit_of_a_gaussian_mechanism_respects_its_true_epsilon(sigma, least, gaussian_profile, device):
    """Weak noise: a clearly positive bound, below the true epsilon (2000 evaluation runs cannot show more
    than about log(2000 / 3.7) = 6.3); huge noise: 0."""
    delta = 1e-5
    x0, x1 = torch.zeros(1, 1, device=device), torch.ones(1, 1, device=device)
    result = audit_mechanism(_gaussian(sigma), x0, x1, trials=4000, delta=delta, random_state=0, batch_size=1000)
    true_eps = gaussian_profile(1.0, sigma, delta)
    assert result.epsilon_lower <= true_eps
    if least is not None:
        assert result.epsilon_lower > least
    else:
        assert result.epsilon_lower == 0.0
    assert result.positives == result.negatives == 2000
    assert result.tpr_interval[0] <= result.tpr <= result.tpr_interval[1]
    assert result.fpr_interval[0] <= result.fpr <= result.fpr_interval[1]
    assert compare(result.epsilon_lower, true_eps) == "consistent"
    record = result.to_dict()
    assert record["true_positives"] == result.true_positives and len(record["tpr_interval"]) == 2


def test_audit_catches_an_overclaim_and_is_reproducible():
    x0, x1 = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.05)  # an image-shaped pair, small L2 gap 0.35
    runs = [audit_mechanism(_gaussian(0.05), x0, x1, trials=2000, delta=1e-5, random_state=3) for _ in range(2)]
    assert runs[0] == runs[1]
    state = torch.random.get_rng_state()
    audit_mechanism(_gaussian(0.05), x0, x1, trials=8, random_state=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left as it was
    assert compare(runs[0].epsilon_lower, 1.0) == "violated"  # true eps ~ 30: a claim of 1 is refuted


def test_bad_arguments():
    x = torch.zeros(1, 2)
    with pytest.raises(InvalidInputError, match="batch dimension"):
        audit_mechanism(_gaussian(1.0), x, torch.zeros(1, 3))
    with pytest.raises(InvalidInputError, match="trials"):
        audit_mechanism(_gaussian(1.0), x, x, trials=2)
    with pytest.raises(InvalidInputError, match="one output per input"):
        audit_mechanism(lambda b: b[:1], x, x, trials=8)
    with pytest.raises(InvalidInputError, match="exceed"):
        epsilon_lower_bound(11, 10, 0, 10)
    with pytest.raises(InvalidInputError, match="confidence"):
        epsilon_lower_bound(1, 10, 0, 10, confidence=1.0)
    with pytest.raises(InvalidInputError, match="delta"):
        epsilon_lower_bound(1, 10, 0, 10, delta=np.float64(1.0))
