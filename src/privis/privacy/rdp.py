"""Rényi differential privacy of the Gaussian mechanism and its conversion to ``(epsilon, delta)``-DP.

RDP (I. Mironov, "Rényi Differential Privacy", IEEE CSF 2017, arXiv:1702.07476) measures a mechanism by the
Rényi divergence ``D_alpha`` of its outputs on neighbouring inputs, one value per order ``alpha > 1``. The
Gaussian mechanism ``x -> q(x) + N(0, sigma^2 I)`` with L2 sensitivity ``Delta`` of ``q`` is
``(alpha, alpha Delta^2 / (2 sigma^2))``-RDP for every ``alpha > 1`` (Mironov 2017): its curve is linear,
``rdp(alpha) = rho alpha`` with ``rho = Delta^2 / (2 sigma^2)``.

Two bounds on a mechanism that iterates ``T`` noisy steps ``z_{t+1} = psi(z_t) + N(0, sigma^2 I)`` (the shape
of DP-Image, H. Xue, PhD thesis, University of Technology Sydney, 2023, Algorithm 6):

* ``"claimed"``: privacy amplification by iteration (V. Feldman, I. Mironov, K. Talwar and A. Thakurta,
  "Privacy Amplification by Iteration", FOCS 2018, arXiv:1808.06651) gives ``rho = Delta^2 / (2 T sigma^2)``,
  valid only when every ``psi`` is contractive (1-Lipschitz in L2); the thesis' Theorem 4.4.1.
* ``"post-processing"``: the input enters only at the first step, so the release is post-processing of one
  Gaussian mechanism: ``rho = Delta^2 / (2 sigma^2)``, whatever ``psi`` is.

Conversions of an RDP curve to ``(epsilon, delta)``-DP, each minimised over the order:

* ``"classic"``: ``epsilon = rdp(alpha) + log(1/delta) / (alpha - 1)`` (Mironov 2017, Proposition 3; the
  thesis' Lemma 4.3.1). For a linear curve the optimum is closed-form:
  ``alpha* = 1 + sqrt(log(1/delta) / rho)`` and ``epsilon* = rho + 2 sqrt(rho log(1/delta))``.
* ``"tight"``: ``epsilon = rdp(alpha) + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)``
  (B. Balle, G. Barthe, M. Gaboardi, J. Hsu and T. Sato, "Hypothesis Testing Interpretations and Rényi
  Differential Privacy", AISTATS 2020, arXiv:1905.09982, Theorem 21; also C. Canonne, G. Kamath and T. Steinke,
  "The Discrete Gaussian for Differential Privacy", NeurIPS 2020, arXiv:2004.00010, Proposition 12; the
  conversion of Opacus and Google's ``dp-accounting``), with ``epsilon = 0`` where
  ``delta^2 > 1 - exp(-rdp(alpha))`` (the total-variation bound from the KL divergence, as ``dp-accounting``
  does). Never larger than the classic value at the same order.

The minimisation over ``alpha`` is continuous: a log-spaced scan of ``alpha - 1`` over
:data:`ALPHA_RANGE` locates the basin and :func:`scipy.optimize.minimize_scalar` refines it, so the best
order is returned, not a grid point.

Examples:
    >>> from privis.privacy.rdp import gaussian_epsilon, classic_optimum_linear
    >>> best = gaussian_epsilon(1.0, 2.0, 1e-5)          # one release, sensitivity 1, sigma 2
    >>> round(best.epsilon, 4), round(best.alpha, 3)
    (2.5243, 10.597)
    >>> best.epsilon == classic_optimum_linear(1 / 8, 1e-5).epsilon
    True
    >>> gaussian_epsilon(1.0, 2.0, 1e-5, conversion="tight").epsilon < best.epsilon
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from privis.errors import InvalidInputError

__all__ = ["ALPHA_RANGE", "BOUNDS", "CONVERSIONS", "Conversion", "check_delta", "check_number", "check_steps",
           "classic_epsilon", "classic_optimum_linear", "gaussian_epsilon", "gaussian_rdp", "rdp_rate", "rdp_to_dp",
           "sigma_for_epsilon", "tight_epsilon"]

Bound = Literal["claimed", "post-processing"]
ConversionName = Literal["classic", "tight"]
#: The bounds on an iterated Gaussian mechanism (module docstring).
BOUNDS: tuple[str, ...] = ("claimed", "post-processing")
#: The RDP -> (epsilon, delta) conversions (module docstring).
CONVERSIONS: tuple[str, ...] = ("classic", "tight")
#: Orders searched by :func:`rdp_to_dp`: ``alpha`` from ``1 + 1e-10`` to ``1e12``.
ALPHA_RANGE: tuple[float, float] = (1.0 + 1e-10, 1e12)
_SCAN_POINTS = 2001


@dataclass(frozen=True)
class Conversion:
    """The smallest ``epsilon`` a conversion gives over the orders, and the order ``alpha`` reaching it."""

    epsilon: float
    alpha: float


def check_number(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float after checking it is a finite number ``> 0`` (``>= 0`` with ``allow_zero``).

    Raises:
        InvalidInputError: ``"{name} must be a finite number > 0, got ..."`` (bools and strings refused).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def check_delta(delta: Any) -> float:
    """``delta`` as a float after checking ``0 < delta < 1``.

    Raises:
        InvalidInputError: not a number in the open interval ``(0, 1)``.
    """
    value = check_number(delta, "delta")
    if value >= 1:
        raise InvalidInputError(f"delta must be in (0, 1), got {value!r}")
    return value


def check_steps(steps: Any) -> int:
    """``steps`` (iterations ``T``) as an int after checking it is an integer ``>= 1``.

    Raises:
        InvalidInputError: not an integer, or below 1.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise InvalidInputError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _check_choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _orders(alpha: Any) -> np.ndarray:
    orders = np.asarray(alpha, dtype=np.float64)
    if not np.all(np.isfinite(orders)) or np.any(orders <= 1):
        raise InvalidInputError("every order alpha must be a finite number > 1")
    return orders


