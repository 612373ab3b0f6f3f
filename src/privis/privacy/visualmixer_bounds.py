"""Window-size bounds of VisualMixer (Sections IV-B and IV-C).

Li, Zhang, Ren, Li & Zhang, "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep Neural
Networks", NDSS 2024, arXiv:2404.04098.

Lower bound ``WS_l`` (Section IV-B, Eq. 5-12)
------------------------------------------------
After a uniform shuffle with window ``WS``, adjacent pixels of a region are modelled as i.i.d. normal with
the region's variance ``sigma^2`` (Eq. 5-7), so ``VFE_R / (2 sigma^2) ~ chi^2_{2 WS (WS-1)}`` (Eq. 10) and,
summed over the ``wh / WS^2`` regions of a ``w x h`` image, ``sum VFE_R / (2 sigma^2) ~ chi^2_k`` with
``k = 2 wh (WS-1) / WS`` (Eq. 11). Every VFE the paper states is a multiple of that chi-square variable
``X``; this module writes it ``V = scale * X``:

* ``units="normalized"`` -- the paper's Eq. 12, ``V = (WS^2 / wh) X ~ N(2 WS (WS-1), 4 WS^3 (WS-1) / wh)``
  (224 x 224 and WS = 8 give mean 112 and variance 2/7, as the paper states). This is the mean over the
  image's regions of ``VFE_R / (2 sigma^2)``, a number free of the pixel scale.
* ``units="image"`` -- Eq. 3's VFE (what :func:`privis.metrics.vfe` returns on ``[0, 1]`` pixels),
  ``V = (2 sigma^2 / wh) X``, with ``sigma^2 = sigma^2(WS)`` the mean within-window variance of Eq. 5
  measured on the data (:func:`window_variances`); mean ``4 sigma^2 (WS-1)/WS``.

``WS_l`` is the smallest window whose VFE reaches the target with the requested confidence,
``P(V >= target) >= confidence``, by the normal approximation of Eq. 12 (``method="normal"``) or by the
exact chi-square tail (``method="chi2"``, :mod:`scipy.stats`).

Upper bound ``WS_u`` (Section IV-C, Eq. 13-17 and Table I)
-----------------------------------------------------------
Base case: a 3 x 3 window ``I`` in ``{0, 1}`` (512 cases), a 2 x 2 convolution (stride 1, weights
``w1 >= w2 >= w3 >= w4``) and a 2 x 2 max-pool, so the output ``B`` is the maximum of the four
sub-window sums. :func:`enumerate_base_case` enumerates the 5 sign patterns (4 .. 0 positive weights) x 512
windows = 2,560 cases symbolically and counts which sum of weights ``B`` equals (Table I). The paper does
not say where ``w1 .. w4`` sit in the kernel nor how an undecidable maximum is named (e.g. ``w1`` against
``w2 + w3`` when all are positive); both are parameters here (``arrangement``, ``tie_rule``) and
:func:`table1_comparison` puts every combination beside the paper's counts.

Then the Monte Carlo (:func:`alpha0`): kernel weights ``w_i ~ N(mu_W, sigma_W)``, ``B`` computed for all
512 windows, ``diff_max`` the largest change of ``B`` a shuffle can cause, and ``alpha_0 = P(diff_max <= d)``.
A shuffle keeps the window's pixel multiset, so by default (``constraint="multiset"``) ``diff_max`` is the
largest range of ``B`` among windows with the same number of ones; ``constraint="any"`` is Eq. 13-15
literally, ``max_I B - min_I B`` over all windows. Eq. 17 (``m^2`` independent outputs) and the reverse
solve give ``WS_u = WS_0 + 2 floor(sqrt(log_{alpha_0} alpha))`` with ``WS_0 = 3``
(:func:`window_upper_bound`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import stats

from privis.errors import InvalidInputError

__all__ = [
    "PAPER_TABLE1",
    "ARRANGEMENTS",
    "vfe_distribution",
    "prob_vfe_at_least",
    "window_lower_bound",
    "window_variances",
    "enumerate_base_case",
    "table1_comparison",
    "base_case_outputs",
    "diff_max_samples",
    "alpha0",
    "window_upper_bound",
]

Units = Literal["normalized", "image"]
BoundMethod = Literal["normal", "chi2"]

#: Table I of the paper: output ``B`` (a sum of sorted kernel weights) -> number of the 2,560 cases.
PAPER_TABLE1: dict[str, int] = {
    "0": 200, "w1": 457, "w2": 212, "w3": 70, "w4": 9,
    "w1+w2": 473, "w1+w3": 247, "w1+w4": 60, "w2+w3": 140, "w2+w4": 15, "w3+w4": 3,
    "w1+w2+w3": 411, "w1+w2+w4": 92, "w1+w3+w4": 28, "w2+w3+w4": 5, "w1+w2+w3+w4": 138,
}

#: Where the sorted weights sit in the 2 x 2 kernel (row-major positions (0,0), (0,1), (1,0), (1,1)).
#: Up to the kernel's 8 symmetries (which map the set of 3 x 3 windows onto itself) there are exactly three
#: arrangements, told apart by which weight is diagonal to ``w1``.
ARRANGEMENTS: dict[str, tuple[int, int, int, int]] = {
    "w4-diagonal": (1, 2, 3, 4),  # [[w1, w2], [w3, w4]], row-major order
    "w3-diagonal": (1, 2, 4, 3),  # [[w1, w2], [w4, w3]]
    "w2-diagonal": (1, 3, 4, 2),  # [[w1, w3], [w4, w2]]
}


# ------------------------------------------------------------------------------------------ lower bound
def _dof(ws: int | np.ndarray, height: int, width: int) -> np.ndarray:
    """Eq. 11 degrees of freedom ``k = 2 wh (WS-1) / WS``."""
    ws = np.asarray(ws, dtype=np.float64)
    return 2.0 * height * width * (ws - 1.0) / ws


def _scale(ws: int | np.ndarray, height: int, width: int, units: Units,
           sigma2: Callable[[int], float] | Mapping[int, float] | None) -> np.ndarray:
    ws_arr = np.asarray(ws, dtype=np.float64)
    if units == "normalized":
        return ws_arr * ws_arr / (height * width)
    if units == "image":
        if sigma2 is None:
            raise InvalidInputError("units='image' needs sigma2, the within-window variance per window size")
        get = sigma2.__getitem__ if isinstance(sigma2, Mapping) else sigma2
        s2 = np.vectorize(lambda v: float(get(int(v))), otypes=[np.float64])(ws_arr)
        return 2.0 * s2 / (height * width)
    raise InvalidInputError(f"units must be 'normalized' or 'image', got {units!r}")


def vfe_distribution(ws: int | np.ndarray, height: int, width: int, *, units: Units = "normalized",
                     sigma2: Callable[[int], float] | Mapping[int, float] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the VFE of a ``height x width`` image shuffled with window ``ws``.

    ``units="normalized"`` is Eq. 12: mean ``2 WS (WS-1)``, variance ``4 WS^3 (WS-1) / (wh)``.
    ``units="image"`` is Eq. 3's VFE with ``sigma2(ws)`` the within-window pixel variance (Eq. 5).

    Returns:
        ``(mean, variance)`` as float64 arrays shaped like ``ws``.
    """
    _check_ws(ws)
    k = _dof(ws, height, width)
    scale = _scale(ws, height, width, units, sigma2)
    return scale * k, scale * scale * 2.0 * k


