"""A small white-box single-stage detector for the built-in scenes, trained in a minute on a CPU.

The network is an anchor-free, FCOS/CenterNet-style detector (X. Zhou, D. Wang and P. Krähenbühl, "Objects as
Points", arXiv:1904.07850, 2019): a five-layer convolutional backbone with output stride 4 and, for every cell of
the ``S/4 x S/4`` grid, (a) ``M`` class logits with the background at index 0 and (b) the distances from the
cell's centre to the four sides of its object. Every cell is one *region* in the sense of Eq. 3.1-3.3 of H. Xue,
"A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis, University
of Technology Sydney, 2023: :meth:`SceneDetector.regions` returns the cells' logits ``(N, R, M)`` (``R = (S/4)^2``)
and their predicted boxes, so the classification loss of Eq. 3.8 can push a private object's cells to the
background. A detection is a cell whose best non-background softmax probability reaches ``score_threshold``,
its decoded box, after per-class non-maximum suppression (:func:`privis.detectors.base.nms`).

Training (:func:`train_scene_detector`): a cell is a positive of an object when its centre lies in the middle
half of the object's box (the smallest such object wins), cells elsewhere inside a box are ignored, all other
cells are background; the loss is the cross-entropy over the non-ignored cells, background cells weighted 0.1
(:data:`BACKGROUND_WEIGHT`: a scene is mostly background), plus an L1 loss on the log side distances of the
positives; Adam with a cosine learning-rate decay, horizontal flips.
"""

from __future__ import annotations

import io
import math
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import privis
from privis import references
from privis.data.checks import check_int
from privis.detectors import register
from privis.detectors.base import Detections, Detector, RegionLogits, check_score_threshold, nms
from privis.detectors.scenes import SCENE_CLASSES, Scenes
from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes
from privis.random import torch_generator
from privis.results import Result

__all__ = ["SceneDetector", "load_scene_detector", "save_scene_detector", "train_detector_on_scenes",
           "train_scene_detector"]