def gaussian_rdp(alpha: float | np.ndarray, sensitivity: float, sigma: float) -> float | np.ndarray:
    """RDP of the Gaussian mechanism: ``alpha sensitivity^2 / (2 sigma^2)`` (Mironov 2017).

    Args:
        alpha: order(s) ``> 1``, a float or an array (the result has its shape).
        sensitivity: L2 sensitivity ``Delta > 0`` of the noised query (same units as ``sigma``).
        sigma: standard deviation ``> 0`` of the Gaussian noise per coordinate.

    Returns:
        The Rényi divergence bound in nats, a float for a float ``alpha``, else an array.

    Raises:
        InvalidInputError: an order ``<= 1``, a non-positive or non-finite sensitivity or sigma.
    """
    orders = _orders(alpha)
    value = orders * rdp_rate(sensitivity, sigma)
    return float(value) if value.ndim == 0 else value


def rdp_rate(sensitivity: float, sigma: float, steps: int = 1, bound: Bound = "post-processing") -> float:
    """The slope ``rho`` of the linear RDP curve ``rdp(alpha) = rho alpha`` of a ``steps``-fold iterated
    Gaussian mechanism: ``Delta^2 / (2 T sigma^2)`` under ``"claimed"`` (amplification by iteration, Feldman et
    al. 2018, for contractive maps), ``Delta^2 / (2 sigma^2)`` under ``"post-processing"`` (any maps).

    Raises:
        InvalidInputError: a non-positive or non-finite sensitivity or sigma, ``steps`` not an integer
            ``>= 1``, an unknown bound.
    """
    sensitivity = check_number(sensitivity, "sensitivity")
    sigma = check_number(sigma, "sigma")
    steps = check_steps(steps)
    _check_choice(bound, "bound", BOUNDS)
    ratio = sensitivity / sigma
    rho = ratio * ratio / (2.0 * (steps if bound == "claimed" else 1))
    if not math.isfinite(rho) or rho <= 0:
        raise InvalidInputError(f"sensitivity^2 / (2 sigma^2) = {rho!r} is out of floating-point range")
    return rho


def _classic(rdp: np.ndarray, am1: np.ndarray, log_inv_delta: float) -> np.ndarray:
    return rdp + log_inv_delta / am1


