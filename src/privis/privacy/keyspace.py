"""Brute-force keyspace of VisualMixer (visualmixer.md, Section V-C "Exhaustive search").

The paper counts ``N = sum_i (WS_i^2)!`` permutations for an image whose regions have ``WS_i^2`` pixels.
Independent shuffles of different regions (and, with per-channel shuffling, of different channels)
multiply rather than add, so the number of distinct shuffles of the image is
``prod_i prod_c (k_i)!`` with ``k_i`` the pixel count of region ``i``. Both are reported in bits, computed
with ``lgamma`` so that no factorial is ever formed:

* :func:`keyspace_bits` -- ``log2 prod_i (k_i!)^C`` (the actual number of equally likely shuffles);
* :func:`keyspace_bits_paper` -- ``log2 sum_i k_i!`` (the paper's formula, a lower bound of the above).

Region sizes come from the actual partition of each image (``VisualMixer.transform`` records them), so
edge regions that are not ``WS x WS`` count with their real pixel count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from privis.errors import InvalidInputError

__all__ = ["log2_factorial", "keyspace_bits", "keyspace_bits_paper", "keyspace_bits_from_counts"]

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
