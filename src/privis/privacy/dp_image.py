"""What DP-Image's noise proves: the thesis' claimed bound beside the bound that needs no assumption.

DP-Image (H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology",
PhD thesis, University of Technology Sydney, 2023, Chapter 4, Algorithm 6) encodes an image to a latent
``z = f(X)`` of dimension ``d``, clips it, adds ``N(0, sigma^2 I_d)``, decodes with ``g`` and repeats ``T`` times.

* **Sensitivity** (Definition 4.4.2, Eq. 4.10-4.12): the L2 diameter of the clipped latent set.
  :func:`sensitivity` gives ``2 c sqrt(d)`` for the box ``[-c, c]^d`` (the thesis' ``c = 20``,
  ``d = 18 x 512``: 3840) and ``2 c`` for the L2 ball of radius ``c``.
* **Claimed** (Theorem 4.4.1): ``(alpha, alpha Delta^2 / (2 T sigma^2))``-RDP by privacy amplification by
  iteration (V. Feldman, I. Mironov, K. Talwar and A. Thakurta, FOCS 2018, arXiv:1808.06651). It holds only
  if the iterated map ``psi = clip o f o g`` is contractive (1-Lipschitz in L2). A trained encoder-decoder
  pair is not known to be; the codec's measurement (``privis.latent``) or a certified bound decides the
  verdict printed beside it.
  (The theorem's remark that ``alpha = infinity`` gives pure DP does not hold for Gaussian noise: the RDP
  of every order is finite but unbounded in ``alpha``, so pure epsilon is infinite; privis reports none.)
* **Post-processing**: the image enters only at the first step, so the release is post-processing of one
  Gaussian mechanism of sensitivity ``Delta``: ``(alpha, alpha Delta^2 / (2 sigma^2))``-RDP for any codec.

Each bound is converted to ``(epsilon, delta)``-DP both ways of :mod:`privis.privacy.rdp` (classic, as in the
thesis' Lemma 4.3.1, and the tighter conversion of Balle et al., AISTATS 2020), each with its best order.

When only some latent groups are noised, the others are released as a deterministic function of the image:
no finite epsilon protects neighbours that differ there. :attr:`DPImageBounds.coverage` says so in words.

Examples:
    >>> from privis.privacy.dp_image import dp_image_bounds, sensitivity
    >>> sensitivity(20.0, 18 * 512)
    3840.0
    >>> bounds = dp_image_bounds(sensitivity=3840.0, sigma=0.2, steps=100_000, delta=1e-8)
    >>> round(bounds.claimed.epsilon, 1), round(bounds.claimed.alpha, 5), bounds.verdict
    (2211.7, 1.09997, 'unverified')
    >>> bounds.post_processing.epsilon > 1e8
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.privacy.rdp import (
    Bound,
    check_delta,
    check_number,
    check_steps,
    classic_optimum_linear,
    rdp_rate,
    rdp_to_dp,
    sigma_for_epsilon,
)

__all__ = ["ASSUMPTIONS", "BoundStatement", "DPImageBounds", "dp_image_bounds", "sensitivity"]

#: The one-line assumption behind each bound.
ASSUMPTIONS: dict[str, str] = {
    "claimed": "psi = clip o f o g is 1-Lipschitz (contractive) in L2 at every step (amplification by iteration)",
    "post-processing": "none on the codec: one Gaussian release of the clipped latent, then post-processing",
}

Verdict = Literal["certified", "supported by measurement", "not supported", "unverified"]


def sensitivity(clip: float, latent_dim: int, clip_kind: str = "box") -> float:
    """L2 sensitivity of the clipped latent (thesis Eq. 4.10-4.12): the largest ``||z - z'||_2`` of two clipped
    latents.

    Args:
        clip: the clipping bound ``c > 0`` (latent units): the box ``[-c, c]`` per coordinate, or the L2 radius.
        latent_dim: ``d >= 1``, the number of noised latent coordinates.
        clip_kind: ``"box"`` (``2 c sqrt(d)``) or ``"l2"`` (``2 c``, whatever ``d``).

    Returns:
        ``Delta`` in latent units.

    Raises:
        InvalidInputError: a non-positive or non-finite clip, ``latent_dim`` not an integer ``>= 1``, an unknown
            clip kind.
    """
    clip = check_number(clip, "clip")
    latent_dim = check_int(latent_dim, "latent_dim")
    if clip_kind == "box":
        return 2.0 * clip * math.sqrt(latent_dim)
    if clip_kind == "l2":
        return 2.0 * clip
    raise InvalidInputError(f"clip_kind must be 'box' or 'l2', got {clip_kind!r}")


@dataclass(frozen=True)
class BoundStatement:
    """One ``(epsilon, delta)`` statement on DP-Image's release.

    Attributes:
        name: ``"claimed"`` or ``"post-processing"``.
        rdp_rate: ``rho`` of the linear RDP curve ``rdp(alpha) = rho alpha`` (nats).
        epsilon: classic conversion (Mironov 2017, Prop. 3), minimised over the order.
        alpha: the order reaching ``epsilon``.
        epsilon_tight: tight conversion (Balle et al. 2020, Thm 21), minimised over the order.
        alpha_tight: the order reaching ``epsilon_tight``.
        assumption: the one-line assumption it rests on.
        sigma_for_target: with a target epsilon: the noise needed under this bound, classic conversion.
        sigma_for_target_tight: the same under the tight conversion.
    """

    name: str
    rdp_rate: float
    epsilon: float
    alpha: float
    epsilon_tight: float
    alpha_tight: float
    assumption: str
    sigma_for_target: float | None = None
    sigma_for_target_tight: float | None = None


@dataclass(frozen=True)
class DPImageBounds:
    """The claimed and the post-processing statement side by side, and what backs the claimed one.

    Attributes:
        sensitivity, sigma, steps, delta: the inputs (latent units; ``delta`` in ``(0, 1)``).
        claimed: Theorem 4.4.1's statement (amplification by iteration).
        post_processing: the statement that holds for any codec.
        verdict: on the claimed statement's assumption: ``"certified"`` (a certified Lipschitz bound
            ``<= 1``), ``"supported by measurement"`` (a measured constant ``<= 1``), ``"not supported"``
            (above 1), ``"unverified"`` (nothing given).
        lipschitz: the Lipschitz constant given (echoed; measured by ``privis.latent``), or None.
        certified: whether ``lipschitz`` is a certified upper bound rather than a measurement.
        coverage: which neighbouring images the statements cover (all, or only those whose latents agree
            outside the perturbed groups).
        target_epsilon: the target the ``sigma_for_target`` fields answer, or None.
    """

    sensitivity: float
    sigma: float
    steps: int
    delta: float
    claimed: BoundStatement
    post_processing: BoundStatement
    verdict: Verdict
    lipschitz: float | None
    certified: bool
    coverage: str
    target_epsilon: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (nested dicts for the two statements)."""
        return asdict(self)

    @classmethod
    def from_dp_parameters(cls, params: Mapping[str, Any], delta: float, *, lipschitz: float | None = None,
                           target_epsilon: float | None = None) -> DPImageBounds:
        """Bounds for a protector's :meth:`~privis.methods.base.Protector.dp_parameters` record.

        A ``lipschitz_bound`` in the record is certified and decides the verdict; otherwise ``lipschitz`` (a
        measurement, e.g. ``privis.latent.measure_lipschitz(...).estimate``) does.

        Raises:
            InvalidInputError: a record of another mechanism, a missing key, or any value out of range.
        """
        if params.get("mechanism") != "dp-image":
            raise InvalidInputError(f"dp_parameters is for mechanism {params.get('mechanism')!r}, not 'dp-image'")
        missing = [k for k in ("sensitivity", "sigma", "steps") if k not in params]
        if missing:
            raise InvalidInputError(f"dp_parameters lacks {', '.join(missing)}")
        certified_bound = params.get("lipschitz_bound")
        return dp_image_bounds(
            sensitivity=params["sensitivity"], sigma=params["sigma"], steps=params["steps"], delta=delta,
            lipschitz=certified_bound if certified_bound is not None else lipschitz,
            certified=certified_bound is not None, groups=params.get("groups"),
            perturbed_groups=params.get("perturbed_groups"), target_epsilon=target_epsilon)