def _tight(rdp: np.ndarray, am1: np.ndarray, delta: float) -> np.ndarray:
    log_alpha = np.log1p(am1)
    eps = rdp + (np.log(am1) - log_alpha) - (math.log(delta) + log_alpha) / am1
    eps = np.where(delta**2 + np.expm1(-rdp) > 0, 0.0, eps)  # total variation <= sqrt(1 - exp(-KL)) <= delta
    return np.maximum(eps, 0.0)


def classic_epsilon(rdp: float | np.ndarray, alpha: float | np.ndarray, delta: float) -> float | np.ndarray:
    """``rdp + log(1/delta) / (alpha - 1)``: the classic conversion at given orders (Mironov 2017, Prop. 3).

    Args:
        rdp: the RDP value(s) at ``alpha`` (nats, ``>= 0``).
        alpha: order(s) ``> 1``, broadcast with ``rdp``.
        delta: in ``(0, 1)``.

    Raises:
        InvalidInputError: an order ``<= 1``, a negative or non-finite RDP value, a bad delta.
    """
    return _per_order(rdp, alpha, delta, "classic")


def tight_epsilon(rdp: float | np.ndarray, alpha: float | np.ndarray, delta: float) -> float | np.ndarray:
    """``rdp + log((alpha-1)/alpha) - (log(delta) + log(alpha)) / (alpha-1)`` at given orders, clipped at 0
    (Balle et al. 2020, Theorem 21; 0 where ``delta^2 > 1 - exp(-rdp)``). Arguments and errors as
    :func:`classic_epsilon`."""
    return _per_order(rdp, alpha, delta, "tight")


