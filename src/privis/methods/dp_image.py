"""DP-Image: differential privacy for images in a codec's latent space, by iteration.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 4, Algorithm 6 ("DP-Image Algorithm by Iteration"): with an
encoder ``f`` (image -> latent), a decoder ``g`` (latent -> image), a clipping map ``f_c`` and noise
``N(0, sigma^2 I)``, starting from ``X_0 = X``::

    for t = 0 .. T-1:   z_t = f(X_t);   z_{t+1} = f_c(z_t) + N(0, sigma^2 I);   X_{t+1} = g(z_{t+1})
    release X_T

Theorem 4.4.1 (IDPI) then states ``(alpha, alpha Delta_f^2 / (2 T sigma^2))``-RDP for a 1-Lipschitz step
(privacy amplification by iteration), with the sensitivity ``Delta_f = sup ||f_c(f(X)) - f_c(f(X'))||_2``
(Definition 4.4.2) that clipping bounds: ``2 c sqrt(d)`` for a box ``[-c, c]^d`` (Eq. 4.10-4.12: ``c = 20``
and ``d = 18 x 512`` give 3840), ``2 c`` for an L2 ball of radius ``c``. :meth:`DPImage.dp_parameters`
declares these inputs; the accountant in :mod:`privis.privacy` turns them into epsilon.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from privis import references
from privis.errors import InvalidInputError
from privis.latent.base import LatentCodec
from privis.latent.training import load_codec, train_codec
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Param,
    Protector,
    check_images,
    check_labels,
    choice_param,
    codec_param,
    float_param,
    int_param,
    seed_param,
)
from privis.methods.baselines import item_keys, keyed_normal
from privis.privacy.dp_image import sensitivity
from privis.random import resolve_seed, torch_generator

__all__ = ["DPImage", "fit_clip"]

#: Fraction of latent coordinates (box) or of latent norms (l2) of the fit images the fitted clip keeps intact.
CLIP_QUANTILE = 0.995
#: Noise values drawn per keyed chunk (bounds the temporary memory of the ids path).
_NOISE_CHUNK = 1 << 22


def fit_clip(latents: Tensor, kind: str, quantile: float = CLIP_QUANTILE) -> float:
    """The clip bound ``c`` that keeps ``quantile`` of the fit latents intact, rounded up to 2 significant digits.

    Args:
        latents: ``(N, d)`` latents (the perturbed part) of the fit images.
        kind: ``"box"`` (``c`` is the quantile of ``|z_j|`` over all coordinates) or ``"l2"`` (of ``||z||_2``
            over items).
        quantile: in ``(0, 1]``.

    Returns:
        ``c > 0`` (at least 1e-6).
    """
    values = latents.abs().flatten() if kind == "box" else latents.norm(dim=1)
    q = float(torch.quantile(values.double().cpu()[: 1 << 24], quantile, interpolation="higher"))
    if q <= 0:
        return 1e-6
    step = 10.0 ** (math.floor(math.log10(q)) - 1)
    return float(f"{math.ceil(q / step) * step:.2g}")


@register
class DPImage(Protector):
    """DP-Image (Algorithm 6 of Xue's thesis): iterate encode, clip, add Gaussian noise, decode ``T`` times.

    The whole batch runs the ``T`` steps together, on the device of the images, with no transfer to the host
    between steps (the keyed noise of ``ids`` is drawn on the CPU in chunks of steps and moved as one tensor).

    Args:
        codec: the latent codec: a file written by :func:`privis.latent.save_codec`, a TorchScript folder
            (``encoder.pt``, ``decoder.pt``, ``codec.json``: pSp + StyleGAN2 in the thesis), or from Python a
            :class:`privis.latent.LatentCodec`; None: ``fit`` trains a stand-in codec of ``codec_kind`` on the
            fit images for ``codec_epochs`` epochs.
        codec_kind: ``"autoencoder"`` (:class:`~privis.latent.ConvAutoencoder`) or ``"contractive"``
            (:class:`~privis.latent.ContractiveCodec`, certified 1-Lipschitz step) for the stand-in.
        codec_epochs: epochs of the stand-in's training.
        sigma: standard deviation of the noise per latent coordinate, in latent units (thesis: 0.2 for
            pSp's W+, whose values lie mostly in ``[-20, 20]``; a privis codec's latents have about unit spread).
        steps: ``T``, iterations (thesis: 1 to 1e5; identity changes within 5).
        clip: ``c``, the clip bound in latent units; None: ``fit`` sets it to the smallest 2-significant-digit
            value keeping 99.5% of the fit latents' coordinates (box) or norms (l2) intact, as the thesis chose
            ``c = 20`` to keep over 99% of pSp's coordinates (Section 4.5.2.1). The fitted value is public
            (``clip_``, :meth:`dp_parameters`). A clip fitted on the images being protected depends on them;
            for a formal guarantee choose ``clip`` from public data or beforehand.
        clip_kind: ``"box"`` (``z_j -> min(max(z_j, -c), c)``, the thesis') or ``"l2"`` (``z -> z min(1, c/||z||)``
            on the perturbed part and, separately, on the rest).
        perturbed_groups: the latent groups the noise goes to: None (all), an int ``k`` (the first ``k``, the
            coarse groups: the thesis' public code noises 7 of pSp's 18) or a list of group indices. Every
            group is clipped; only these are noised.
        random_state: seed; None draws from OS entropy.

    Examples:
        >>> import torch
        >>> from privis.methods.dp_image import DPImage
        >>> images = torch.rand(6, 1, 8, 8)
        >>> protector = DPImage(codec_epochs=1, steps=2, random_state=0).fit(images)
        >>> out = protector.transform(images)
        >>> out.shape, protector.dp_parameters()["steps"]
        (torch.Size([6, 1, 8, 8]), 2)
    """

    name = "dp-image"
    citation = references.DP_IMAGE
    param_specs: ClassVar[dict[str, Param]] = {
        "codec": codec_param("codec file or TorchScript folder (none: fit trains a stand-in codec)"),
        "codec_kind": choice_param("stand-in codec fit trains when codec is none", ("autoencoder", "contractive")),
        "codec_epochs": int_param("epochs of the stand-in codec's training", ge=1, le=10_000),
        "sigma": float_param("noise standard deviation per latent coordinate, latent units (thesis 0.2)", ge=0,
                             le=1e4),
        "steps": int_param("iterations T of encode, clip, noise, decode", ge=1, le=1_000_000),
        "clip": float_param("clip bound c, latent units (none: 99.5% quantile of the fit latents)", gt=0, le=1e6,
                            optional=True),
        "clip_kind": choice_param("clip per coordinate (box, the thesis') or by L2 norm", ("box", "l2")),
        "perturbed_groups": Param("literal", "groups noised: none (all), k (the first k) or a list of indices",
                                  optional=True),
        "random_state": seed_param(),
    }
    requires_fit = True
    stochastic = True
    accepts_ids = True
    #: the codec's path is the owner's (the codec itself is public: its fitted copy is ``codec_``)
    private_params = frozenset({"codec"})

    def __init__(self, codec: str | Path | LatentCodec | None = None, codec_kind: str = "autoencoder",
                 codec_epochs: int = 10, sigma: float = 0.2, steps: int = 10, clip: float | None = None,
                 clip_kind: str = "box", perturbed_groups: int | Sequence[int] | None = None,
                 random_state: int | None = None) -> None:
        self.codec = codec
        self.codec_kind = codec_kind
        self.codec_epochs = codec_epochs
        self.sigma = sigma
        self.steps = steps
        self.clip = clip
        self.clip_kind = clip_kind
        self.perturbed_groups = perturbed_groups
        self.random_state = random_state

    def _check_params(self) -> None:
        groups = self.perturbed_groups
        if groups is None or (isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1):
            return
        if (isinstance(groups, list | tuple) and groups
                and all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in groups)
                and len(set(groups)) == len(groups)):
            return
        raise InvalidInputError(f"dp-image: parameter perturbed_groups must be none, an integer >= 1 or a list of "
                                f"distinct group indices >= 0, got {groups!r}")

    def _group_indices(self, total: int) -> list[int]:
        groups = self.perturbed_groups
        if groups is None:
            return list(range(total))
        if isinstance(groups, int):
            if groups > total:
                raise InvalidInputError(f"dp-image: perturbed_groups={groups} but the codec has {total} groups")
            return list(range(groups))
        bad = [g for g in groups if g >= total]
        if bad:
            raise InvalidInputError(f"dp-image: perturbed_groups {bad} out of range for a codec of {total} groups")
        return sorted(groups)

    def fit(self, images: Tensor, labels: Tensor | None = None) -> DPImage:
        """Load (or train) the codec, fix the perturbed groups and, when ``clip`` is None, the clip bound.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]``: the stand-in codec's training set and the latents
                the clip quantile is taken over.
            labels: unused (checked).

        Raises:
            InvalidInputError: bad parameters or images, a codec file that cannot be loaded, images of another
                shape than the codec's, perturbed groups outside the codec.
        """
        self.validate_params()
        images = check_images(images, channels=None)
        check_labels(labels, images.shape[0])
        if isinstance(self.codec, LatentCodec):
            codec = copy.deepcopy(self.codec).to(images.device).eval().requires_grad_(False)
        elif self.codec is not None:
            codec = load_codec(self.codec, device=images.device)
        else:
            codec = train_codec(images, self.codec_kind, epochs=int(self.codec_epochs),
                                random_state=resolve_seed(self.random_state))
        perturbed = self._group_indices(codec.latent_shape[0])
        if self.clip is None:
            with torch.no_grad():
                latents = torch.cat([codec.encode(images[i:i + 1024]) for i in range(0, images.shape[0], 1024)])
            clip = fit_clip(latents[:, perturbed].flatten(1), self.clip_kind)
        else:
            clip = float(self.clip)
        self.codec_ = codec
        self.perturbed_groups_ = perturbed
        self.clip_ = clip
        return self

    def _codec_on(self, device: torch.device) -> LatentCodec:
        codec: LatentCodec = self.codec_
        if next(codec.parameters(), torch.empty(0, device=device)).device == device:
            return codec
        cached = getattr(self, "_device_codec", None)
        if cached is None or next(cached.parameters()).device != device:
            cached = copy.deepcopy(codec).to(device)
            self._device_codec = cached
        return cached

    def _clip(self, z: Tensor, mask: Tensor) -> Tensor:
        """``f_c``: the box clip per coordinate, or the L2-ball projection of the perturbed part and, apart, of
        the rest (a projection onto a convex set, so 1-Lipschitz either way)."""
        c = self.clip_
        if self.clip_kind == "box":
            return z.clamp(-c, c)
        out = torch.zeros_like(z)
        for part in (mask, 1.0 - mask):  # (G, 1): the perturbed groups, then the others
            piece = z * part
            norms = piece.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, 1, 1)
            out = out + piece * torch.clamp(c / norms, max=1.0)
        return out

    def _keyed_noise(self, keys: np.ndarray, steps: range, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """Noise ``(len(steps), N, *shape)``; step ``t`` of item ``i`` a function of ``(keys[i], t)`` only."""
        n = keys.shape[0]
        step_keys = np.concatenate([item_keys(t, torch.from_numpy(keys.view(np.int64))) for t in steps])
        return keyed_normal(step_keys, shape).reshape(len(steps), n, *shape).to(device, non_blocking=True)

    @torch.no_grad()
    def transform(self, images: Tensor, labels: Tensor | None = None, *,
                  ids: Tensor | Sequence[int] | None = None) -> Tensor:
        """Release ``X_T`` for each image (Algorithm 6), batched.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]`` of the codec's image shape.
            labels: unused (checked).
            ids: optional ``(N,)`` integer item ids: item ``i``'s noise at step ``t`` is then a function of
                ``(random_state, ids[i], t)`` alone (counter-based, :func:`privis.methods.baselines.keyed_normal`),
                whatever the batch; without ids the batch's noise comes from one generator seeded by
                ``random_state`` on the images' device.

        Returns:
            ``(N, C, H, W)`` float32 in ``[0, 1]`` on the images' device.

        Raises:
            NotFittedError: before ``fit``.
            InvalidInputError: bad images, labels or ids.
        """
        self.validate_params()
        if not hasattr(self, "codec_"):
            raise NotFittedError("dp-image must be fitted first (fit loads or trains the codec)")
        images = check_images(images, channels=None)
        check_labels(labels, images.shape[0])
        device = images.device
        codec = self._codec_on(device)
        n = images.shape[0]
        groups, width = codec.latent_shape
        perturbed = torch.tensor(self.perturbed_groups_, device=device)
        mask = torch.zeros(groups, 1, device=device)
        mask[perturbed] = 1.0
        sigma, steps = float(self.sigma), int(self.steps)
        noise_shape = (len(self.perturbed_groups_), width)
        keys = None
        generator = None
        if ids is not None:
            if len(ids) != n:
                raise InvalidInputError(f"{len(ids)} ids for {n} images")
            keys = item_keys(self.random_state, ids)
        else:
            generator = torch_generator(self.random_state, device)
        chunk = max(1, _NOISE_CHUNK // max(1, n * noise_shape[0] * width))
        z = codec.encode(images)  # checks the images once; the loop below calls the unchecked maps (no host sync)
        x, noise = images, torch.empty(0)
        for t in range(steps):
            z = self._clip(z if t == 0 else codec._encode(x), mask)
            if keys is not None:
                if t % chunk == 0:
                    noise = self._keyed_noise(keys, range(t, min(steps, t + chunk)), noise_shape, device)
                step_noise = noise[t % chunk]
            else:
                step_noise = torch.randn((n, *noise_shape), generator=generator, device=device)
            z[:, perturbed] += sigma * step_noise
            x = codec._decode(z).clamp(0.0, 1.0)  # g, as LatentCodec.decode, without its finiteness check
        return x

    def public_record(self) -> dict[str, Any]:
        """``{"dp_parameters": ...}`` for the run's manifest: the fitted clip and the sensitivity are public."""
        return {"dp_parameters": self.dp_parameters()}

    def dp_parameters(self) -> dict[str, Any]:
        """The public inputs of the DP-Image accountant (:meth:`Protector.dp_parameters`), after ``fit``.

        ``sensitivity`` is ``2 c sqrt(d_p)`` for the box clip (Eq. 4.10-4.12 of the thesis; ``d_p`` the number of
        perturbed coordinates, ``perturbed_dim``) and ``2 c`` for the L2 clip; ``latent_dim`` is ``G D``.

        Raises:
            NotFittedError: before ``fit`` (the clip bound and the codec's shape are fitted).
        """
        if not hasattr(self, "codec_"):
            raise NotFittedError("dp-image must be fitted before its DP parameters are known")
        groups, width = self.codec_.latent_shape
        perturbed_dim = len(self.perturbed_groups_) * width
        c = float(self.clip_)
        return {"mechanism": "dp-image", "sensitivity": sensitivity(c, perturbed_dim, self.clip_kind),
                "sigma": float(self.sigma),
                "steps": int(self.steps), "clip": c, "clip_kind": self.clip_kind, "latent_dim": groups * width,
                "perturbed_dim": perturbed_dim, "groups": groups, "perturbed_groups": list(self.perturbed_groups_),
                "lipschitz_bound": self.codec_.lipschitz_bound}