def _verdict(lipschitz: float | None, certified: bool) -> Verdict:
    if lipschitz is None:
        return "unverified"
    if lipschitz > 1:
        return "not supported"
    return "certified" if certified else "supported by measurement"


def _coverage(groups: int | None, perturbed: Sequence[int] | None) -> str:
    if perturbed is None:
        return "all latent coordinates are perturbed: the bounds cover every pair of images"
    if groups is None:
        raise InvalidInputError("perturbed_groups needs groups (the number of latent groups G)")
    groups = check_int(groups, "groups")
    given = list(perturbed)
    if not given or any(isinstance(g, bool) or not isinstance(g, int | np.integer) or not 0 <= g < groups
                        for g in given):
        raise InvalidInputError(f"perturbed_groups must be indices in [0, {groups - 1}], at least one; got {given!r}")
    chosen = sorted({int(g) for g in given})
    if len(chosen) == groups:
        return f"all {groups} latent groups are perturbed: the bounds cover every pair of images"
    kept = [g for g in range(groups) if g not in set(chosen)]
    return (f"only latent groups {chosen} of {groups} are perturbed; groups {kept} are released as a deterministic "
            "function of the image, so no finite epsilon holds for neighbours whose latents differ there: the "
            "bounds cover only pairs of images whose latents agree outside the perturbed groups")