def _per_order(rdp: Any, alpha: Any, delta: float, conversion: str) -> float | np.ndarray:
    delta = check_delta(delta)
    values = np.asarray(rdp, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InvalidInputError("every RDP value must be a finite number >= 0")
    am1 = _orders(alpha) - 1.0
    eps = _classic(values, am1, -math.log(delta)) if conversion == "classic" else _tight(values, am1, delta)
    return float(eps) if eps.ndim == 0 else eps


def classic_optimum_linear(rho: float, delta: float) -> Conversion:
    """Closed-form optimum of the classic conversion for ``rdp(alpha) = rho alpha``:
    ``alpha* = 1 + sqrt(log(1/delta) / rho)``, ``epsilon* = rho + 2 sqrt(rho log(1/delta))``.

    Raises:
        InvalidInputError: ``rho`` not finite and ``> 0``, a bad delta.
    """
    rho = check_number(rho, "rho")
    log_inv_delta = -math.log(check_delta(delta))
    return Conversion(epsilon=rho + 2.0 * math.sqrt(rho * log_inv_delta),
                      alpha=1.0 + math.sqrt(log_inv_delta / rho))


def rdp_to_dp(curve: Callable[[np.ndarray], np.ndarray], delta: float, *,
              conversion: ConversionName = "classic") -> Conversion:
    """The smallest ``epsilon`` of ``(epsilon, delta)``-DP an RDP curve gives, minimised over ``alpha``.

    Args:
        curve: ``alpha -> rdp(alpha)`` in nats, vectorised over a float64 array of orders in
            :data:`ALPHA_RANGE` (any shape; non-finite values are treated as no bound at that order).
        delta: in ``(0, 1)``.
        conversion: ``"classic"`` or ``"tight"`` (module docstring).

    Returns:
        The best ``epsilon`` (``>= 0``) and the order reaching it, refined continuously (bounded Brent search
        on ``log(alpha - 1)`` around the best of a 2001-point log-spaced scan).

    Raises:
        InvalidInputError: a bad delta or conversion, or a curve finite at no order of :data:`ALPHA_RANGE`.
    """
    from scipy.optimize import minimize_scalar

    delta = check_delta(delta)
    _check_choice(conversion, "conversion", CONVERSIONS)
    log_inv_delta = -math.log(delta)

    def objective(log_am1: np.ndarray) -> np.ndarray:
        am1 = np.exp(log_am1)
        rdp = np.asarray(curve(1.0 + am1), dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            eps = _classic(rdp, am1, log_inv_delta) if conversion == "classic" else _tight(rdp, am1, delta)
        return np.where(np.isfinite(eps) & (rdp >= 0), eps, np.inf)

    lo, hi = math.log(ALPHA_RANGE[0] - 1.0), math.log(ALPHA_RANGE[1] - 1.0)
    grid = np.linspace(lo, hi, _SCAN_POINTS)
    values = objective(grid)
    best = int(np.argmin(values))
    if not math.isfinite(values[best]):
        raise InvalidInputError("the RDP curve gives no finite epsilon at any order in ALPHA_RANGE")
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    refined = minimize_scalar(lambda u: float(objective(np.array(u))), bounds=(left, right), method="bounded",
                              options={"xatol": 1e-12})
    log_am1, eps = (float(refined.x), float(refined.fun)) if refined.fun <= values[best] else (grid[best],
                                                                                                 values[best])
    return Conversion(epsilon=float(eps), alpha=1.0 + math.exp(log_am1))


def gaussian_epsilon(sensitivity: float, sigma: float, delta: float, *, steps: int = 1,
                     bound: Bound = "post-processing", conversion: ConversionName = "classic") -> Conversion:
    """``(epsilon, delta)`` of a ``steps``-fold iterated Gaussian mechanism under ``bound`` and ``conversion``.

    The classic conversion uses :func:`classic_optimum_linear` (closed form); the tight one minimises
    numerically (:func:`rdp_to_dp`). See :func:`rdp_rate` for the arguments.

    Raises:
        InvalidInputError: any input out of its range (see :func:`rdp_rate`, :func:`check_delta`).
    """
    rho = rdp_rate(sensitivity, sigma, steps, bound)
    _check_choice(conversion, "conversion", CONVERSIONS)
    if conversion == "classic":
        return classic_optimum_linear(rho, delta)
    return rdp_to_dp(lambda alpha: rho * alpha, delta, conversion="tight")


def sigma_for_epsilon(epsilon: float, delta: float, *, sensitivity: float, steps: int = 1,
                      bound: Bound = "post-processing", conversion: ConversionName = "classic") -> float:
    """The smallest noise ``sigma`` reaching ``(epsilon, delta)``-DP under ``bound`` and ``conversion``.

    ``epsilon`` grows with ``rho = sensitivity^2 / (2 T' sigma^2)`` (``T' = steps`` under ``"claimed"``, 1
    under ``"post-processing"``), so the target fixes ``rho``: in closed form for the classic conversion
    (``sqrt(rho) = sqrt(log(1/delta) + epsilon) - sqrt(log(1/delta))``), by Brent's root search on
    ``log(rho)`` for the tight one.

    Args:
        epsilon: target ``> 0`` (finite).
        delta: in ``(0, 1)``.
        sensitivity: L2 sensitivity ``> 0`` (units of ``sigma``).
        steps: iterations ``T >= 1``.
        bound: ``"claimed"`` or ``"post-processing"``.
        conversion: ``"classic"`` or ``"tight"``.

    Returns:
        ``sigma`` in the units of ``sensitivity``.

    Raises:
        InvalidInputError: an input out of range, or a target no finite positive ``sigma`` reaches in
            floating point.
    """
    from scipy.optimize import brentq

    epsilon = check_number(epsilon, "epsilon")
    delta = check_delta(delta)
    sensitivity = check_number(sensitivity, "sensitivity")
    steps = check_steps(steps)
    _check_choice(bound, "bound", BOUNDS)
    _check_choice(conversion, "conversion", CONVERSIONS)
    if conversion == "classic":
        log_inv_delta = -math.log(delta)
        rho = (math.sqrt(log_inv_delta + epsilon) - math.sqrt(log_inv_delta)) ** 2
    else:
        def gap(log_rho: float) -> float:
            rho = math.exp(log_rho)
            return rdp_to_dp(lambda alpha: rho * alpha, delta, conversion="tight").epsilon - epsilon

        lo, hi = -200.0, 200.0
        if gap(hi) < 0:
            raise InvalidInputError(f"epsilon {epsilon!r} is out of reach: it needs rho > e^200")
        rho = math.exp(brentq(gap, lo, hi, xtol=1e-12, rtol=1e-13))
    sigma = sensitivity / math.sqrt(2.0 * rho * (steps if bound == "claimed" else 1))
    if not math.isfinite(sigma) or sigma <= 0:
        raise InvalidInputError(f"epsilon {epsilon!r} at delta {delta!r} needs a sigma out of floating-point range")
    return sigma
