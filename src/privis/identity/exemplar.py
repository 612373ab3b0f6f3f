"""Exemplar identity models: the individual image as the identity, for datasets without persons.

Face anonymisation hides *who* is in an image from a face recogniser (ArcFace in H. Xue, "A Study on Image
Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis, University of Technology
Sydney, 2023, Chapter 6). On Fashion-MNIST or digits there is no person; privis takes the individual image as
the identity and recognises it with an *exemplar* network (A. Dosovitskiy, J. T. Springenberg, M. Riedmiller
and T. Brox, "Discriminative Unsupervised Feature Learning with Convolutional Neural Networks", NeurIPS 2014):
a classifier trained to tell ``N`` images apart, each class being one image under random augmentations
(:func:`augment_exemplar`), so that its penultimate layer embeds "this very image, slightly moved or
re-exposed" close together and other images apart. Wrapped as a
:class:`~privis.identity.ClassifierIdentity` and calibrated at the equal error rate on genuine pairs
``(x, augment(x))`` and impostor pairs ``(x, y)``, it plays ArcFace's role: an anonymised image that it no longer
matches to its source has lost its identity.
"""

from __future__ import annotations

import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.identity.classifier import MAX_CALIBRATION_IMAGES, ClassifierIdentity
from privis.models.build import create_seeded, freeze
from privis.models.registry import available as available_models
from privis.models.training import train
from privis.random import resolve_seed

__all__ = ["augment_exemplar", "max_shift", "train_exemplar_identity"]

#: Largest translation of :func:`augment_exemplar` on 28 px images, pixels (each axis); scaled to the image size.
MAX_SHIFT = 2
#: The image side :data:`MAX_SHIFT` is stated for (Fashion-MNIST's).
SHIFT_REFERENCE_SIDE = 28
#: Largest brightness offset and relative contrast change of :func:`augment_exemplar`.
MAX_BRIGHTNESS = 0.1
MAX_CONTRAST = 0.1
#: Standard deviation of :func:`augment_exemplar`'s Gaussian pixel noise.
NOISE_SIGMA = 0.03
#: Share of the images held out for calibration when ``calibrate_on`` is None (at most half the
#: calibration limit, since each held-out image enters the calibration twice).
HELD_OUT_SHARE = 0.2


def max_shift(height: int, width: int) -> int:
    """The largest shift of :func:`augment_exemplar` for an image of that size: ``MAX_SHIFT`` (2 px) at 28 px,
    in proportion to the shorter side, at least 1 px (1 px on 8x8 digits, where 2 px would move a quarter of
    the image)."""
    return max(1, round(MAX_SHIFT * min(height, width) / SHIFT_REFERENCE_SIDE))


