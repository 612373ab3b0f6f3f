"""A density of a diffusion autoencoder's semantic codes ``z_bar``, to sample a pool of fake codes.

The dataset anonymiser (H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence
Technology", PhD thesis, University of Technology Sydney, 2023, Section 6.5.2) draws fake images from a
diffusion autoencoder (K. Preechakul et al., "Diffusion Autoencoders: Toward a Meaningful and Decodable
Representation", CVPR 2022, Section 4) by sampling ``z_bar`` from a *latent DDIM* trained on the codes after
normalising them to zero mean and unit variance, and decoding ``(z_bar, x_T)`` with ``x_T ~ N(0, I)``.
:class:`LatentDensity` replaces the latent DDIM by a closed-form fit of the same normalised codes, cheap to fit
on a CPU and to store:

- ``"gaussian"``: one full-covariance Gaussian, its covariance shrunk towards a scaled identity by the
  Ledoit-Wolf estimator (O. Ledoit and M. Wolf, "A well-conditioned estimator for large-dimensional covariance
  matrices", Journal of Multivariate Analysis 88(2), 2004), which stays positive definite when the codes
  are fewer than their dimension;
- ``"gmm"``: a Gaussian mixture with full covariances fitted by EM (scikit-learn's ``GaussianMixture``,
  seeded, ``reg_covar`` added to each diagonal), for codes that cluster (e.g. by class).

Both are stored as tensors (buffers: per-dimension ``loc``/``scale`` of the normalisation, mixture
``weights``, ``means`` and Cholesky factors ``scale_tril``), so a codec holding one saves and loads with
``torch.load(weights_only=True)``. :func:`compare_densities` scores the two by the Frechet distance of
sampled codes to held-out codes (and, given a classifier, of decoded samples to real images).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.random import resolve_seed


class FakeDecoder(Protocol):
    """What :func:`compare_densities` needs of a codec (:class:`privis.latent.diffae.DiffusionCodec` has it)."""

    def sample_images(self, z_sem: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

__all__ = ["DENSITY_KINDS", "LatentDensity", "compare_densities"]

#: Density families :meth:`LatentDensity.fit` knows.
DENSITY_KINDS = ("gaussian", "gmm")
#: Variance added to each diagonal of a mixture component (normalised units), as scikit-learn's ``reg_covar``.
GMM_REG_COVAR = 1e-3


def _check_codes(codes: Any, name: str, dim: int | None = None) -> Tensor:
    if not isinstance(codes, Tensor) or not codes.is_floating_point() or codes.dim() != 2:
        got = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise InvalidInputError(f"{name} must be a floating tensor of shape (N, D), got {got}")
    if dim is not None and codes.shape[1] != dim:
        raise InvalidInputError(f"{name} must have {dim} columns, got {tuple(codes.shape)}")
    if codes.shape[0] < 2:
        raise InvalidInputError(f"{name}: at least 2 codes are needed to fit a density, got {codes.shape[0]}")
    if not bool(torch.isfinite(codes).all()):
        raise InvalidInputError(f"{name} contain NaN or infinite values")
    return codes


class LatentDensity(nn.Module):
    """A Gaussian or a Gaussian mixture over ``D``-dimensional codes, fitted after per-dimension normalisation.

    Unfitted until :meth:`fit` (its buffers are empty); a state dict of a fitted density loads into an unfitted
    one of the same ``dim`` (the buffers take the stored shapes).

    Args:
        dim: ``D``, the code dimension (``>= 1``).

    Attributes:
        loc, scale: ``(D,)`` mean and standard deviation of the fitted codes (the normalisation).
        weights: ``(K,)`` mixture weights (``K = 1`` for ``"gaussian"``).
        means: ``(K, D)`` component means in normalised units.
        scale_tril: ``(K, D, D)`` lower Cholesky factors of the component covariances (normalised units).
    """

    loc: Tensor
    scale: Tensor
    weights: Tensor
    means: Tensor
    scale_tril: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")
        self.register_buffer("loc", torch.zeros(0))
        self.register_buffer("scale", torch.zeros(0))
        self.register_buffer("weights", torch.zeros(0))
        self.register_buffer("means", torch.zeros(0, self.dim))
        self.register_buffer("scale_tril", torch.zeros(0, self.dim, self.dim))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or a loaded state dict) gave the density its parameters."""
        return self.weights.numel() > 0

    @property
    def kind(self) -> str | None:
        """``"gaussian"`` (one component), ``"gmm"`` (several) or None when unfitted."""
        return None if not self.fitted else ("gaussian" if self.weights.numel() == 1 else "gmm")

    @torch.no_grad()
    def fit(self, codes: Tensor, kind: str = "gaussian", *, components: int = 10,
            random_state: int | None = None) -> LatentDensity:
        """Fit the density to ``codes`` and return ``self``.

        Args:
            codes: ``(N, D)`` finite floating codes, ``N >= 2`` (``N >= components`` for ``"gmm"``).
            kind: ``"gaussian"`` (Ledoit-Wolf shrunk full covariance) or ``"gmm"`` (EM mixture).
            components: mixture components of ``"gmm"`` (``>= 1``).
            random_state: seed of the mixture's k-means initialisation; None draws from OS entropy.

        Raises:
            InvalidInputError: bad codes, an unknown kind, or too few codes for the components.
        """
        from sklearn.covariance import LedoitWolf
        from sklearn.mixture import GaussianMixture

        codes = _check_codes(codes, "codes", self.dim)
        if kind not in DENSITY_KINDS:
            raise InvalidInputError(f"unknown density kind {kind!r}; kinds: {', '.join(DENSITY_KINDS)}")
        components = check_int(components, "components")
        if kind == "gmm" and codes.shape[0] < components:
            raise InvalidInputError(f"a {components}-component mixture needs at least {components} codes, "
                                    f"got {codes.shape[0]}")
        data = codes.detach().double().cpu()
        loc = data.mean(0)
        scale = data.std(0).clamp_min(1e-6)
        normed = ((data - loc) / scale).numpy()
        if kind == "gaussian":
            shrunk = LedoitWolf().fit(normed)
            weights = np.ones(1)
            means = shrunk.location_[None]
            covs = shrunk.covariance_[None]
        else:
            mixture = GaussianMixture(components, covariance_type="full", reg_covar=GMM_REG_COVAR,
                                      random_state=resolve_seed(random_state)).fit(normed)
            weights, means, covs = mixture.weights_, mixture.means_, mixture.covariances_
        tril = np.linalg.cholesky(covs)
        device = self.weights.device
        for name, value in (("loc", loc), ("scale", scale), ("weights", torch.from_numpy(weights)),
                            ("means", torch.from_numpy(means)), ("scale_tril", torch.from_numpy(tril))):
            setattr(self, name, value.float().to(device))
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, D)`` float32 codes drawn from the density, on its device.

        Args:
            n: how many (``>= 1``).
            generator: a CPU ``torch.Generator`` (all draws are made on the CPU, so a seed gives the same codes
                on every device); None seeds one from OS entropy.

        Raises:
            InvalidInputError: an unfitted density or a bad ``n``.
        """
        n = check_int(n, "n")
        if not self.fitted:
            raise InvalidInputError("the density is not fitted; call fit (or fit_density on the codec) first")
        if generator is None:
            generator = torch.Generator().manual_seed(resolve_seed(None))
        weights, means, tril = self.weights.cpu(), self.means.cpu(), self.scale_tril.cpu()
        which = torch.multinomial(weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, 1, generator=generator)
        normed = means[which] + (tril[which] @ noise)[..., 0]
        return (normed * self.scale.cpu() + self.loc.cpu()).to(self.weights.device)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # a fitted density's buffers have data-dependent shapes (K components): take the stored shapes first
        for name, buffer in self.named_buffers(recurse=False):
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor) and buffer is not None and stored.shape != buffer.shape:
                setattr(self, name, torch.empty_like(stored, device=buffer.device, dtype=buffer.dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind}, components={self.weights.numel()}"


def compare_densities(train_codes: Tensor, held_codes: Tensor, *, kinds: tuple[str, ...] = DENSITY_KINDS,
                      components: int = 10, samples: int | None = None, random_state: int | None = None,
                      codec: FakeDecoder | None = None, model: nn.Module | None = None,
                      real_images: Tensor | None = None,
                      fitted: dict[str, LatentDensity] | None = None) -> dict[str, dict[str, float]]:
    """How well each density family fitted to ``train_codes`` matches held-out data (lower is better).

    For every kind: fit :class:`LatentDensity` to ``train_codes``, draw ``samples`` codes and report
    ``code_fd``, the Frechet distance (:func:`privis.metrics.frechet_distance`, squared, code units) of the
    sampled codes to ``held_codes``; with ``codec``, ``model`` and ``real_images`` also ``image_fd``, the
    :func:`privis.metrics.fd_privis` of ``real_images`` to the sampled codes decoded with ``x_T ~ N(0, I)``
    (Section 6.5.2's fake images) on ``model``'s penultimate features.

    Args:
        train_codes: ``(N, D)`` codes the densities are fitted to.
        held_codes: ``(M, D)`` held-out codes (``M >= 2``).
        kinds: density kinds to compare (:data:`DENSITY_KINDS`).
        components: mixture components of ``"gmm"``.
        samples: codes drawn per kind (``>= 2``); None: ``M``.
        random_state: seed of the fits and the draws; None draws from OS entropy.
        codec, model, real_images: the diffusion codec decoding the samples, a classifier of the real images,
            canonical images ``(R, C, H, W)`` (``R >= 2``); all three or none.
        fitted: a dict that receives the fitted densities by kind (to reuse them: a mixture fit of thousands of
            512-dimensional codes takes minutes).

    Returns:
        ``{kind: {"code_fd": float[, "image_fd": float]}}``.

    Raises:
        InvalidInputError: bad codes or kinds, or only some of ``codec``, ``model``, ``real_images``.
    """
    from privis.metrics import fd_privis, frechet_distance

    train_codes = _check_codes(train_codes, "train_codes")
    held_codes = _check_codes(held_codes, "held_codes", train_codes.shape[1])
    unknown = [k for k in kinds if k not in DENSITY_KINDS]
    if unknown or not kinds:
        raise InvalidInputError(f"kinds must be among {', '.join(DENSITY_KINDS)}, got {kinds!r}")
    given = [v is not None for v in (codec, model, real_images)]
    if any(given) and not all(given):
        raise InvalidInputError("image_fd needs codec, model and real_images together")
    count = held_codes.shape[0] if samples is None else check_int(samples, "samples", minimum=2)
    seed = resolve_seed(random_state)
    report: dict[str, dict[str, float]] = {}
    for kind in kinds:
        density = LatentDensity(train_codes.shape[1]).fit(train_codes, kind, components=components,
                                                          random_state=seed)
        generator = torch.Generator().manual_seed(seed)
        drawn = density.sample(count, generator)
        if fitted is not None:
            fitted[kind] = density
        report[kind] = {"code_fd": frechet_distance(drawn, held_codes.detach().cpu())}
        if codec is not None and model is not None and real_images is not None:
            fakes = codec.sample_images(drawn, generator=generator)
            report[kind]["image_fd"] = fd_privis(model, real_images, fakes)
    return report
