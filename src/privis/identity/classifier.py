"""Identity models built from a classifier (class = identity) and from a user's TorchScript face model.

Face de-identification is measured with a face recogniser: ArcFace embeddings compared by cosine similarity
with the threshold 0.31 (J. Deng, J. Guo, N. Xue and S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for
Deep Face Recognition", CVPR 2019, arXiv:1801.07698; used so in H. Xue, "A Study on Image Privacy Protection
in Response to Artificial Intelligence Technology", PhD thesis, University of Technology Sydney, 2023,
Section 4.5.1.2). On datasets without faces (Fashion-MNIST, digits) the class plays the identity: a
classifier's penultimate activation is the embedding (:class:`ClassifierIdentity`), and its threshold is
calibrated on original images at the equal error rate (:func:`equal_error_threshold`). A user's own ArcFace,
exported with TorchScript, plugs in through :class:`TorchScriptIdentity`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.identity.base import IdentityModel
from privis.models.checkpoint import load_checkpoint
from privis.models.features import FeatureExtractor, penultimate_layer
from privis.models.training import model_device

__all__ = ["ARCFACE_THRESHOLD", "ClassifierIdentity", "TorchScriptIdentity", "equal_error_threshold"]

#: ArcFace's empirical cosine threshold (same identity when similarity >= 0.31), as the thesis uses it.
ARCFACE_THRESHOLD = 0.31
#: At most this many images enter a calibration (all pairs of them are scored).
MAX_CALIBRATION_IMAGES = 2000
METRICS = ("cosine", "euclidean")


def _check_metric(metric: object) -> str:
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return str(metric)


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def equal_error_threshold(same: Tensor, different: Tensor, *, metric: str = "cosine") -> tuple[float, float]:
    """The decision threshold at the equal error rate of genuine and impostor scores.

    For a cosine metric (same identity when ``score >= t``) the false rejection rate is
    ``FRR(t) = P(same < t)`` and the false acceptance rate ``FAR(t) = P(different >= t)``; for a distance
    (same identity when ``score <= t``) the inequalities flip. Every observed score is a candidate ``t``; the
    one minimising ``|FAR(t) - FRR(t)|`` is returned; among equally good ones the most lenient (the lowest
    similarity, the largest distance), so a tie never inflates a protection success rate.

    Args:
        same: ``(M,)`` scores of pairs of the same identity (genuine pairs), finite.
        different: ``(K,)`` scores of pairs of different identities (impostor pairs), finite.
        metric: ``"cosine"`` (a similarity) or ``"euclidean"`` (a distance).

    Returns:
        ``(threshold, eer)``: the threshold and the mean of FAR and FRR there (the equal error rate, in
        ``[0, 1]``).

    Raises:
        InvalidInputError: an empty or non-finite score set, or an unknown metric.
    """
    metric = _check_metric(metric)
    for scores, name in ((same, "same-identity scores"), (different, "different-identity scores")):
        if scores.numel() == 0 or not bool(torch.isfinite(scores).all()):
            raise InvalidInputError(f"{name} must be a non-empty set of finite values, got {scores.numel()} values")
    sign = 1.0 if metric == "cosine" else -1.0  # a distance is a negated similarity
    genuine = torch.sort(sign * same.detach().double().flatten()).values
    impostor = torch.sort(sign * different.detach().double().flatten()).values
    candidates = torch.unique(torch.cat([genuine, impostor]))
    frr = torch.searchsorted(genuine, candidates, side="left").double() / genuine.numel()
    far = 1.0 - torch.searchsorted(impostor, candidates, side="left").double() / impostor.numel()
    gap = (far - frr).abs()
    best = int(torch.nonzero(gap == gap.min())[0])
    return float(sign * candidates[best]), float((far[best] + frr[best]) / 2)


class ClassifierIdentity(IdentityModel):
    """A classifier's penultimate activation as the identity embedding (class = identity), cosine metric.

    The embedding of images ``(N, C, H, W)`` float32 in ``[0, 1]`` is the flattened activation ``(N, E)`` of
    ``layer`` (default: the layer feeding the last ``nn.Linear``, see
    :func:`privis.models.penultimate_layer`) minus :attr:`center`, differentiable w.r.t. the images. The
    model is put in eval mode and used on its own device (images are moved there).

    A softmax classifier's activations share a large common component, so raw cosines are high even between
    unrelated images; :meth:`calibrate` therefore also sets :attr:`center` to the mean activation of the
    original images (zero until then), and cosines become those of centred features, near 0 for an image
    unrelated to the original, as for a face recogniser's embeddings.

    Args:
        model: a classifier trained on original images (e.g. from :func:`privis.models.create`).
        layer: the feature layer's name (:func:`privis.models.layer_names`), or None for the penultimate one.
        threshold: the cosine decision threshold until :meth:`calibrate` replaces it (default ArcFace's 0.31).
        image_shape: ``(C, H, W)`` the model expects, or None to accept any shape the model accepts.

    Raises:
        InvalidInputError: an unknown layer, a model without a final ``nn.Linear`` when ``layer`` is None, or
            a non-finite threshold.
    """

    metric = "cosine"

    def __init__(self, model: nn.Module, layer: str | None = None, *, threshold: float = ARCFACE_THRESHOLD,
                 image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        layer = penultimate_layer(model) if layer is None else layer
        self.features = FeatureExtractor(model, layer).eval()
        self.threshold = _check_threshold(threshold)
        self.image_shape = image_shape
        self.name = f"{type(model).__name__.lower()}-{layer}"
        #: the mean activation of the calibration images, subtracted from every embedding
        self.center: Tensor
        self.register_buffer("center", torch.zeros(()))
        #: the equal error rate on the calibration images, once :meth:`calibrate` has run
        self.eer: float | None = None

    def _embed(self, images: Tensor) -> Tensor:
        return self.features(images.to(model_device(self.features))) - self.center.to(model_device(self.features))

    @torch.no_grad()
    def calibrate(self, images: Tensor, labels: Tensor, *, batch_size: int = 500) -> float:
        """Set :attr:`center` to the images' mean activation and :attr:`threshold` to the equal-error-rate
        threshold of the centred embeddings; returns the threshold.

        Every pair of the first 2,000 images (``i < j``) is scored by cosine similarity; pairs of one label
        are genuine, the others impostors, and :func:`equal_error_threshold` picks the threshold where
        falsely rejected genuine pairs and falsely accepted impostor pairs are equally frequent. The thesis
        uses ArcFace's published threshold 0.31 instead, which exists only for faces. :attr:`eer` keeps the
        equal error rate.

        Args:
            images: ``(N, C, H, W)`` canonical original images, ``N >= 2``.
            labels: ``(N,)`` integer identities (class labels) with at least two images of one label and two
                different labels.
            batch_size: images embedded per forward pass.

        Raises:
            InvalidInputError: not canonical images, labels of another length or not integers, or no genuine
                or no impostor pair.
        """
        images = check_images(images, channels=None)
        if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.shape != images.shape[:1]:
            raise InvalidInputError(f"labels must be an integer tensor of shape ({images.shape[0]},), got "
                                    f"{getattr(labels, 'dtype', type(labels).__name__)} of shape "
                                    f"{tuple(getattr(labels, 'shape', ()))}")
        images, labels = images[:MAX_CALIBRATION_IMAGES], labels[:MAX_CALIBRATION_IMAGES]
        _, counts = labels.unique(return_counts=True)
        if len(counts) < 2 or int(counts.max()) < 2:
            raise InvalidInputError("calibration needs two images of one label and two different labels")
        self.center = torch.zeros((), device=self.center.device)
        emb = torch.cat([self.embed(chunk) for chunk in images.split(batch_size)])
        self.center = emb.mean(0)
        emb = nn.functional.normalize((emb - self.center).double(), dim=1)
        i, j = torch.triu_indices(len(emb), len(emb), offset=1, device=emb.device)
        scores = (emb[i] * emb[j]).sum(1)
        genuine = labels.to(emb.device)[i] == labels.to(emb.device)[j]
        self.threshold, self.eer = equal_error_threshold(scores[genuine], scores[~genuine])
        return self.threshold


class TorchScriptIdentity(IdentityModel):
    """A user's identity model saved with TorchScript (e.g. ArcFace): ``module(images)`` gives embeddings.

    The module receives canonical images ``(N, C, H, W)`` float32 in ``[0, 1]`` on its own device and must
    return ``(N, E)`` embeddings (any normalisation it needs happens inside it); outputs of more dimensions
    are flattened to ``(N, E)``. Differentiable when the module is.

    Args:
        path: the TorchScript file (``torch.jit.save``).
        metric: ``"cosine"`` (ArcFace) or ``"euclidean"`` (dlib).
        threshold: the model's decision threshold (ArcFace: :data:`ARCFACE_THRESHOLD`, dlib: 0.6).
        image_shape: ``(C, H, W)`` the model expects (ArcFace: ``(3, 112, 112)``), or None.

    Raises:
        InvalidInputError: a missing or unreadable file, an unknown metric, a non-finite threshold, or an
            ``image_shape`` that is not three positive integers.
    """

    def __init__(self, path: str | Path, metric: str = "cosine", threshold: float = ARCFACE_THRESHOLD,
                 image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.metric = _check_metric(metric)
        self.threshold = _check_threshold(threshold)
        if image_shape is not None and (len(image_shape) != 3 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_shape)):
            raise InvalidInputError(f"image_shape must be three positive integers (C, H, W), got {image_shape!r}")
        self.image_shape = None if image_shape is None else tuple(image_shape)  # type: ignore[assignment]
        module, info = load_checkpoint(path)
        if info["format"] != "torchscript":
            raise InvalidInputError(f"{path}: not a TorchScript file (save the model with torch.jit.save)")
        self.module = module
        self.name = Path(path).stem

    def _embed(self, images: Tensor) -> Tensor:
        out = self.module(images.to(model_device(self.module)))
        if not isinstance(out, Tensor) or out.dim() < 2 or out.shape[0] != images.shape[0]:
            raise InvalidInputError(f"identity model {self.name!r} must return (N, E) embeddings, got "
                                    f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        return out.flatten(1).float()