def augment_exemplar(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random exemplar augmentation per image: a shift, a brightness/contrast change and pixel noise.

    Per image, independently: a translation by ``(dy, dx)`` whole pixels, each uniform in ``{-s, ..., s}``
    with ``s =`` :func:`max_shift` (+-2 px on 28 px images, +-1 px on 8 px ones; pixels shifted in are 0,
    the background of Fashion-MNIST and digits); then ``c (x - m) + m + b`` with ``m`` the image's mean, a
    contrast factor ``c`` uniform in ``[1 - MAX_CONTRAST, 1 + MAX_CONTRAST]`` (0.9-1.1) and a brightness
    offset ``b`` uniform in ``[-MAX_BRIGHTNESS, MAX_BRIGHTNESS]`` (+-0.1); then Gaussian noise of standard
    deviation ``NOISE_SIGMA`` (0.03) per pixel; finally clamped to ``[0, 1]``. Every random value is drawn
    on the CPU from ``generator``, so a seeded generator gives the same augmentation on every device.

    Args:
        images: ``(N, C, H, W)`` float32 in ``[0, 1]``.
        generator: a CPU ``torch.Generator`` (None: torch's global RNG).

    Returns:
        ``(N, C, H, W)`` float32 in ``[0, 1]`` on the images' device.

    Raises:
        InvalidInputError: not canonical images.
    """
    images = check_images(images, channels=None)
    n, c, h, w = images.shape
    limit = max_shift(h, w)
    shifts = torch.randint(-limit, limit + 1, (2, n), generator=generator)
    contrast = 1.0 + MAX_CONTRAST * (2.0 * torch.rand(n, generator=generator) - 1.0)
    brightness = MAX_BRIGHTNESS * (2.0 * torch.rand(n, generator=generator) - 1.0)
    noise = NOISE_SIGMA * torch.randn(images.shape, generator=generator)
    device = images.device
    padded = torch.nn.functional.pad(images, (limit,) * 4).permute(0, 2, 3, 1)  # (N, H + 2s, W + 2s, C)
    rows = (limit - shifts[0]).to(device)[:, None, None] + torch.arange(h, device=device)[None, :, None]
    cols = (limit - shifts[1]).to(device)[:, None, None] + torch.arange(w, device=device)[None, None, :]
    moved = padded[torch.arange(n, device=device)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    scale = contrast.to(device).view(n, 1, 1, 1)
    out = scale * (moved - mean) + mean + brightness.to(device).view(n, 1, 1, 1) + noise.to(device)
    return out.clamp(0.0, 1.0)


def _copies(images: Tensor, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` augmented copies of every image (copy-major) and their instance labels ``0 .. N-1``."""
    n = images.shape[0]
    copies = torch.cat([augment_exemplar(images, generator) for _ in range(count)])
    return copies, torch.arange(n, device=images.device).repeat(count)


def train_exemplar_identity(images: Tensor, arch: str = "lenet5", *, augmentations: int = 8, epochs: int = 30,
                            random_state: int | None = None,
                            calibrate_on: Tensor | None = None) -> ClassifierIdentity:
    """An exemplar identity model: ``arch`` trained to tell the images apart, calibrated at the equal error rate.

    The classifier (``N`` classes, one per training image) trains with Adam (privis'
    :func:`~privis.models.train` defaults) on the original images plus ``augmentations`` augmented copies of
    each (:func:`augment_exemplar`, drawn once before training). Its penultimate layer is the embedding
    (:class:`~privis.identity.ClassifierIdentity`); the threshold is set by
    :meth:`~privis.identity.ClassifierIdentity.calibrate` on each calibration image and one augmented copy of
    it, labelled by instance: genuine pairs ``(x, augment(x))``, impostor pairs ``(x, y)`` (and their copies).
    The model is frozen, in eval mode, on the images' device.

    Args:
        images: ``(N, C, H, W)`` float32 in ``[0, 1]``, ``N >= 2`` (with ``calibrate_on`` None, ``N >= 4``):
            the identities.
        arch: a registered classifier (:func:`privis.models.available`; ``"lenet5"`` optimised against,
            ``"vgg"`` held out in privis' experiments).
        augmentations: augmented copies per image in the training set (``>= 1``).
        epochs: passes over the ``N (augmentations + 1)`` training images (``>= 1``).
        random_state: seed of the initial weights, the augmentations, the batch order and the held-out split;
            None: OS entropy.
        calibrate_on: ``(M, C, H, W)`` images to calibrate on, ``M >= 2`` (the first 1,000 are used); None:
            ``HELD_OUT_SHARE`` (20%, at most 1,000) of ``images``, drawn at random, are held out of
            training and calibrate the threshold (the model then recognises the other images).

    Returns:
        The :class:`~privis.identity.ClassifierIdentity` named ``"<arch>-exemplar"`` (cosine metric, threshold
        in ``[-1, 1]``, :attr:`~privis.identity.ClassifierIdentity.eer` set).

    Raises:
        InvalidInputError: bad images, too few of them, an unknown architecture or bad counts.

    Examples:
        >>> from privis import data
        >>> digits = data.load("digits:train[:40]")
        >>> identity = train_exemplar_identity(digits.images, epochs=2, random_state=0)
        >>> identity.name, -1.0 <= identity.threshold <= 1.0
        ('lenet5-exemplar', True)
    """
    images = check_images(images, channels=None)
    if arch not in available_models():
        raise InvalidInputError(f"unknown architecture {arch!r}; available: {', '.join(available_models())}")
    for key, value in (("augmentations", augmentations), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{key} must be an integer >= 1, got {value!r}")
    seed = resolve_seed(random_state)
    generator = torch.Generator().manual_seed(seed)
    if calibrate_on is None:
        if images.shape[0] < 4:
            raise InvalidInputError(f"an exemplar model needs at least 4 images to hold some out for calibration, "
                                    f"got {images.shape[0]}; or pass calibrate_on=")
        held = min(max(2, int(HELD_OUT_SHARE * images.shape[0])), MAX_CALIBRATION_IMAGES // 2)
        order = torch.randperm(images.shape[0], generator=generator).to(images.device)
        calibrate_on, images = images[order[:held]], images[order[held:]]
    else:
        calibrate_on = check_images(calibrate_on, channels=None)[: MAX_CALIBRATION_IMAGES // 2]
        if calibrate_on.shape[0] < 2 or calibrate_on.shape[1:] != images.shape[1:]:
            raise InvalidInputError(f"calibrate_on must hold at least 2 images of shape {tuple(images.shape[1:])}, "
                                    f"got {tuple(calibrate_on.shape)}")
    if images.shape[0] < 2:
        raise InvalidInputError(f"an exemplar model needs at least 2 training images, got {images.shape[0]}")
    n = images.shape[0]
    copies, labels = _copies(images, augmentations, generator)
    train_images = torch.cat([images, copies])
    train_labels = torch.cat([torch.arange(n, device=images.device), labels])
    model = create_seeded(arch, seed, num_classes=n, in_channels=images.shape[1],
                          image_size=(images.shape[-2], images.shape[-1]))
    train(model, train_images, train_labels, epochs=epochs, seed=seed, device=images.device,
          desc=f"{arch} exemplar identity")
    identity = freeze(ClassifierIdentity(model, image_shape=tuple(images.shape[1:])))  # type: ignore[arg-type]
    identity.name = f"{arch}-exemplar"
    augmented, instance = _copies(calibrate_on, 1, generator)
    identity.calibrate(torch.cat([calibrate_on, augmented]),
                       torch.cat([torch.arange(calibrate_on.shape[0], device=calibrate_on.device), instance]))
    return identity
