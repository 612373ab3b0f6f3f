"""The attribute model of face de-identification: how far a protected image's look drifts from the original.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Section 5.4.2.2, Eq. 5.4: the attribute loss ``L_P`` combines three
terms, MSE (``L_m``), LPIPS (``L_l``, R. Zhang, P. Isola, A. A. Efros, E. Shechtman and O. Wang, "The
Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018, arXiv:1801.03924) and SSIM
(``L_s``). LPIPS' ImageNet backbone and learned weights cannot be shipped here, so the perceptual term is
privis' own **feature distance** (:meth:`AttributeModel.feature_distance`), computed on activations taken with
:class:`privis.models.FeatureExtractor`; it is not LPIPS and its values are not comparable with LPIPS'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.metrics import mse, ssim, ssim_window
from privis.models.build import create_seeded, freeze
from privis.models.features import FeatureExtractor, layer_names

__all__ = ["ATTRIBUTE_PARTS", "DEFAULT_FEATURE_LAYERS", "AttributeModel"]

#: The three terms of Eq. 5.4, in the order of the thesis: pixel MSE, the perceptual term, structure (SSIM).
ATTRIBUTE_PARTS = ("mse", "feature", "ssim")
#: Layers of the default feature network (a VGG-11-BN at width 8, seeded random weights) the distance uses.
DEFAULT_FEATURE_LAYERS = ("block1", "block2")
#: Seed of the default feature network's weights (fixed: the distance is one public function).
DEFAULT_FEATURE_SEED = 0


class AttributeModel(nn.Module):
    """MSE, a perceptual feature distance and SSIM between originals and protected images (Eq. 5.4's terms).

    Every term is a per-image loss ``(N,)``, 0 for identical images and growing with the change, and is
    differentiable with respect to the protected images:

    - ``mse``: mean squared pixel error (:func:`privis.metrics.mse`), ``[0, 1]`` units squared;
    - ``feature``: privis' perceptual feature distance (:meth:`feature_distance`), in ``[0, 4]``;
    - ``ssim``: ``1 - SSIM`` (:func:`privis.metrics.ssim`, 7x7 uniform window, or the largest odd window the
      image allows), in ``[0, 2]``.

    Args:
        channels: image channels (1 or 3) the default feature network is built for; ignored when
            ``feature_model`` is given.
        feature_model: the network whose activations the feature distance compares (e.g. a classifier trained
            on the data); None: a VGG-11-BN (:func:`privis.models.create`, ``"vgg"``, width 8) with random
            weights fixed by seed 0, in eval mode. Random convolutional features keep local structure (edges,
            texture) and are the same for everyone; a trained network is the better choice when one exists.
            The model is frozen (a copy is not made: pass a copy if it is still training).
        layers: names of its layers (:func:`privis.models.layer_names`); None: ``("block1", "block2")`` of the
            default network (required with a ``feature_model``).
        weights: the ``lambda_1, lambda_2, lambda_3`` of Eq. 5.4 for :meth:`forward` (the thesis sets all three
            to one rate, so they only matter for reporting a single number).

    Raises:
        InvalidInputError: a ``feature_model`` without ``layers``, an unknown layer, bad channels or weights.

    Examples:
        >>> import torch
        >>> from privis.identity import AttributeModel
        >>> x = torch.rand(2, 1, 16, 16)
        >>> attrs = AttributeModel(channels=1)
        >>> parts = attrs.parts(x, x)
        >>> sorted(parts), [float(v.abs().max()) < 1e-6 for v in parts.values()]
        (['feature', 'mse', 'ssim'], [True, True, True])
    """

    def __init__(self, channels: int = 3, feature_model: nn.Module | None = None,
                 layers: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if feature_model is None:
            if channels not in (1, 3):
                raise InvalidInputError(f"channels must be 1 or 3, got {channels!r}")
            feature_model = create_seeded("vgg", DEFAULT_FEATURE_SEED, num_classes=2, in_channels=channels,
                                          image_size=(32, 32), width=8, hidden=8)
            layers = DEFAULT_FEATURE_LAYERS if layers is None else layers
        elif layers is None:
            raise InvalidInputError("a feature_model needs the names of its layers (privis.models.layer_names)")
        if not layers:
            raise InvalidInputError("layers must name at least one layer")
        unknown = [name for name in layers if name not in layer_names(feature_model)]
        if unknown:
            raise InvalidInputError(f"unknown layers {unknown}; valid layers: {', '.join(layer_names(feature_model))}")
        self.feature_model = freeze(feature_model)
        self.extractors = nn.ModuleList(FeatureExtractor(self.feature_model, name) for name in layers)
        self.layers = tuple(layers)
        weights = dict(weights or dict.fromkeys(ATTRIBUTE_PARTS, 1.0))
        if set(weights) != set(ATTRIBUTE_PARTS) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in weights.values()):
            raise InvalidInputError(f"weights must give a number >= 0 for each of {', '.join(ATTRIBUTE_PARTS)}, "
                                    f"got {weights!r}")
        self.weights = {k: float(weights[k]) for k in ATTRIBUTE_PARTS}

    def features(self, images: Tensor) -> list[Tensor]:
        """Per layer, the activation ``(N, D_l)`` scaled to unit L2 norm per image (float32, differentiable)."""
        return [nn.functional.normalize(extract(images).float(), dim=1, eps=1e-12) for extract in self.extractors]

    def feature_distance(self, originals: Tensor, images: Tensor, *,
                         original_features: list[Tensor] | None = None) -> Tensor:
        """privis' perceptual feature distance ``(N,)``: ``mean_l ||phi_l(x) - phi_l(y)||^2``, in ``[0, 4]``.

        ``phi_l`` is layer ``l``'s activation scaled to unit L2 norm per image (:meth:`features`), so each term
        is ``2 - 2 cos`` of the two activations. LPIPS (Zhang et al., CVPR 2018) normalises per position and
        weighs channels with learned weights on an ImageNet network; this distance does neither.

        Args:
            originals, images: ``(N, C, H, W)`` canonical, same shape.
            original_features: :meth:`features` of ``originals`` when already computed (saves a forward pass).
        """
        reference = original_features if original_features is not None else self.features(originals)
        return torch.stack([(a.to(b.device) - b).square().sum(1) for a, b in zip(
            reference, self.features(images), strict=True)]).mean(0)

    def parts(self, originals: Tensor, images: Tensor, *,
              original_features: list[Tensor] | None = None) -> dict[str, Tensor]:
        """The three attribute losses ``{"mse", "feature", "ssim"}``, each ``(N,)`` float32 (see the class).

        Raises:
            InvalidInputError: not canonical images or shapes that differ.
        """
        originals = check_images(originals, name="originals", channels=None)
        images = check_images(images, name="images", channels=None)
        if originals.shape != images.shape:
            raise InvalidInputError(f"originals and images must have the same shape, got {tuple(originals.shape)} "
                                    f"and {tuple(images.shape)}")
        return self.unchecked_parts(originals, images, original_features=original_features)

    def unchecked_parts(self, originals: Tensor, images: Tensor, *,
                        original_features: list[Tensor] | None = None) -> dict[str, Tensor]:
        """:meth:`parts` without the input checks, for hot loops that checked the images once."""
        win = ssim_window(*originals.shape[-2:])
        return {
            "mse": cast(Tensor, mse(images, originals)),
            "feature": self.feature_distance(originals, images, original_features=original_features),
            "ssim": 1.0 - cast(Tensor, ssim(images, originals, win_size=win)),
        }

    def forward(self, originals: Tensor, images: Tensor) -> Tensor:
        """``L_P`` as one number per image ``(N,)``: the weighted sum of the three parts (Eq. 5.4)."""
        parts = self.parts(originals, images)
        return torch.stack([self.weights[k] * parts[k] for k in ATTRIBUTE_PARTS]).sum(0)
