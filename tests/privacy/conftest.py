"""The exact privacy profile of one Gaussian release, the reference the accountant and the audit are checked
against (B. Balle and Y.-X. Wang, "Improving the Gaussian Mechanism for Differential Privacy: Analytical
Calibration and Optimal Denoising", ICML 2018, arXiv:1805.06530, Theorem 8)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from scipy.optimize import brentq
from scipy.stats import norm


def exact_gaussian_epsilon(sensitivity: float, sigma: float, delta: float) -> float:
    """The smallest epsilon with ``(epsilon, delta)``-DP for ``x + N(0, sigma^2)``, sensitivity ``Delta``:
    ``delta(eps) = Phi(Delta/(2 sigma) - eps sigma/Delta) - e^eps Phi(-Delta/(2 sigma) - eps sigma/Delta)``."""
    a, b = sensitivity / (2 * sigma), sigma / sensitivity

    def excess(eps: float) -> float:
        return norm.cdf(a - eps * b) - math.exp(eps) * norm.cdf(-a - eps * b) - delta

    return 0.0 if excess(0.0) <= 0 else brentq(excess, 0.0, 500.0, xtol=1e-12)


@pytest.fixture
def gaussian_profile() -> Callable[[float, float, float], float]:
    return exact_gaussian_epsilon