def prob_vfe_at_least(target: float, ws: int | np.ndarray, height: int, width: int, *,
                      method: BoundMethod = "chi2", units: Units = "normalized",
                      sigma2: Callable[[int], float] | Mapping[int, float] | None = None) -> np.ndarray:
    """``P(VFE >= target)`` after a shuffle with window ``ws`` (Eq. 10-12).

    ``method="chi2"`` uses the exact tail ``P(chi^2_k >= target / scale)`` (Eq. 11); ``"normal"`` the
    normal approximation of Eq. 12.
    """
    k = _dof(ws, height, width)
    scale = _scale(ws, height, width, units, sigma2)
    if method == "chi2":
        return stats.chi2.sf(target / scale, k)
    if method == "normal":
        mean, var = scale * k, scale * scale * 2.0 * k
        return stats.norm.sf(target, loc=mean, scale=np.sqrt(var))
    raise InvalidInputError(f"method must be 'chi2' or 'normal', got {method!r}")


def window_lower_bound(target_vfe: float, height: int, width: int, *, confidence: float = 0.95,
                       method: BoundMethod = "chi2", units: Units = "normalized",
                       sigma2: Callable[[int], float] | Mapping[int, float] | None = None,
                       max_ws: int | None = None) -> int:
    """``WS_l``: the smallest window ``WS >= 2`` with ``P(VFE >= target_vfe) >= confidence`` (Sec. IV-B).

    Args:
        target_vfe: the VFE the shuffled image must reach, in ``units``.
        height, width: image size (``h``, ``w`` of Eq. 11-12).
        confidence: required probability, in ``(0, 1)``.
        method: ``"chi2"`` (exact quantile) or ``"normal"`` (Eq. 12 approximation).
        units, sigma2: see :func:`vfe_distribution`.
        max_ws: largest window considered (default ``min(height, width)``).

    Raises:
        InvalidInputError: bad arguments, or no window up to ``max_ws`` reaches the target.
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must lie in (0, 1), got {confidence}")
    if not math.isfinite(target_vfe) or target_vfe < 0:
        raise InvalidInputError(f"target_vfe must be a finite number >= 0, got {target_vfe}")
    if height < 2 or width < 2:
        raise InvalidInputError(f"images of {height}x{width} are too small for a 2x2 window")
    max_ws = min(height, width) if max_ws is None else int(max_ws)
    if max_ws < 2:
        raise InvalidInputError(f"max_ws must be >= 2, got {max_ws}")
    candidates = np.arange(2, max_ws + 1)
    ok = prob_vfe_at_least(target_vfe, candidates, height, width, method=method, units=units,
                           sigma2=sigma2) >= confidence
    if not ok.any():
        raise InvalidInputError(
            f"no window up to {max_ws} reaches VFE {target_vfe} ({units}) with confidence {confidence}; "
            "lower target_vfe or confidence")
    return int(candidates[np.argmax(ok)])


def window_variances(images: np.ndarray, sizes: Sequence[int]) -> dict[int, float]:
    """``sigma^2(WS)``: mean within-window sample variance of Eq. 5 for each window size.

    Args:
        images: ``(N, C, H, W)`` array (``[0, 1]`` pixels).
        sizes: window sizes; each tiles the image from the top-left, leftover rows/columns are ignored.

    Returns:
        ``{WS: mean over images, channels and windows of sum (I - mu)^2 / (WS^2 - 1)}``.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4:
        raise InvalidInputError(f"images must have shape (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    out: dict[int, float] = {}
    for ws in sizes:
        ws = int(ws)
        if ws < 2 or ws > min(h, w):
            continue
        rh, rw = h // ws, w // ws
        blocks = x[:, :, : rh * ws, : rw * ws].reshape(n, c, rh, ws, rw, ws)
        out[ws] = float(blocks.var(axis=(3, 5), ddof=1).mean())
    return out


def _check_ws(ws: int | np.ndarray) -> None:
    if np.any(np.asarray(ws) < 2):
        raise InvalidInputError(f"window sizes must be >= 2, got {ws}")


# ----------------------------------------------------------------------------- upper bound: Table I
@lru_cache(maxsize=1)
def _windows() -> np.ndarray:
    """All 512 binary 3 x 3 windows, ``(512, 3, 3)`` uint8; window ``i`` has bit ``3r + c`` at ``(r, c)``."""
    bits = (np.arange(512)[:, None] >> np.arange(9)[None, :]) & 1
    return bits.reshape(512, 3, 3).astype(np.uint8)


def _patch_masks(arrangement: Sequence[int]) -> np.ndarray:
    """``(512, 4, 4)`` bool: for window i and conv position p, whether sorted weight j (0-based) is hit.

    Conv positions are the 2 x 2 offsets of the 2 x 2 kernel in the 3 x 3 window (stride 1); the kernel
    cell ``q`` (row-major) holds weight ``arrangement[q]`` (1-based).
    """
    win = _windows()
    out = np.zeros((512, 4, 4), dtype=bool)
    for p, (dr, dc) in enumerate(itertools.product((0, 1), (0, 1))):
        for q, (kr, kc) in enumerate(itertools.product((0, 1), (0, 1))):
            out[:, p, arrangement[q] - 1] = win[:, dr + kr, dc + kc].astype(bool)
    return out


def _rays(positives: int) -> np.ndarray:
    """Extreme rays ``(4, 4)`` of the cone ``w1 >= .. >= wk >= 0 >= w_{k+1} >= .. >= w4`` (rows are rays)."""
    rays = np.zeros((4, 4))
    for j in range(4):
        if j < positives:
            rays[j, : j + 1] = 1.0
        else:
            rays[j, j:] = -1.0
    return rays


@lru_cache(maxsize=8)
def _conditional_weights(positives: int, samples: int = 60_000, seed: int = 12345) -> np.ndarray:
    """Samples ``(M, 4)`` of 4 sorted (descending) N(0, 1) weights with exactly ``positives`` above 0."""
    rng = np.random.default_rng(seed + positives)
    w = -np.sort(-rng.standard_normal((samples, 4)), axis=1)
    keep = (w > 0).sum(1) == positives
    return w[keep]


def _name(subset: Sequence[int]) -> str:
    return "+".join(f"w{j + 1}" for j in subset) if len(subset) else "0"


def enumerate_base_case(arrangement: str | Sequence[int] = "w4-diagonal",
                        tie_rule: Literal["expected", "probable"] = "expected") -> dict[str, int]:
    """Complete induction of Section IV-C: which weight sum ``B`` is, for 5 sign patterns x 512 windows.

    For each case the four conv outputs are sums of the weights under ones of the window (Eq. 13-14);
    ``B`` (the max-pool) is the sum that is largest for *every* admissible weight vector
    (``w1 >= w2 >= w3 >= w4`` with the pattern's signs), decided exactly on the extreme rays of that cone.
    When no single sum dominates (e.g. ``w1`` vs ``w2 + w3`` with all weights positive), ``tie_rule``
    names it: ``"expected"`` takes the sum that is largest at the conditional mean weights,
    ``"probable"`` the one that is largest most often under the conditional normal distribution.

    Args:
        arrangement: a key of :data:`ARRANGEMENTS` or the 1-based weight index of each kernel cell.
        tie_rule: see above.

    Returns:
        ``{name: count}`` over the 16 possible sums (names as in :data:`PAPER_TABLE1`), adding up to 2,560.
    """
    arr = ARRANGEMENTS[arrangement] if isinstance(arrangement, str) else tuple(arrangement)
    if sorted(arr) != [1, 2, 3, 4]:
        raise InvalidInputError(f"arrangement must be a permutation of 1..4 or one of {list(ARRANGEMENTS)}")
    if tie_rule not in ("expected", "probable"):
        raise InvalidInputError(f"tie_rule must be 'expected' or 'probable', got {tie_rule!r}")
    masks = _patch_masks(arr)  # (512, 4 positions, 4 weights)
    subsets = [tuple(j for j in range(4) if (s >> j) & 1) for s in range(16)]
    indicator = np.array([[1.0 if j in s else 0.0 for j in range(4)] for s in subsets])  # (16, 4)
    counts = {_name(s): 0 for s in subsets}
    codes = (masks * (1 << np.arange(4))).sum(-1)  # (512, 4) subset code per conv position
    for positives in range(4, -1, -1):
        on_rays = indicator @ _rays(positives).T  # (16 subsets, 4 rays)
        samples = _conditional_weights(positives)
        values = indicator @ samples.T  # (16, M)
        mean_values = values.mean(1)
        for window in range(512):
            cand = sorted(set(codes[window].tolist()))
            maximal = [s for s in cand
                       if not any(np.all(on_rays[t] >= on_rays[s]) and np.any(on_rays[t] > on_rays[s])
                                  for t in cand if t != s)]
            if len(maximal) == 1:
                best = maximal[0]
            elif tie_rule == "expected":
                best = maximal[int(np.argmax(mean_values[maximal]))]
            else:
                wins = np.bincount(np.argmax(values[maximal], axis=0), minlength=len(maximal))
                best = maximal[int(np.argmax(wins))]
            counts[_name(subsets[best])] += 1
    order = list(PAPER_TABLE1)
    return {k: counts[k] for k in order}


def table1_comparison() -> list[dict[str, Any]]:
    """Rows ``B | paper | <arrangement>/<tie rule> ...``: our enumeration beside Table I, one column each."""
    columns = {f"{a}/{t}": enumerate_base_case(a, t) for a in ARRANGEMENTS for t in ("expected", "probable")}
    rows: list[dict[str, Any]] = []
    for key, paper in PAPER_TABLE1.items():
        row: dict[str, Any] = {"B": key, "paper": paper}
        row.update({name: col[key] for name, col in columns.items()})
        rows.append(row)
    total: dict[str, Any] = {"B": "total", "paper": sum(PAPER_TABLE1.values())}
    total.update({name: sum(col.values()) for name, col in columns.items()})
    rows.append(total)
    l1: dict[str, Any] = {"B": "L1 distance to paper", "paper": 0}
    l1.update({name: sum(abs(col[k] - PAPER_TABLE1[k]) for k in PAPER_TABLE1) for name, col in columns.items()})
    rows.append(l1)
    return rows


# ----------------------------------------------------------------------- upper bound: Monte Carlo
def base_case_outputs(weights: np.ndarray) -> np.ndarray:
    """``B`` for every binary 3 x 3 window: 2 x 2 conv (stride 1) then 2 x 2 max-pool.

    Args:
        weights: ``(M, 2, 2)`` kernels.

    Returns:
        ``(M, 512)`` outputs; column ``i`` is window ``i`` of :func:`_windows`.
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1, 4)
    masks = _patch_masks((1, 2, 3, 4)).astype(np.float64).reshape(512 * 4, 4)  # row-major kernel cells
    a = (masks @ w.T).reshape(512, 4, -1)  # conv outputs (512 windows, 4 positions, M)
    return a.max(1).T


def diff_max_samples(samples: int, *, mu_w: float = 0.0, sigma_w: float = 1.0,
                     constraint: Literal["multiset", "any"] = "multiset", seed: int | None = 0,
                     chunk: int = 4096) -> np.ndarray:
    """Monte Carlo draws of ``diff_max`` (Eq. 15) with kernel weights ``w_i ~ N(mu_w, sigma_w)``.

    ``constraint="multiset"``: a shuffle keeps the window's multiset of pixel values, so ``diff_max`` is
    the largest range of ``B`` over windows with equal numbers of ones; ``"any"``: Eq. 13-15 as written,
    ``max_I B - min_I B`` over all 512 windows.

    Returns:
        ``(samples,)`` float64 draws.
    """
    if samples < 1 or sigma_w <= 0:
        raise InvalidInputError("samples must be >= 1 and sigma_w > 0")
    if constraint not in ("multiset", "any"):
        raise InvalidInputError(f"constraint must be 'multiset' or 'any', got {constraint!r}")
    rng = np.random.default_rng(seed)
    ones = _windows().reshape(512, 9).sum(1)
    order = np.argsort(ones, kind="stable")  # windows grouped by their number of ones
    starts = np.searchsorted(ones[order], np.arange(10))
    out = np.empty(samples)
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        b = base_case_outputs(rng.normal(mu_w, sigma_w, size=(m, 2, 2)))
        if constraint == "any":
            out[start:start + m] = b.max(1) - b.min(1)
        else:
            grouped = b[:, order]
            spread = np.maximum.reduceat(grouped, starts, axis=1) - np.minimum.reduceat(grouped, starts, axis=1)
            out[start:start + m] = spread.max(1)
    return out


def alpha0(d: float, *, mu_w: float = 0.0, sigma_w: float = 1.0, samples: int = 50_000,
           constraint: Literal["multiset", "any"] = "multiset", seed: int | None = 0) -> float:
    """``alpha_0 = P(diff_max <= d)`` for the base case (WS_0 = 3), by Monte Carlo (Section IV-C)."""
    if d < 0:
        raise InvalidInputError(f"the bias d must be >= 0, got {d}")
    draws = diff_max_samples(samples, mu_w=mu_w, sigma_w=sigma_w, constraint=constraint, seed=seed)
    return float(np.mean(draws <= d))


def window_upper_bound(alpha: float, alpha_0: float, *, ws0: int = 3, max_ws: int | None = None) -> int:
    """``WS_u = WS_0 + 2 floor(sqrt(log_{alpha_0} alpha))`` (Algorithm 1 line 1, Eq. 17 reversed).

    ``alpha_0^{m^2} >= alpha`` holds for ``m <= sqrt(log alpha / log alpha_0)``. ``alpha_0 = 1`` allows any
    window (``max_ws`` is returned; it must then be given); ``alpha_0 <= alpha`` gives ``WS_0``.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0.0 <= alpha_0 <= 1.0:
        raise InvalidInputError(f"alpha_0 must lie in [0, 1], got {alpha_0}")
    if alpha_0 >= 1.0:
        if max_ws is None:
            raise InvalidInputError("alpha_0 = 1 bounds no window: give max_ws")
        return int(max_ws)
    if alpha_0 <= alpha:
        ws = ws0
    else:
        m = math.floor(math.sqrt(math.log(alpha) / math.log(alpha_0)) + 1e-12)
        ws = ws0 + 2 * m
    return int(ws if max_ws is None else min(ws, max_ws))
