"""The Frechet distance between Gaussian fits of two feature sets, and ``fd_privis`` on privis' own features.

M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler and S. Hochreiter, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017, arXiv:1706.08500, Eq. (6): for Gaussians
``N(m1, S1)`` and ``N(m2, S2)`` fitted to two feature sets,

    ``d^2 = |m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

The paper's FID takes Inception-v3 pool features of natural images. privis has no Inception network for
28x28 grey images, so :func:`fd_privis` takes the penultimate features of a classifier trained on the
original images instead: its values are comparable with each other (same data, same classifier), never with
published FID figures, and privis never calls them FID.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.models.features import FeatureExtractor, penultimate_layer
from privis.models.training import model_device

__all__ = ["fd_privis", "frechet_distance", "gaussian_frechet_distance"]

#: Diagonal jitter added to both covariances when their product has no finite square root (pytorch-fid's 1e-6).
JITTER = 1e-6


def _features(x: object, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    if not isinstance(x, np.ndarray) or x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        got = getattr(x, "shape", type(x).__name__)
        raise InvalidInputError(f"{name} must be a 2-D numeric (N, D) tensor or array of features, got {got}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidInputError(f"{name} needs at least 2 feature vectors of dimension >= 1, got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return x


def gaussian_frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Eq. (6) for two given Gaussians: ``|m1 - m2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))``, a squared distance >= 0.

    ``sqrtm`` is :func:`scipy.linalg.sqrtm`. Guarded as the reference implementation is: when the square root
    is not finite (singular covariances), :data:`JITTER` times the identity is added to both covariances; an
    imaginary part from round-off is dropped; a result below zero from round-off is clipped to 0.

    Args:
        mean_a, mean_b: ``(D,)`` means.
        cov_a, cov_b: ``(D, D)`` symmetric positive semi-definite covariances.

    Raises:
        InvalidInputError: shapes that do not agree, or an imaginary part of the square root too large to be
            round-off (covariances that are not positive semi-definite).
    """
    mean_a, mean_b = np.atleast_1d(mean_a).astype(np.float64), np.atleast_1d(mean_b).astype(np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    d = mean_a.shape[0]
    if mean_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise InvalidInputError(f"means must be (D,) and covariances (D, D) of one D, got {mean_a.shape}, "
                                f"{cov_a.shape}, {mean_b.shape}, {cov_b.shape}")
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        offset = JITTER * np.eye(d)
        root = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(root):
        scale = max(1.0, float(np.abs(root).max()))
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3 * scale):
            raise InvalidInputError(f"the covariance product has a complex square root (imaginary part "
                                    f"{float(np.abs(root.imag).max()):.3g}); are the covariances PSD?")
        root = root.real
    diff = mean_a - mean_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))
    return max(value, 0.0)


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """The Frechet distance (Heusel et al. 2017, Eq. 6) between Gaussian fits of two feature sets.

    Each set is fitted by its sample mean and unbiased sample covariance (``np.cov``), then
    :func:`gaussian_frechet_distance` applies. Computed in float64 on the CPU; the value is the *squared*
    distance, as FID reports it (units: squared feature units), 0 for identical sets.

    Args:
        features_a: ``(N, D)`` features (tensor or array), ``N >= 2``, finite.
        features_b: ``(M, D)`` features of the same ``D``, ``M >= 2``.

    Raises:
        InvalidInputError: not 2-D, fewer than 2 rows, different ``D``, NaN/infinite values.
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@torch.no_grad()
def fd_privis(model: nn.Module, images_a: Tensor, images_b: Tensor, *, layer: str | None = None,
              batch_size: int = 500) -> float:
    """``fd_privis``: :func:`frechet_distance` of two image sets on a privis classifier's features.

    The feature extractor is ``model`` (a classifier trained on the original images) at ``layer`` (default
    :func:`privis.models.penultimate_layer`), in eval mode; images are moved to the model's device. Lower
    means the two sets are distributed more alike to that classifier. Not FID: see the module docstring.

    Args:
        model: the classifier.
        images_a: ``(N, C, H, W)`` canonical images (e.g. original test images), ``N >= 2``.
        images_b: ``(M, C, H, W)`` canonical images (e.g. their protected versions), ``M >= 2``.
        layer: the feature layer's name, or None for the penultimate one.
        batch_size: images per forward pass.

    Raises:
        InvalidInputError: not canonical images, an unknown layer, a model without a final ``nn.Linear``
            (``layer=None``), or fewer than two images in a set.
    """
    images_a = check_images(images_a, name="images_a", channels=None)
    images_b = check_images(images_b, name="images_b", channels=None)
    extractor = FeatureExtractor(model, penultimate_layer(model) if layer is None else layer).eval()
    device = model_device(model)
    feats = [torch.cat([extractor(chunk.to(device)).double().cpu() for chunk in images.split(batch_size)])
             for images in (images_a, images_b)]
    return frechet_distance(feats[0], feats[1])
