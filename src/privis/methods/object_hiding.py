"""Object hiding: an adversarial perturbation that makes a detector see private objects as background.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 3. A detector ``C`` finds the objects of image ``X`` (Eq. 3.3);
the classes split into ``C_private`` (faces, licence plates) and the rest. The protected image ``X^pr = X + dX``
should make ``C`` report every private object as background ``c_bg`` and every other object as before, with
``||dX||_2`` small (Eq. 3.5-3.7). The loss (Eq. 3.8) is the mean cross-entropy over the detector's regions
(anchors) against one-hot targets ``p_i*`` (background for regions of private objects, the detected class for
the others) plus ``lambda ||X - X^pr||_2``; targeted FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015, Eq. 3.9-3.10)
steps against its gradient, and Algorithm 5 iterates ``N`` times::

    X_0 = X;   for n = 1 .. N:   X_n = clip_[0,1](X_{n-1} - eps sign(grad_X L_cls(X_{n-1})))

:class:`DetectorProtector` is the part shared with the box-restricted blur and mosaic baselines
(:mod:`privis.methods.region_baselines`): the detector parameter, the private classes, and running a caller's
detector without changing it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from privis import references
from privis.detectors import REGISTRY as DETECTORS
from privis.detectors import Detections, Detector, box_iou, region_targets
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Param,
    Protector,
    check_images,
    check_labels,
    choice_param,
    float_param,
    int_param,
)
from privis.metrics.hiding import hiding_ratios

__all__ = ["DetectorProtector", "HidingReport", "ObjectHiding", "detector_mode", "resolve_detector"]

#: The detector a detector-based method uses unless told otherwise: MTCNN (white-box, weights ship offline).
DEFAULT_DETECTOR = "mtcnn"


@dataclass(frozen=True)
class _DetectorParam(Param):
    """A :class:`Detector` object, a saved scene-detector checkpoint path, or a detector registry name."""

    def is_valid(self, value: Any) -> bool:
        return isinstance(value, Detector) or (isinstance(value, str | Path) and str(value) != "")


def resolve_detector(value: Detector | str | Path) -> Detector:
    """The detector ``value`` stands for: itself, the scene detector saved at a path, or a new registry detector.

    Raises:
        InvalidInputError: a path that cannot be loaded, or an unknown registry name.
    """
    if isinstance(value, Detector):
        return value
    text = str(value)
    if text.endswith((".pt", ".pth")) or Path(text).expanduser().is_file():
        from privis.detectors.scene_detector import load_scene_detector  # deferred: only a path needs it

        return load_scene_detector(Path(text).expanduser())
    detector: Detector = DETECTORS.create(text)
    return detector


@contextmanager
def detector_mode(detector: Detector) -> Iterator[Detector]:
    """Run ``detector`` in eval mode and give it back in the train/eval modes it came in (a caller's model)."""
    modes = [(m, m.training) for m in detector.modules()]
    detector.eval()
    try:
        yield detector
    finally:
        for module, training in modes:
            module.training = training


@dataclass(frozen=True)
class HidingReport:
    """Per image figures of the last ``transform`` of a :class:`DetectorProtector` (CPU tensors, ``(N,)`` each).

    Attributes:
        nothing_to_hide: the detector found no private object in the original image (left unchanged).
        hidden: every private object found in the original is hidden at the end (True where nothing to hide).
        effort: what it took, float: :class:`ObjectHiding`'s FGSM steps (``< N`` after an early stop), a
            region baseline's strength (the weakest that hid, or the strongest tried); 0 where nothing to hide.
        perturbation_min, perturbation_max: range ``R_p`` of ``X^pr - X`` in ``[0, 1]`` pixel units.
    """

    nothing_to_hide: Tensor
    hidden: Tensor
    effort: Tensor
    perturbation_min: Tensor
    perturbation_max: Tensor


class DetectorProtector(Protector):
    """A protector driven by an object detector: ``fit`` resolves the detector and the private class ids.

    Subclasses declare ``detector`` and ``private_classes`` in ``param_specs`` (:data:`DETECTOR_PARAMS`) and
    read ``detector_`` and ``private_ids_`` after ``fit``.
    """

    requires_fit = True
    task = "detection"
    #: the detector's path is the owner's (the detector itself is public)
    private_params = frozenset({"detector"})
    DETECTOR_PARAMS: ClassVar[dict[str, Param]] = {
        "detector": _DetectorParam("str", "the detector: a registry name (default mtcnn), a saved scene-detector "
                                          "checkpoint (.pt) or, from Python, a Detector"),
        "private_classes": Param("literal", "class names (or ids) to hide: a name or a list (default face)"),
    }

    #: what :attr:`HidingReport.effort` counts, named in :meth:`diagnostics`
    effort_name: ClassVar[str] = "effort"
    detector: Detector | str | Path
    private_classes: str | int | Sequence[str | int]

    def _check_params(self) -> None:
        classes = self.private_classes
        items = [classes] if isinstance(classes, str | int) else classes
        if (isinstance(items, list | tuple) and items
                and all(isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool)) for c in items)):
            return
        raise InvalidInputError(f"{self.name}: parameter private_classes must be a class name, a class id or a "
                                f"non-empty list of them, got {classes!r}")

    def fit(self, images: Tensor, labels: Tensor | None = None) -> DetectorProtector:
        """Resolve the detector (``detector_``) and the private class ids (``private_ids_``).

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]`` (checked; nothing is learnt from them).
            labels: unused (checked).

        Raises:
            InvalidInputError: bad parameters or images, a detector that cannot be loaded, a private class the
                detector does not know, or the background class among the private ones.
        """
        self.validate_params()
        check_labels(labels, check_images(images, channels=None).shape[0])
        detector = resolve_detector(self.detector)
        names = detector.class_names
        classes = [self.private_classes] if isinstance(self.private_classes, str | int) else self.private_classes
        ids = []
        for c in classes:
            if isinstance(c, str) and c not in names:
                raise InvalidInputError(f"{self.name}: detector {detector.name!r} has no class {c!r}; its classes: "
                                        f"{', '.join(names[1:])}")
            i = names.index(c) if isinstance(c, str) else int(c)
            if not 1 <= i < len(names):
                raise InvalidInputError(f"{self.name}: private class ids must be in [1, {len(names)}) "
                                        f"(0 is background), got {c!r}")
            ids.append(i)
        self.detector_ = detector
        self.private_ids_ = sorted(set(ids))
        return self

    @contextmanager
    def _detector_on(self, device: torch.device) -> Iterator[Detector]:
        """The fitted detector in eval mode on ``device`` (a copy when it lives elsewhere: the caller's stays)."""
        if not hasattr(self, "detector_"):
            raise NotFittedError(f"{self.name} must be fitted first (fit resolves the detector)")
        detector = self.detector_
        params = list(detector.parameters())
        if params and params[0].device != device:
            detector = copy.deepcopy(detector).to(device)
        with detector_mode(detector):
            yield detector


    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Protect the private objects of ``images`` ``(N, C, H, W)`` float32 in ``[0, 1]``; same shape and range.

        Round by round (:meth:`_rounds`), every image still at work gets a new candidate (:meth:`_attempt`);
        the detector then runs on the candidates and each image whose private objects are all hidden
        (:func:`privis.metrics.hiding.found_again`) stops. Images with nothing private are left unchanged.
        :meth:`report` gives the per image figures.

        Raises:
            NotFittedError: before :meth:`fit`.
            InvalidInputError: bad images or labels.
        """
        self.validate_params()
        images = check_images(images, channels=None)
        check_labels(labels, images.shape[0])
        n = images.shape[0]
        with self._detector_on(images.device) as detector:
            clean = detector.detect(images)
            private = torch.tensor(self.private_ids_, dtype=torch.long)
            has_private = torch.tensor([bool(torch.isin(d.labels.cpu(), private).any()) for d in clean])
            out = images.clone()
            effort = torch.zeros(n)
            hidden = ~has_private
            active = torch.nonzero(has_private).flatten()
            for value in self._rounds():
                if active.numel() == 0:
                    break
                idx = active.to(images.device)
                objects = [clean[i] for i in active.tolist()]
                out[idx] = self._attempt(detector, images[idx], out[idx], objects, value)
                effort[active] = float(value)
                done = hiding_ratios(objects, detector.detect(out[idx]), self.private_ids_).all_hidden()
                hidden[active[done]] = True
                active = active[~done]
        delta = (out - images).flatten(1)
        self._report = HidingReport(~has_private, hidden, effort, delta.min(dim=1).values.cpu(),
                                    delta.max(dim=1).values.cpu())
        return out

    def _rounds(self) -> Sequence[float]:
        """The effort of each round, in order (FGSM step counts, obfuscation strengths)."""
        raise NotImplementedError

    def _attempt(self, detector: Detector, original: Tensor, current: Tensor, clean: list[Detections],
                 value: float) -> Tensor:
        """The next candidates of the images still at work: ``original`` and ``current`` ``(n, C, H, W)`` (their
        originals and latest outputs), ``clean`` their original detections, ``value`` the round's effort."""
        raise NotImplementedError

    def report(self) -> HidingReport:
        """Per image figures of the last ``transform`` (:class:`HidingReport`).

        Raises:
            InvalidInputError: no transform yet.
        """
        report: HidingReport | None = getattr(self, "_report", None)
        if report is None:
            raise InvalidInputError(f"{self.name}: no transform has run yet")
        return report

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``: ``nothing_to_hide_fraction``, ``hidden_fraction`` (of the images
        with something to hide), ``<effort_name>_mean`` (over those images), and the perturbation range
        ``perturbation_min_255`` / ``perturbation_max_255`` (``R_p`` in 0..255 units, as the thesis states it);
        empty before the first call."""
        report: HidingReport | None = getattr(self, "_report", None)
        if report is None:
            return {}
        work = ~report.nothing_to_hide
        some = bool(work.any())
        return {
            "nothing_to_hide_fraction": float(report.nothing_to_hide.float().mean()),
            "hidden_fraction": float(report.hidden[work].float().mean()) if some else float("nan"),
            f"{self.effort_name}_mean": float(report.effort[work].mean()) if some else 0.0,
            "perturbation_min_255": float(report.perturbation_min.min()) * 255.0,
            "perturbation_max_255": float(report.perturbation_max.max()) * 255.0,
        }


@register
class ObjectHiding(DetectorProtector):
    """Algorithm 5 of Xue's thesis: iterative targeted FGSM that turns private detections into background.

    Steps, for the whole batch at once on the images' device:

    1. The detector finds the objects of the original images (:meth:`Detector.detect`). Images without a
       private object are returned unchanged (:meth:`report` says which).
    2. Targets ``p_i*`` (Eq. 3.8) come from these clean detections (:func:`privis.detectors.region_targets`):
       regions matching a private object get background, regions matching another object keep its class,
       unmatched regions background. They are recomputed against the current regions at each step (for
       detectors whose regions depend on the image) but always from the clean detections.
    3. ``N`` times: ``X <- clip_[0,1](X - eps sign(grad_X [CE_mean + lambda ||X - X_0||_2]))`` (Eq. 3.8-3.10).
    4. Early stop, per image: after each step the detector runs on the images still being worked on; an image
       whose every private object is hidden (no detection of its class at IoU >= 0.5,
       :func:`privis.metrics.hiding.found_again`) leaves the batch, the rest continue.

    What the thesis leaves open and privis chooses: the early stop (the thesis runs all ``N`` steps), the clip
    to ``[0, 1]``, and a detector other than Faster R-CNN (any white-box :class:`~privis.detectors.Detector`).
    Only what the detector found is protected: an object it missed in the original is left as it is.

    Args:
        detector: the white-box detector: a registry name (default ``"mtcnn"``, faces; its weights ship with
            privis' ``faces`` extra), a scene-detector checkpoint written by ``privis train-detector``, or from
            Python a :class:`~privis.detectors.Detector` (used as is, never changed).
        private_classes: the class names (or ids) of ``C_private``; default ``"face"``.
        eps: FGSM step in ``[0, 1]`` pixel units (default 0.002, about 0.5 in 0..255 units). The thesis states
            steps and ranges in 0..255 units (``eps = 0.2`` or ``0.4``, ``R_p`` within ``(-3, 3)``): divide
            those by 255.
        iterations: ``N``, the most steps per image (each image stops once its private objects are hidden).
        lam: ``lambda`` of Eq. 3.8's ``||X - X^pr||_2`` term (0: the plain classification loss).
        loss_regions: ``"all"``: Eq. 3.8's mean over every region (the thesis); ``"objects"``: only the regions
            matching an object of the clean detections (IoU >= 0.5) contribute, so the perturbation stays on
            the objects instead of the sign of tiny background gradients spreading ``eps`` over every pixel
            (a detector with many background regions, such as MTCNN's pyramid of P-Net windows).

    Examples:
        >>> import torch
        >>> from privis.detectors import Detections, Detector, RegionLogits
        >>> from privis.methods.object_hiding import ObjectHiding
        >>> class Bright(Detector):  # one region per image: a "face" when its mean is above 0.5
        ...     white_box, class_names = True, ("background", "face")
        ...     def _regions(self, x):
        ...         m = x.mean(dim=(1, 2, 3))[:, None]
        ...         box = torch.tensor([[[0.0, 0, x.shape[-1], x.shape[-2]]]]).expand(len(x), 1, 4)
        ...         return RegionLogits(torch.stack([torch.zeros_like(m), 40 * (m - 0.5)], -1), box)
        ...     def _detect(self, x):
        ...         out = self._regions(x)
        ...         p = out.logits.softmax(-1)[:, 0, 1]
        ...         return [Detections(out.boxes[i][p[i:i + 1] >= 0.5], torch.ones(int(p[i] >= 0.5), dtype=torch.long),
        ...                            p[i:i + 1][p[i:i + 1] >= 0.5]) for i in range(len(x))]
        >>> images = torch.tensor([0.53, 0.2]).reshape(2, 1, 1, 1).expand(2, 1, 8, 8).clone()
        >>> hider = ObjectHiding(detector=Bright(), eps=0.01, iterations=10).fit(images)
        >>> out = hider.transform(images)
        >>> [len(d) for d in Bright().detect(out)], hider.report().effort.tolist()
        ([0, 0], [4.0, 0.0])
    """

    name = "object-hiding"
    effort_name = "iterations"
    citation = references.OBJECT_HIDING
    param_specs: ClassVar[dict[str, Param]] = {
        **DetectorProtector.DETECTOR_PARAMS,
        "eps": float_param("FGSM step, [0, 1] pixel units (thesis 0.2/255 to 0.4/255)", gt=0, le=1),
        "iterations": int_param("N, the most FGSM steps per image (early stop once hidden)", ge=1, le=100_000),
        "lam": float_param("lambda of the ||dX||_2 term of Eq. 3.8", ge=0, le=1e6),
        "loss_regions": choice_param("regions Eq. 3.8 averages over: all (the thesis) or objects (only those "
                                     "matching a detected object)", ("all", "objects")),
    }

    def __init__(self, detector: Detector | str | Path = DEFAULT_DETECTOR,
                 private_classes: str | int | Sequence[str | int] = "face", eps: float = 0.002,
                 iterations: int = 50, lam: float = 0.0, loss_regions: str = "all") -> None:
        self.detector = detector
        self.private_classes = private_classes
        self.eps = eps
        self.iterations = iterations
        self.lam = lam
        self.loss_regions = loss_regions

    def _rounds(self) -> Sequence[float]:
        return range(1, int(self.iterations) + 1)

    def fit(self, images: Tensor, labels: Tensor | None = None) -> ObjectHiding:
        """Resolve the detector and the private classes (:meth:`DetectorProtector.fit`).

        Raises:
            InvalidInputError: as :meth:`DetectorProtector.fit`, or a black-box detector (no gradients).
        """
        super().fit(images, labels)
        if not self.detector_.white_box:
            raise InvalidInputError(f"object-hiding needs a white-box detector; {self.detector_.name!r} gives no "
                                    f"gradients (use it to measure transfer instead)")
        return self

    def _attempt(self, detector: Detector, original: Tensor, current: Tensor, clean: list[Detections],
                 value: float) -> Tensor:
        """One targeted FGSM step (Eq. 3.9-3.10) from ``current``; ``clean`` sets the targets of Eq. 3.8."""
        x = current.detach().requires_grad_(True)
        with torch.enable_grad():
            regions = detector.regions(x)
            targets = region_targets(regions.boxes, clean, self.private_ids_)
            n, r, m = regions.logits.shape
            ce = F.cross_entropy(regions.logits.reshape(n * r, m), targets.reshape(-1), reduction="none").reshape(n, r)
            if self.loss_regions == "objects":  # only the regions matching a detected object (IoU >= 0.5)
                ce = ce * torch.stack([(box_iou(regions.boxes[i], d.boxes.to(x.device)) >= 0.5).any(dim=1)
                                       for i, d in enumerate(clean)])
            loss = ce.sum() / r
            if self.lam:
                loss = loss + float(self.lam) * ((x - original).flatten(1).square().sum(dim=1) + 1e-12).sqrt().sum()
            (grad,) = torch.autograd.grad(loss, x)
        return (x.detach() - float(self.eps) * grad.sign()).clamp_(0.0, 1.0)
