"""FSAP: de-identification by sign-gradient steps in a codec's latent space (or on the pixels).

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 5, Algorithm 7 ("AP generation algorithm based on the FSAP
framework"), Eq. 5.1-5.8. With an encoder ``f_E``, a decoder ``f_D``, a white-box identity model ``f_I`` and an
attribute loss ``L_P = {L_m, L_l, L_s}`` (MSE, a perceptual distance, SSIM), starting from ``W' = f_E(x)``::

    for n = 1 .. N:
        W' += lambda_I sign(dL_I(x, f_D(W'); f_I) / dW')                       # Eq. 5.6, identity away
        repeat k times:  W' -= lambda_P sum_{part} sign(dL_part(x, f_D(W')) / dW')   # Eq. 5.8, attributes back
        stop this image once L_I(x, f_D(W'); f_I) > tau
    release f_D(W')

``L_I = 1 - cos(f_I(x), f_I(x_hat))`` (Eq. 5.3). The thesis' defaults: ``N = 100, k = 6, tau = 0.8,
lambda_I = 0.02, lambda_P = 0.008`` (Section 5.5.1.2), with pSp + StyleGAN2 as the codec and ArcFace as
``f_I``; Table 5.1's "ID loss solely" ablation drops the ``k`` attribute steps.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from privis import references
from privis.errors import InvalidInputError
from privis.identity.attributes import ATTRIBUTE_PARTS, AttributeModel
from privis.identity.base import IdentityModel
from privis.identity.classifier import ClassifierIdentity
from privis.latent.base import LatentCodec
from privis.latent.training import load_codec
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Param,
    Protector,
    check_images,
    check_labels,
    choice_param,
    codec_param,
    fitted_models_on,
    float_param,
    int_param,
    model_param,
    seed_param,
)
from privis.methods.baselines import item_keys, keyed_normal
from privis.models import available as available_models
from privis.models import create_seeded, freeze, train
from privis.random import resolve_seed, torch_generator

__all__ = ["FSAP", "id_loss"]

VARIANTS = ("both", "id-only")


def id_loss(identity: IdentityModel, reference: Tensor, images: Tensor) -> Tensor:
    """``L_I`` per image ``(N,)``: how far ``images`` are from the identity whose embeddings are ``reference``.

    A cosine identity model gives Eq. 5.3, ``1 - cos(f_I(x), f_I(x_hat))`` in ``[0, 2]``; a distance model
    (``metric == "euclidean"``, dlib's) gives the embedding distance itself, on the scale its threshold uses.
    Differentiable with respect to ``images`` for a white-box model.

    Args:
        identity: the identity model ``f_I``.
        reference: ``(N, E)`` embeddings of the originals (``identity.embed(x)``).
        images: ``(N, C, H, W)`` canonical images ``x_hat``.
    """
    scores = identity.score(reference, identity.embed(images))
    return 1.0 - scores if identity.metric == "cosine" else scores


#: FSAP warns when more than this share of a call's images leave without reaching ``tau``.
WARN_KEPT_FRACTION = 0.01


class _Models(nn.Module):
    """The fitted models one device runs: ``f_I``, the attribute model and the codec (None: pixel space)."""

    def __init__(self, identity: IdentityModel, attributes: AttributeModel, codec: LatentCodec | None) -> None:
        super().__init__()
        self.identity = identity
        self.attributes = attributes
        self.codec = codec


@register
class FSAP(Protector):
    """FSAP (Algorithm 7 of Xue's thesis): sign steps that push the identity away and pull the attributes back.

    **Where the steps happen.** With a ``codec`` the perturbed variable is the latent ``W' = f_E(x)`` of shape
    ``(G, D)`` and ``x_hat = f_D(W')`` (any :class:`~privis.latent.LatentCodec`: pSp + StyleGAN2 through
    :class:`~privis.latent.TorchScriptCodec` as in the thesis, or a privis-trained codec). Without one, the
    documented **pixel-space variant**: ``W'`` is the image itself, ``f_D`` the identity, and ``W'`` is kept in
    ``[0, 1]`` after every step (a projected sign-gradient method, as PGD); on faces, an identity model that
    aligns the face (the dlib adapters) takes the loss through its differentiable aligned chip.

    **Steps.** Each of the ``N`` iterations takes one identity step of ``lambda_I`` (Eq. 5.6) and, for
    ``variant="both"``, ``k`` attribute steps of ``lambda_P`` times the sum of the signs of the three attribute
    gradients (Eq. 5.8: MSE, privis' perceptual feature distance, ``1 - SSIM``;
    :class:`~privis.identity.AttributeModel`). ``variant="id-only"`` is Table 5.1's "ID loss solely". An image
    stops as soon as ``L_I > tau`` (checked before each iteration's identity step, which is the same as after
    the previous iteration's attribute steps) and its ``f_D(W')`` at that moment is released; an image that
    never gets there is released after ``N`` iterations. The batch runs together; stopped images drop out
    of the computation (per-sample stopping by masking), so each image's result does not depend on the batch.

    **Choices the thesis leaves open.** ``L_I`` is Eq. 5.3's cosine distance for a cosine identity model and
    the embedding distance for a distance model (dlib: then ``tau = 0.8`` lies beyond dlib's 0.6 threshold).
    Algorithm 7 starts at ``Delta W = 0``, where the gradient of a cosine loss vanishes whenever the codec
    reconstructs exactly (always in pixel space); privis starts at ``W + lambda_I sign(xi)``, ``xi`` standard
    normal noise (``random_state``; with ``ids``, item ``i``'s start depends on ``(random_state, ids[i])``
    only), one identity step's size in a random direction. LPIPS is replaced by privis' feature distance (no
    ImageNet weights here).

    Args:
        codec: a codec file (:func:`privis.latent.save_codec`), a TorchScript folder or a
            :class:`~privis.latent.LatentCodec`; None: the pixel-space variant.
        identity_model: the white-box ``f_I``: an :class:`~privis.identity.IdentityModel` (used as it is), or a
            classifier (class = identity: :class:`~privis.identity.ClassifierIdentity` on its penultimate layer,
            calibrated on the fit images); None: ``fit`` trains ``identity_arch`` on the fit images and labels.
        identity_arch, identity_epochs: the classifier ``fit`` trains when no ``identity_model`` is given.
        N: most iterations (thesis 100).
        k: attribute steps per iteration (thesis 6).
        tau: stop once ``L_I > tau`` (thesis 0.8).
        lambda_I: identity step size in ``W'`` units (thesis 0.02, pSp latent units; pixel space: ``[0, 1]``).
        lambda_P: attribute step size (thesis 0.008).
        variant: ``"both"`` (Algorithm 7) or ``"id-only"`` (no attribute steps).
        batch_size: images optimised together (memory grows with it).
        random_state: seed of the random start and of the identity classifier's training; None: OS entropy.

    Examples:
        >>> import torch
        >>> from privis import data
        >>> from privis.methods.fsap import FSAP
        >>> train = data.load("digits:train[:64]")
        >>> fsap = FSAP(N=5, k=1, identity_epochs=1, random_state=0).fit(train.images, train.labels)
        >>> out = fsap.transform(train.images[:4])
        >>> out.shape, sorted(fsap.diagnostics())
        (torch.Size([4, 1, 8, 8]), ['fsap_id_loss_mean', 'fsap_iterations_mean', 'stop_reached_fraction'])
    """

    name = "fsap"
    citation = references.FSAP
    param_specs: ClassVar[dict[str, Param]] = {
        "codec": codec_param("codec file or TorchScript folder (none: the pixel-space variant)"),
        "identity_model": model_param("white-box identity model f_I or a classifier (none: fit trains identity_arch)"),
        "identity_arch": choice_param("classifier fit trains as f_I when no identity_model is given",
                                      available_models),
        "identity_epochs": int_param("epochs of that training", ge=1, le=10_000),
        "N": int_param("most iterations (thesis 100)", ge=1, le=100_000),
        "k": int_param("attribute steps per iteration (thesis 6)", ge=0, le=10_000),
        "tau": float_param("stop once the identity loss L_I exceeds tau (thesis 0.8)", ge=0, le=1e6),
        "lambda_I": float_param("identity step size, W' units (thesis 0.02)", ge=0, le=1e3),
        "lambda_P": float_param("attribute step size, W' units (thesis 0.008)", ge=0, le=1e3),
        "variant": choice_param("both losses (Algorithm 7) or the identity loss only (Table 5.1)", VARIANTS),
        "batch_size": int_param("images optimised together", ge=1, le=65_536),
        "random_state": seed_param(),
    }
    requires_fit = True
    stochastic = True
    accepts_ids = True
    #: the codec's path is the owner's
    private_params = frozenset({"codec"})

    def __init__(self, codec: str | Path | LatentCodec | None = None, identity_model: nn.Module | None = None,
                 identity_arch: str = "lenet5", identity_epochs: int = 5, N: int = 100, k: int = 6,
                 tau: float = 0.8, lambda_I: float = 0.02, lambda_P: float = 0.008, variant: str = "both",
                 batch_size: int = 256, random_state: int | None = None) -> None:
        self.codec = codec
        self.identity_model = identity_model
        self.identity_arch = identity_arch
        self.identity_epochs = identity_epochs
        self.N = N
        self.k = k
        self.tau = tau
        self.lambda_I = lambda_I
        self.lambda_P = lambda_P
        self.variant = variant
        self.batch_size = batch_size
        self.random_state = random_state

    def _fit_identity(self, images: Tensor, labels: Tensor | None) -> IdentityModel:
        given = self.identity_model
        if isinstance(given, IdentityModel):
            return freeze(copy.deepcopy(given))
        if labels is None:
            raise InvalidInputError("fsap: fit needs labels (class = identity) to calibrate or train the identity "
                                    "model, or pass identity_model= an IdentityModel")
        if given is not None:
            model = copy.deepcopy(given)
        else:
            seed = resolve_seed(self.random_state)
            model = create_seeded(self.identity_arch, seed, num_classes=int(labels.max()) + 1,
                                  in_channels=images.shape[1], image_size=(images.shape[-2], images.shape[-1]))
            train(model, images, labels, epochs=int(self.identity_epochs), seed=seed, device=images.device,
                  desc="fsap: identity model")
        identity = ClassifierIdentity(freeze(model.to(images.device)))
        identity.calibrate(images, labels)
        return identity

    def fit(self, images: Tensor, labels: Tensor | None = None) -> FSAP:
        """Load the codec, and fit (or take) the identity model ``f_I``.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]``: the identity classifier's training set and
                calibration images when no ``identity_model`` is given.
            labels: ``(N,)`` class ids (class = identity); needed unless ``identity_model`` is an
                :class:`~privis.identity.IdentityModel`.

        Raises:
            InvalidInputError: bad parameters, images or labels; no labels where they are needed; a codec that
                cannot be loaded or expects another image shape.
        """
        self.validate_params()
        images = check_images(images, channels=None)
        labels = check_labels(labels, images.shape[0])
        codec: LatentCodec | None
        if isinstance(self.codec, LatentCodec):
            codec = freeze(copy.deepcopy(self.codec).to(images.device))
        elif self.codec is not None:
            codec = load_codec(self.codec, device=images.device)
        else:
            codec = None
        if codec is not None and tuple(codec.image_shape) != tuple(images.shape[1:]):
            raise InvalidInputError(f"fsap: the codec expects images of shape {tuple(codec.image_shape)}, got "
                                    f"{tuple(images.shape[1:])}")
        identity = self._fit_identity(images, labels)
        self.models_ = _Models(identity, freeze(AttributeModel(channels=images.shape[1]).to(images.device)), codec)
        return self

    def identity_objective(self) -> IdentityModel:
        """The fitted identity model ``f_I`` FSAP optimises against.

        Raises:
            NotFittedError: before ``fit``.
        """
        if not hasattr(self, "models_"):
            raise NotFittedError("fsap must be fitted first (fit sets the identity model)")
        identity: IdentityModel = self.models_.identity
        return identity

    def transform(self, images: Tensor, labels: Tensor | None = None, *,
                  ids: Tensor | Sequence[int] | None = None) -> Tensor:
        """De-identify ``images`` (Algorithm 7), ``batch_size`` images at a time, each stopping on its own.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]`` (the codec's image shape when there is a codec).
            labels: unused (checked).
            ids: optional ``(N,)`` integer item ids: item ``i``'s random start then depends on
                ``(random_state, ids[i])`` alone, whatever the batch.

        Returns:
            ``(N, C, H, W)`` float32 in ``[0, 1]`` on the images' device. :meth:`diagnostics` reports the call.

        Raises:
            NotFittedError: before ``fit``.
            InvalidInputError: bad images, labels or ids, or a shape the codec does not take.
        """
        self.validate_params()
        if not hasattr(self, "models_"):
            raise NotFittedError("fsap must be fitted first (fit sets the identity model and the codec)")
        images = check_images(images, channels=None)
        check_labels(labels, images.shape[0])
        n = images.shape[0]
        if ids is not None and len(ids) != n:
            raise InvalidInputError(f"{len(ids)} ids for {n} images")
        m: _Models = fitted_models_on(self, images.device)
        if m.codec is not None and tuple(m.codec.image_shape) != tuple(images.shape[1:]):
            raise InvalidInputError(f"fsap: the codec expects images of shape {tuple(m.codec.image_shape)}, got "
                                    f"{tuple(images.shape[1:])}")
        keys = item_keys(self.random_state, ids) if ids is not None else None
        generator = torch_generator(self.random_state, images.device) if ids is None else None
        out = torch.empty_like(images)
        iterations = torch.zeros(n, dtype=torch.long)
        losses = torch.zeros(n)
        for start in range(0, n, int(self.batch_size)):
            x = images[start:start + int(self.batch_size)]
            with torch.no_grad():
                w = m.codec.encode(x) if m.codec is not None else x.clone()
            if keys is not None:
                xi = keyed_normal(keys[start:start + x.shape[0]], tuple(w.shape[1:])).to(w.device)
            else:
                xi = torch.randn(w.shape, generator=generator, device=w.device)
            w = self._project(m, w + float(self.lambda_I) * xi.sign())
            released, taken, final = self._optimise(m, self._identity_for(m, x), x, w)
            out[start:start + x.shape[0]] = released
            iterations[start:start + x.shape[0]] = taken.cpu()
            losses[start:start + x.shape[0]] = final.cpu()
        self._stats = (iterations, losses)
        self._warn_if_identity_kept(losses, pixel_space=m.codec is None)
        return out

    def _warn_if_identity_kept(self, losses: Tensor, *, pixel_space: bool) -> None:
        """One warning line when images leave without reaching ``tau``: a user must not take them as de-identified."""
        reached = float((losses > float(self.tau)).float().mean()) if losses.numel() else 1.0
        if reached >= 1.0 - WARN_KEPT_FRACTION:  # a stray image is in diagnostics(); a warning per call would flood
            return
        hint = ""
        undo = int(self.k) * len(ATTRIBUTE_PARTS) * float(self.lambda_P)
        if pixel_space and self.variant == "both" and undo >= float(self.lambda_I):
            hint = (f"; in pixel space k * {len(ATTRIBUTE_PARTS)} * lambda_P = {undo:g} undoes each identity step "
                    f"lambda_I = {float(self.lambda_I):g}: try lambda_I=0.05 lambda_P=0.002")
        kept = int((losses <= float(self.tau)).sum())
        warnings.warn(f"fsap: {kept} of {losses.numel()} images did not reach the identity loss tau = "
                      f"{float(self.tau):g} within N = {int(self.N)} iterations and may still be recognised{hint}",
                      UserWarning, stacklevel=3)

    @staticmethod
    def _identity_for(m: _Models, x: Tensor) -> IdentityModel:
        """``f_I`` for one batch of originals: an identity model with a ``locate`` method (the dlib adapters, which
        find the face's landmarks once on the originals) locates the batch on a shallow copy, so the fitted
        model is left as it is."""
        identity: IdentityModel = m.identity
        if callable(getattr(identity, "locate", None)):
            identity = copy.copy(identity)
            identity.locate(x)  # type: ignore[operator]
        return identity

    def _decode(self, m: _Models, w: Tensor) -> Tensor:
        if m.codec is None:
            return w
        return m.codec._decode(w).clamp(0.0, 1.0)

    def _project(self, m: _Models, w: Tensor) -> Tensor:
        return w.clamp(0.0, 1.0) if m.codec is None else w

    def _optimise(self, m: _Models, identity: IdentityModel, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Algorithm 7 on one batch from the start ``w``; returns the releases, the iterations taken per image
        and the final ``L_I``. The batch keeps its size throughout (stopped images are masked out of the
        updates), so identity models that keep per-batch state (the dlib adapters' landmarks) see the batch
        they located."""
        n = x.shape[0]
        attributes = m.attributes
        tau, lam_i, lam_p = float(self.tau), float(self.lambda_I), float(self.lambda_P)
        inner = int(self.k) if self.variant == "both" else 0
        with torch.no_grad():
            reference = identity.embed(x)
            reference_features = attributes.features(x) if inner else []
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        taken = torch.full((n,), int(self.N), dtype=torch.long, device=x.device)
        final = torch.zeros(n, device=x.device)
        shape = (n,) + (1,) * (w.dim() - 1)
        for step in range(int(self.N) + 1):
            w.requires_grad_(True)
            loss = id_loss(identity, reference, self._decode(m, w))
            value = loss.detach()
            if step == 0:  # no face found (a NaN loss): nothing to optimise, the start is released
                active &= torch.isfinite(value)
            final = torch.where(active, value, final)
            done = active & (value > tau)
            taken[done] = step
            active &= ~done
            if step == int(self.N) or not bool(active.any()):
                break
            (grad,) = torch.autograd.grad(torch.where(active, loss, 0.0).sum(), w)
            mask = active.reshape(shape).to(w.dtype)
            w = self._project(m, w.detach() + lam_i * torch.nan_to_num(grad).sign() * mask)
            for _ in range(inner):
                w.requires_grad_(True)
                parts = attributes.unchecked_parts(x, self._decode(m, w), original_features=reference_features)
                total = torch.zeros_like(w)
                for name in ATTRIBUTE_PARTS:
                    (g,) = torch.autograd.grad(parts[name].sum(), w, retain_graph=name != ATTRIBUTE_PARTS[-1])
                    total += torch.nan_to_num(g).sign()
                w = self._project(m, w.detach() - lam_p * total * mask)
        with torch.no_grad():
            released = self._decode(m, w.detach())
        return released.clamp(0.0, 1.0), taken, final

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``: ``stop_reached_fraction`` (share of images with ``L_I > tau``),
        ``fsap_iterations_mean`` (identity steps taken) and ``fsap_id_loss_mean`` (final ``L_I``); empty before
        the first call."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            return {}
        iterations, losses = stats
        return {"stop_reached_fraction": float((losses > float(self.tau)).float().mean()),
                "fsap_iterations_mean": float(iterations.float().mean()),
                "fsap_id_loss_mean": float(losses.mean())}