#: What a scene-detector file's ``format`` field holds.
FILE_FORMAT = "privis-scene-detector-v1"
#: Output stride of the backbone (pixels per grid cell).
STRIDE = 4
#: Cells kept per image before non-maximum suppression (keeps its greedy pass cheap).
PRE_NMS_TOP = 100
#: Weight of background cells in the training cross-entropy (objects: 1); most cells are background.
BACKGROUND_WEIGHT = 0.1
#: Lowest score ranked when measuring mAP (the detector's own threshold would cut the precision-recall curve).
MAP_SCORE_THRESHOLD = 0.05


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register
class SceneDetector(Detector):
    """A small white-box detector (background + the scene classes) over a stride-4 grid of cells.

    Train it with :func:`train_scene_detector`; save and load it with :func:`save_scene_detector` /
    :func:`load_scene_detector`. Image sides must be divisible by 4 (any size, not only the training one).

    Args:
        class_names: ``("background", ...)``, at least one object class.
        width: channels of the first layer (``>= 4``); later layers use twice as many.
        score_threshold: report cells whose best non-background probability reaches this, in ``[0, 1]``.
        nms_iou: IoU above which a lower-scoring box of the same class is suppressed, in ``(0, 1]``.

    Attributes:
        extra: metadata read with the weights by :func:`load_scene_detector` (empty otherwise).

    Raises:
        InvalidInputError: bad class names or settings.
    """

    name = "scene-detector"
    citation = references.CENTERNET
    white_box = True
    channels = 3

    def __init__(self, class_names: Sequence[str] = SCENE_CLASSES, width: int = 16, score_threshold: float = 0.5,
                 nms_iou: float = 0.5) -> None:
        super().__init__()
        names = tuple(class_names)
        if len(names) < 2 or names[0] != "background" or len(set(names)) != len(names):
            raise InvalidInputError(f"class_names must be distinct and start with 'background', got {names}")
        if not 0 < nms_iou <= 1:
            raise InvalidInputError(f"nms_iou must be in (0, 1], got {nms_iou!r}")
        self.class_names = names
        self.width = check_int(width, "width", minimum=4)
        self.score_threshold = check_score_threshold(score_threshold)
        self.nms_iou = float(nms_iou)
        self.extra: dict[str, Any] = {}
        w = self.width
        self.backbone = nn.Sequential(_block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 2 * w),
                                      _block(2 * w, 2 * w, dilation=2), _block(2 * w, 2 * w, dilation=4))
        self.cls_head = nn.Sequential(_block(2 * w, 2 * w), nn.Conv2d(2 * w, len(names), 1))
        self.box_head = nn.Sequential(_block(2 * w, 2 * w), nn.Conv2d(2 * w, 4, 1))
        self.eval()

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments (what a detector file stores next to the weights)."""
        return {"class_names": list(self.class_names), "width": self.width,
                "score_threshold": self.score_threshold, "nms_iou": self.nms_iou}

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw outputs for canonical images ``(N, 3, H, W)`` with ``H, W`` divisible by 4.

        Returns:
            ``(logits, log_sides, centres)``: ``(N, R, M)`` class logits, ``(N, R, 4)`` log side distances in
            cells (left, top, right, bottom), ``(R, 2)`` cell centres in pixels (x, y), ``R = H W / 16``.
        """
        h, w = images.shape[-2:]
        if h % STRIDE or w % STRIDE:
            raise InvalidInputError(f"scene-detector needs image sides divisible by {STRIDE}, got {h}x{w}")
        features = self.backbone((images - 0.5) / 0.5)
        logits = self.cls_head(features).flatten(2).transpose(1, 2)
        log_sides = self.box_head(features).flatten(2).transpose(1, 2)
        ys, xs = torch.meshgrid(torch.arange(h // STRIDE, device=images.device),
                                torch.arange(w // STRIDE, device=images.device), indexing="ij")
        centres = (torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() + 0.5) * STRIDE
        return logits, log_sides, centres

    @staticmethod
    def _boxes(log_sides: Tensor, centres: Tensor, h: int, w: int) -> Tensor:
        sides = log_sides.clamp(max=math.log(max(h, w) / STRIDE)).exp() * STRIDE
        boxes = torch.cat([centres - sides[..., :2], centres + sides[..., 2:]], dim=-1)
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        return boxes.clamp(min=torch.zeros_like(limit), max=limit)

    def _regions(self, images: Tensor) -> RegionLogits:
        logits, log_sides, centres = self(images)
        return RegionLogits(logits, self._boxes(log_sides.detach(), centres, *images.shape[-2:]))

    def _detect(self, images: Tensor) -> list[Detections]:
        out = self._regions(images)
        probs = out.logits.softmax(-1)[..., 1:]
        scores, labels = probs.max(-1)
        found = []
        for i in range(images.shape[0]):
            top = scores[i].topk(min(PRE_NMS_TOP, scores.shape[1])).indices
            top = top[scores[i, top] >= self.score_threshold]
            boxes, s, lab = out.boxes[i, top], scores[i, top], labels[i, top] + 1
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, s, lab = boxes[valid], s[valid], lab[valid]
            keep = nms(boxes, s, self.nms_iou, lab)
            found.append(Detections(boxes[keep], lab[keep], s[keep]))
        return found


def _targets(objects: Sequence[Detections], centres: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per cell: class target ``(N, R)`` (-1 = ignored), positive mask ``(N, R)``, side targets ``(N, R, 4)``."""
    n, r = len(objects), centres.shape[0]
    classes = torch.zeros(n, r, dtype=torch.long)
    sides = torch.ones(n, r, 4)
    for i, det in enumerate(objects):
        if len(det) == 0:
            continue
        b = det.boxes
        x, y = centres[:, 0:1], centres[:, 1:2]  # (R, 1) against (K,) boxes
        inside = (x > b[:, 0]) & (x < b[:, 2]) & (y > b[:, 1]) & (y < b[:, 3])
        cx, cy, bw, bh = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        central = ((x - cx).abs() <= torch.clamp(bw / 4, min=STRIDE / 2)) & \
                  ((y - cy).abs() <= torch.clamp(bh / 4, min=STRIDE / 2))
        area = (bw * bh).expand(r, -1)
        best = torch.where(central, area, torch.full_like(area, math.inf)).argmin(dim=1)
        positive = central.any(dim=1)
        classes[i] = torch.where(positive, det.labels[best], torch.where(inside.any(dim=1), -1, 0))
        chosen = b[best]
        sides[i] = torch.stack([x[:, 0] - chosen[:, 0], y[:, 0] - chosen[:, 1], chosen[:, 2] - x[:, 0],
                                chosen[:, 3] - y[:, 0]], dim=1).clamp(min=1.0)
    return classes, classes > 0, (sides / STRIDE).log()


def train_scene_detector(scenes: Scenes, *, epochs: int = 20, batch_size: int = 64, lr: float = 3e-3,
                         width: int = 16, seed: int | None = None, device: torch.device | str = "cpu"
                         ) -> SceneDetector:
    """Train a :class:`SceneDetector` on ``scenes`` (:func:`privis.detectors.scenes.make_scenes`).

    Args:
        scenes: training scenes and their objects.
        epochs, batch_size: passes and scenes per step (``>= 1``).
        lr: Adam's learning rate (``> 0``), decayed by a cosine schedule to 0.
        width: the detector's ``width``.
        seed: order and flips (``None``: OS entropy); weights are initialised from it too.
        device: where to train.

    Returns:
        The detector in eval mode on ``device``.

    Raises:
        InvalidInputError: bad settings.
    """
    epochs, batch_size = check_int(epochs, "epochs"), check_int(batch_size, "batch_size")
    if not lr > 0:
        raise InvalidInputError(f"lr must be > 0, got {lr!r}")
    g = torch_generator(seed)
    torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=g)))
    det = SceneDetector(scenes.class_names, width=width).to(device)
    images = scenes.images
    _, _, centres = det(images[:1].to(device))
    flipped = [Detections(torch.stack([images.shape[-1] - o.boxes[:, 2], o.boxes[:, 1],
                                       images.shape[-1] - o.boxes[:, 0], o.boxes[:, 3]], dim=1), o.labels,
                          o.scores) for o in scenes.objects]
    targets = [_targets(objs, centres.cpu()) for objs in (scenes.objects, flipped)]
    class_weight = torch.ones(len(scenes.class_names), device=device)
    class_weight[0] = BACKGROUND_WEIGHT
    steps = epochs * math.ceil(images.shape[0] / batch_size)
    optimizer = torch.optim.Adam(det.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    det.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=g)
        for start in range(0, images.shape[0], batch_size):
            idx = order[start:start + batch_size]
            flip = bool(torch.rand((), generator=g) < 0.5)
            batch = images[idx].flip(-1) if flip else images[idx]
            classes, positive, sides = (t[idx].to(device) for t in targets[int(flip)])
            logits, log_sides, _ = det(batch.to(device))
            cls_loss = F.cross_entropy(logits.transpose(1, 2), classes, weight=class_weight, ignore_index=-1)
            box_loss = (log_sides - sides).abs().sum(-1)[positive].mean() if positive.any() else logits.sum() * 0
            optimizer.zero_grad()
            (cls_loss + box_loss).backward()
            optimizer.step()
            schedule.step()
    return det.eval()


def save_scene_detector(detector: SceneDetector, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``detector`` (its :attr:`SceneDetector.config` and weights) to ``path`` atomically; return the path.

    Args:
        extra: plain metadata stored with it (numbers, strings, lists, dicts), e.g. its test mAP.
    """
    payload = {"format": FILE_FORMAT, "config": detector.config,
               "state_dict": {k: v.detach().cpu() for k, v in detector.state_dict().items()},
               "extra": dict(extra or {}), "privis_version": privis.__version__}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_scene_detector(path: str | Path, map_location: torch.device | str = "cpu") -> SceneDetector:
    """The detector :func:`save_scene_detector` wrote, in eval mode, its ``extra`` metadata in
    :attr:`SceneDetector.extra` (``privis train-detector`` stores ``private_classes`` and ``map50`` there).
    ``torch.load(weights_only=True)``: opening a file runs no code.

    Raises:
        InvalidInputError: the file is missing, unreadable or not a scene-detector file.
    """
    try:
        payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise InvalidInputError(f"{path}: cannot read a scene-detector file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise InvalidInputError(f"{path}: not a scene-detector file (no format {FILE_FORMAT!r})")
    det = SceneDetector(**payload["config"])
    det.load_state_dict(payload["state_dict"])
    det.extra = dict(payload.get("extra") or {})
    return det.to(map_location).eval()



def train_detector_on_scenes(*, scenes: int = 3000, test_scenes: int = 500, size: int = 64, epochs: int = 20,
                             seed: int = 0, private_classes: Sequence[str] = ("face",),
                             device: torch.device | str = "cpu") -> tuple[SceneDetector, Result]:
    """Make training and held-out scenes, train a :class:`SceneDetector`, and measure it on the held-out ones.

    Args:
        scenes, test_scenes: training and held-out scene counts (``>= 1``); held-out scenes use disjoint source
            items (:func:`privis.detectors.scenes.make_scenes` with ``split="test"``).
        size: scene side in pixels (``>= 32``, divisible by 4).
        epochs: training passes; seed: scenes, order and initialisation (held-out scenes use ``seed + 1``).
        private_classes: recorded with the detector for object hiding (names of scene classes).
        device: where to train.

    Returns:
        ``(detector, result)``: ``result.summary`` holds ``map50`` (mAP at IoU 0.5, detections scored down to
        0.05 as in VOC), ``ap50_<class>`` per class, ``object_detection_rate`` (objects found at the detector's
        own ``score_threshold``), ``train_seconds`` and ``detect_images_per_second``.

    Raises:
        InvalidInputError: bad counts or sizes.
    """
    from privis.detectors.scenes import make_scenes
    from privis.metrics.detection import mean_average_precision, object_detection_rate

    if check_int(size, "size", minimum=32) % STRIDE:
        raise InvalidInputError(f"size must be divisible by {STRIDE}, got {size}")
    train = make_scenes(scenes, size=size, seed=seed, private_classes=private_classes)
    held = make_scenes(test_scenes, size=size, seed=seed + 1, split="test", private_classes=private_classes)
    started = time.perf_counter()
    det = train_scene_detector(train, epochs=epochs, seed=seed, device=device)
    train_seconds = time.perf_counter() - started
    images = held.images.to(device)
    threshold = det.score_threshold
    det.score_threshold = MAP_SCORE_THRESHOLD
    started = time.perf_counter()
    ranked = det.detect(images)
    detect_seconds = time.perf_counter() - started
    det.score_threshold = threshold
    found = det.detect(images)
    mean_ap, per_class = mean_average_precision(ranked, held.objects, range(1, len(held.class_names)))
    summary = {"map50": mean_ap, **{f"ap50_{held.class_names[c]}": ap for c, ap in per_class.items()},
               "object_detection_rate": object_detection_rate(found, held.objects),
               "train_seconds": train_seconds, "detect_images_per_second": images.shape[0] / detect_seconds}
    config = {"scenes": scenes, "test_scenes": test_scenes, "size": size, "epochs": epochs, "seed": seed,
              "class_names": list(held.class_names), "private_classes": [held.class_names[c] for c in
                                                                          held.private_classes],
              "detector": det.config, "device": str(device), "torch_threads": torch.get_num_threads()}
    headline = (f"A {det.name} trained on {scenes} built-in scenes ({size}x{size}) for {epochs} epochs, "
                f"measured on {test_scenes} held-out scenes of unseen objects")
    return det, Result("train-detector", summary=summary, config=config, notes=list(held.notes),
                       seconds=train_seconds + detect_seconds, headline=headline)