def _statement(bound: Bound, sensitivity: float, sigma: float, steps: int, delta: float,
               target_epsilon: float | None) -> BoundStatement:
    rho = rdp_rate(sensitivity, sigma, steps, bound)
    classic = classic_optimum_linear(rho, delta)
    tight = rdp_to_dp(lambda alpha: rho * alpha, delta, conversion="tight")
    needed = {c: sigma_for_epsilon(target_epsilon, delta, sensitivity=sensitivity, steps=steps, bound=bound,
                                   conversion=c) if target_epsilon is not None else None
              for c in ("classic", "tight")}
    return BoundStatement(name=bound, rdp_rate=rho, epsilon=classic.epsilon, alpha=classic.alpha,
                          epsilon_tight=tight.epsilon, alpha_tight=tight.alpha, assumption=ASSUMPTIONS[bound],
                          sigma_for_target=needed["classic"], sigma_for_target_tight=needed["tight"])


def dp_image_bounds(*, sensitivity: float, sigma: float, steps: int, delta: float, lipschitz: float | None = None,
                    certified: bool = False, groups: int | None = None, perturbed_groups: Sequence[int] | None = None,
                    target_epsilon: float | None = None) -> DPImageBounds:
    """The claimed (Theorem 4.4.1) and the post-processing ``(epsilon, delta)`` bounds of DP-Image's release.

    Args:
        sensitivity: L2 sensitivity ``Delta > 0`` of the clipped latent (:func:`sensitivity`), latent units.
        sigma: noise standard deviation ``> 0`` per latent coordinate and step, latent units.
        steps: iterations ``T >= 1``.
        delta: in ``(0, 1)``.
        lipschitz: the L2 Lipschitz constant of ``psi = clip o f o g`` (latent to latent), measured or
            certified, ``>= 0``; None when unknown.
        certified: ``lipschitz`` is a certified upper bound, not an estimate.
        groups: latent groups ``G`` (needed with ``perturbed_groups``).
        perturbed_groups: indices in ``[0, G)`` of the noised groups; None means all.
        target_epsilon: also report the ``sigma`` each bound needs for this epsilon (``> 0``).

    Returns:
        :class:`DPImageBounds`.

    Raises:
        InvalidInputError: any value out of its range (one line naming it).
    """
    delta = check_delta(delta)
    steps = check_steps(steps)
    if lipschitz is not None:
        lipschitz = check_number(lipschitz, "lipschitz", allow_zero=True)
    if certified and lipschitz is None:
        raise InvalidInputError("certified=True needs the certified bound as lipschitz")
    coverage = _coverage(groups, perturbed_groups)
    claimed = _statement("claimed", sensitivity, sigma, steps, delta, target_epsilon)
    post = _statement("post-processing", sensitivity, sigma, steps, delta, target_epsilon)
    return DPImageBounds(sensitivity=float(sensitivity), sigma=float(sigma), steps=steps, delta=delta,
                         claimed=claimed, post_processing=post, verdict=_verdict(lipschitz, certified),
                         lipschitz=lipschitz, certified=bool(certified),
                         coverage=coverage, target_epsilon=None if target_epsilon is None else float(target_epsilon))
