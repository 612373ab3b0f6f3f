"""Keyspace analysis: how many bits of secret stand between an attacker and an exhaustive search.

The brute-force keyspace of VisualMixer (Q. Li, Y. Zhang, J. Ren, Q. Li and Y. Zhang, "You Can Use But
Cannot Recognize: Preserving Visual Privacy in Deep Neural Networks", NDSS 2024, arXiv:2404.04098,
Section V-C "Exhaustive search").

The paper counts ``N = sum_i (WS_i^2)!`` permutations for an image whose regions have ``WS_i^2`` pixels.
Independent shuffles of different regions (and, with per-channel shuffling, of different channels)
multiply rather than add, so the number of distinct shuffles of the image is
``prod_i prod_c (k_i)!`` with ``k_i`` the pixel count of region ``i``. Both are reported in bits, computed
with ``lgamma`` so that no factorial is ever formed:

* :func:`keyspace_bits` -- ``log2 prod_i (k_i!)^C`` (the actual number of equally likely shuffles);
* :func:`keyspace_bits_paper` -- ``log2 sum_i k_i!`` (the paper's formula, a lower bound of the above).

Region sizes come from the actual partition of each image (``VisualMixer.transform`` records them), so
edge regions that are not ``WS x WS`` count with their real pixel count.

:func:`keyspace_analysis` sizes the secret of each method for a batch of its owner's images, in bits per
image (``log2`` of the number of equally likely secrets, i.e. the entropy of the secret). It is an
analysis, not an attack: it needs the originals (VisualMixer's partition is computed from them, which only
the defender can do: it sizes the defender's key), and it recovers nothing.

* ``visualmixer``: ``log2 prod_i (k_i!)^C`` over the image's actual regions (and the paper's
  ``log2 sum_i k_i!``), from the protector's record of its partition.
* ``veil`` (S. Pang, R. Ma, B. Li, Y. Zhou and Y. Yao, "Veil Privacy on Visual Data: Concealing Privacy for
  Humans, Unveiling for DNNs", ECCV 2024): the Bernoulli(``p``) flip mask of Eq. (1) has ``n * H(p)`` bits
  of entropy for ``n`` pixel values (``H`` the binary entropy) and ``n * -log2 max(p, 1 - p)`` bits of
  min-entropy. The gradient iteration that follows is deterministic given the mask.
* ``instahide`` (Y. Huang, Z. Song, K. Li and S. Arora, "InstaHide: Instance-hiding Schemes for Private
  Distributed Learning", ICML 2020, arXiv:2010.02772): the sign mask (``n`` bits at ``p = 1/2``) and the
  choice of ``k - 1`` partners among the ``N`` images of the batch, ``(k - 1) log2 N``; the continuous
  coefficients are not counted. The mask bits are moot against the ``invariants`` attack (``|x~|`` does not
  depend on them).
* ``blur``, ``pixelate``, ``perturbation``: deterministic given public parameters: 0 bits.
* ``noise``: continuous noise is not a permutation or a mask: not applicable.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from privis.errors import InvalidInputError, NotApplicableError

__all__ = ["KeyspaceAnalysis", "binary_entropy", "keyspace_analysis", "keyspace_bits", "keyspace_bits_from_counts",
           "keyspace_bits_paper", "log2_factorial"]

_DETERMINISTIC = ("blur", "pixelate", "perturbation")

_LN2 = math.log(2.0)


def log2_factorial(k: int | np.ndarray) -> np.ndarray:
    """``log2(k!)`` via ``lgamma(k + 1)``, elementwise, for ``k >= 0``."""
    k = np.asarray(k, dtype=np.float64)
    if np.any(k < 0):
        raise InvalidInputError("factorial of a negative count")
    from scipy.special import gammaln

    return gammaln(k + 1.0) / _LN2


def keyspace_bits(region_sizes: Sequence[int] | np.ndarray, channels: int = 1) -> float:
    """``log2 prod_i (k_i!)^channels``: bits of the keyspace of independent per-region (per-channel) shuffles."""
    if channels < 1:
        raise InvalidInputError(f"channels must be >= 1, got {channels}")
    return float(channels * log2_factorial(np.asarray(region_sizes)).sum())


def keyspace_bits_paper(region_sizes: Sequence[int] | np.ndarray) -> float:
    """``log2 sum_i k_i!``: the paper's ``N = sum_i (WS_i^2)!`` in bits (Section V-C)."""
    sizes = np.asarray(region_sizes)
    if sizes.size == 0:
        return 0.0
    logs = log2_factorial(sizes) * _LN2
    top = logs.max()
    return float((top + math.log(np.exp(logs - top).sum())) / _LN2)


def keyspace_bits_from_counts(counts: np.ndarray, sizes: Sequence[int] | np.ndarray, channels: int = 1,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Both keyspaces for a batch, from region counts per size class.

    Args:
        counts: ``(N, G)`` number of regions of each class in each image.
        sizes: ``(G,)`` pixel count of a region of each class.
        channels: independently shuffled channels (1 when all channels share the permutation).

    Returns:
        ``(bits, paper_bits)``, each ``(N,)``: :func:`keyspace_bits` and :func:`keyspace_bits_paper`.
    """
    counts = np.asarray(counts, dtype=np.float64)
    lf = log2_factorial(np.asarray(sizes))  # (G,)
    if counts.ndim != 2 or counts.shape[1] != lf.shape[0]:
        raise InvalidInputError(f"counts must be (N, {lf.shape[0]}), got {counts.shape}")
    bits = channels * counts @ lf
    with np.errstate(divide="ignore"):
        logs = np.where(counts > 0, np.log(np.maximum(counts, 1)) + lf * _LN2, -np.inf)
    top = logs.max(1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    paper = (top[:, 0] + np.log(np.exp(logs - top).sum(1))) / _LN2
    paper = np.where(counts.sum(1) > 0, paper, 0.0)
    return bits, paper


def binary_entropy(p: float) -> float:
    """``H(p) = -p log2 p - (1 - p) log2 (1 - p)`` in bits.

    Raises:
        InvalidInputError: ``p`` outside ``[0, 1]``.

    Examples:
        >>> binary_entropy(0.5)
        1.0
    """
    if not 0.0 <= p <= 1.0:
        raise InvalidInputError(f"probability must lie in [0, 1], got {p}")
    return -sum(q * math.log2(q) for q in (p, 1.0 - p) if q > 0)


@dataclass
class KeyspaceAnalysis:
    """The keyspace of one method on one batch.

    Attributes:
        method: registry name of the method.
        bits: ``(N,)`` float64 bits of secret per image.
        scores: ``bits_mean``, ``bits_min``, ``bits_at_least_128`` (share of images with at least 128 bits)
            and method-specific figures (``bits_paper_mean``, ``min_entropy_bits_mean``, ``mask_bits``).
        note: what was counted, in words.
    """

    method: str
    bits: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)
    note: str = ""


def keyspace_analysis(method: str, images: Tensor, *, params: Mapping[str, Any] | None = None,
                      protector: Any = None) -> KeyspaceAnalysis:
    """Bits of search space per image where ``method``'s secret is a permutation or a mask (module notes).

    Args:
        method: registry name of the method.
        images: ``(N, C, H, W)`` float32 originals in ``[0, 1]`` (the owner's data the secret protects).
        params: the method's parameters (``flip_ratio`` for Veil; ``k`` and ``sign_flip`` for InstaHide);
            missing ones take the method's defaults.
        protector: the fitted protector (VisualMixer: required, its partition is recomputed on ``images``
            by a shallow copy, so the given protector's figures of its last call are left as they were).

    Returns:
        A :class:`KeyspaceAnalysis`.

    Raises:
        NotApplicableError: the method has no permutation or mask secret (continuous noise, an unknown
            method), or VisualMixer without a protector.

    Examples:
        >>> import torch
        >>> keyspace_analysis("veil", torch.zeros(2, 1, 8, 8), params={"flip_ratio": 0.5}).scores["bits_mean"]
        64.0
    """
    params = dict(params or {})
    values, n = images[0].numel(), images.shape[0]
    extra: dict[str, float] = {}
    if method == "visualmixer":
        if protector is None:
            raise NotApplicableError("the VisualMixer keyspace needs the fitted protector (its partition)")
        mixer = copy.copy(protector)
        mixer.transform(images)
        bits = mixer.keyspace_bits()
        extra["bits_paper_mean"] = float(mixer.diagnostics().get("keyspace_bits_paper_mean", float("nan")))
        note = "prod over regions of (pixels!)^channels, from the actual partitions"
    elif method == "veil":
        p = float(params.get("flip_ratio", 0.5))
        bits = np.full(n, values * binary_entropy(p))
        extra["min_entropy_bits_mean"] = values * -math.log2(max(p, 1.0 - p))
        note = f"Bernoulli({p:g}) flip mask over {values} pixel values"
    elif method == "instahide":
        k = int(params.get("k", 4))
        mask = values if params.get("sign_flip", True) else 0
        bits = np.full(n, mask + (k - 1) * math.log2(max(n, 1)))
        extra["mask_bits"] = float(mask)
        note = f"sign mask ({mask} bits) and {k - 1} partners among {n} images; coefficients not counted"
    elif method in _DETERMINISTIC:
        bits = np.zeros(n)
        note = "deterministic given the public parameters: no secret"
    else:
        raise NotApplicableError(f"method {method!r} has no permutation or mask secret"
                                 + (" (continuous noise)" if method == "noise" else ""))
    scores = {"bits_mean": float(bits.mean()), "bits_min": float(bits.min()),
              "bits_at_least_128": float((bits >= 128).mean()), **extra}
    return KeyspaceAnalysis(method, np.asarray(bits, dtype=np.float64), scores, note)
