"""MTCNN face detection in torch, white-box: the P-, R- and O-Net cascade with the published weights.

K. Zhang, Z. Zhang, Z. Li and Y. Qiao, "Joint Face Detection and Alignment Using Multitask Cascaded
Convolutional Networks", IEEE Signal Processing Letters, 2016 (arXiv:1604.02878). The networks are privis' own
module definitions whose parameter names match the state dicts shipped in the facenet-pytorch wheel
(:func:`privis.models.pretrained.mtcnn_weight_file`, weights converted from the authors' Caffe models by
T. Esler); facenet-pytorch itself is never imported.

Detection (:meth:`MTCNN.detect`) is the standard cascade: an image pyramid with scale factor 0.709 from
``12 / min_face_size`` down to a 12-pixel side; P-Net on every level (a fully convolutional 12x12 window
classifier with stride 2), windows whose face probability reaches ``thresholds[0]`` kept, NMS at IoU 0.5 per
level and 0.7 over the levels, box regression, boxes made square; R-Net on 24x24 crops (``thresholds[1]``, NMS
0.7, regression, square); O-Net on 48x48 crops (``thresholds[2]``, regression, NMS 0.7 on intersection over
the smaller box). Pixels are scaled as the original, ``(255 x - 127.5) / 128``; crops are clipped to the image
and resized with area interpolation.

White-box regions (:meth:`MTCNN.regions`): every P-Net window of every pyramid level, ``R = sum_l h_l w_l``
windows for an ``H x W`` image, with its two logits (background at index 0, face at 1) and the window's box in
the image. A face survives the cascade only if some P-Net window over it passes ``thresholds[0]``, so pushing
every window of a face to background (Eq. 3.8 with the face as private) hides it from the whole cascade; R- and
O-Net are not part of the regions (their crops depend on the P-Net output, so their number would change from
one step of an attack to the next).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from privis import references
from privis.detectors import register
from privis.detectors.base import Detections, Detector, RegionLogits, nms
from privis.errors import InvalidInputError

__all__ = ["MTCNN", "ONet", "PNet", "RNet"]


class PNet(nn.Module):
    """Proposal network: 12x12 windows, stride 2; ``forward`` gives ``(box regression (N, 4, h, w), logits
    (N, 2, h, w))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x)


class RNet(nn.Module):
    """Refinement network on 24x24 crops: ``(box regression (K, 4), logits (K, 2))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))  # the Caffe weights' (W, H, C) order
        return self.dense5_2(x), self.dense5_1(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: ``(box regression (K, 4), logits (K, 2))`` (landmarks are not used)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_1(x)


def _regress(boxes: Tensor, reg: Tensor) -> Tensor:
    """Apply MTCNN's box regression (offsets in units of the box's width and height)."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * size


def _square(boxes: Tensor) -> Tensor:
    """Each box grown to a square of its longer side around its centre."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(dim=1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], dim=1)


@register
class MTCNN(Detector):
    """MTCNN's face detector (white-box through its P-Net windows); classes ``("background", "face")``.

    Args:
        min_face_size: smallest face side searched, in pixels (``>= 12``).
        thresholds: face-probability thresholds of P-, R- and O-Net, each in ``[0, 1]``; the last is the
            detector's ``score_threshold`` (scores are O-Net's face probabilities).
        factor: pyramid scale factor in ``(0, 1)``.

    Raises:
        InvalidInputError: a setting out of range.
        MissingWeightsError: the facenet-pytorch wheel (weights only) is not installed.

    Examples:
        >>> from privis.data import astronaut
        >>> found = MTCNN().detect(astronaut().images)[0]
        >>> len(found), bool(found.scores[0] > 0.99)
        (1, True)
    """

    name = "mtcnn"
    citation = references.MTCNN
    class_names = ("background", "face")
    white_box = True
    channels = 3

    def __init__(self, min_face_size: float = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709) -> None:
        super().__init__()
        from privis.models.pretrained import mtcnn_weight_file

        if not min_face_size >= 12:
            raise InvalidInputError(f"min_face_size must be >= 12 pixels, got {min_face_size!r}")
        if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
            raise InvalidInputError(f"thresholds must be three numbers in [0, 1], got {thresholds!r}")
        if not 0 < factor < 1:
            raise InvalidInputError(f"factor must be in (0, 1), got {factor!r}")
        self.min_face_size, self.factor = float(min_face_size), float(factor)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.score_threshold = self.thresholds[2]
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for stage, net in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            net.load_state_dict(torch.load(mtcnn_weight_file(stage), map_location="cpu", weights_only=True))
        self.eval().requires_grad_(False)

    def scales(self, height: int, width: int) -> list[float]:
        """The pyramid's scales for an ``height x width`` image (largest first)."""
        m = 12.0 / self.min_face_size
        side = min(height, width) * m
        out: list[float] = []
        while side >= 12:
            out.append(m * self.factor ** len(out))
            side *= self.factor
        return out

    def _pyramid(self, images: Tensor) -> list[tuple[float, Tensor, Tensor]]:
        """P-Net on every level: ``(scale, regression (N, 4, h, w), logits (N, 2, h, w))``."""
        h, w = images.shape[-2:]
        x = (images * 255 - 127.5) * 0.0078125
        out: list[tuple[float, Tensor, Tensor]] = []
        for scale in self.scales(h, w):
            level = F.interpolate(x, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, logits = self.pnet(level)
            out.append((scale, reg, logits))
        return out

    @staticmethod
    def _windows(scale: float, rows: int, cols: int, device: torch.device) -> Tensor:
        """Pixel boxes ``(rows * cols, 4)`` of the 12x12 P-Net windows of a level (row-major)."""
        ys, xs = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
        corner = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() * 2
        return torch.cat([((corner + 1) / scale).floor(), ((corner + 12) / scale).floor()], dim=1)

    def _regions(self, images: Tensor) -> RegionLogits:
        logits, boxes = [], []
        for scale, _, level_logits in self._pyramid(images):
            rows, cols = level_logits.shape[-2:]
            logits.append(level_logits.flatten(2).transpose(1, 2))
            boxes.append(self._windows(scale, rows, cols, images.device))
        if not logits:
            raise InvalidInputError(f"images of {tuple(images.shape[-2:])} pixels are smaller than MTCNN's "
                                    f"12-pixel window at min_face_size {self.min_face_size:g}")
        all_boxes = torch.cat(boxes)
        return RegionLogits(torch.cat(logits, dim=1), all_boxes.expand(images.shape[0], -1, -1))

    def _stage(self, net: nn.Module, x: Tensor, boxes: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """Run R- or O-Net on the crops of ``boxes`` (clipped to the image) of one normalised image
        ``(3, H, W)``: ``(regression (K, 4), face probability (K,))``."""
        h, w = x.shape[-2:]
        crops = []
        for x1, y1, x2, y2 in boxes.tolist():
            left, top = max(int(x1), 1), max(int(y1), 1)
            right, bottom = min(int(x2), w), min(int(y2), h)
            crop = x[:, top - 1:bottom, left - 1:right] if right >= left and bottom >= top else x[:, :1, :1]
            crops.append(F.interpolate(crop[None], size=(size, size), mode="area"))
        reg, logits = net(torch.cat(crops))
        return reg, logits.softmax(dim=1)[:, 1]

    def _detect(self, images: Tensor) -> list[Detections]:
        n, h, w = images.shape[0], *images.shape[-2:]
        candidates: list[list[Tensor]] = [[] for _ in range(n)]
        for scale, reg, logits in self._pyramid(images):
            prob = logits.softmax(dim=1)[:, 1]
            rows, cols = prob.shape[-2:]
            windows = self._windows(scale, rows, cols, images.device)
            for i in range(n):
                p, r = prob[i].flatten(), reg[i].flatten(1).T
                keep = p >= self.thresholds[0]
                if keep.any():
                    b, s, r = windows[keep], p[keep], r[keep]
                    k = nms(b, s, 0.5)
                    candidates[i].append(torch.cat([b[k], s[k, None], r[k]], dim=1))
        x = (images * 255 - 127.5) * 0.0078125
        found = []
        for i in range(n):
            if not candidates[i]:
                found.append(Detections.empty(images.device))
                continue
            c = torch.cat(candidates[i])
            c = c[nms(c[:, :4], c[:, 4], 0.7)]
            boxes = _square(_regress(c[:, :4], c[:, 5:9]))
            for net, size, threshold in ((self.rnet, 24, self.thresholds[1]), (self.onet, 48, self.thresholds[2])):
                reg, prob = self._stage(net, x[i], boxes.floor(), size)
                keep = prob >= threshold
                boxes, prob, reg = boxes[keep], prob[keep], reg[keep]
                if boxes.shape[0] == 0:
                    break
                if net is self.rnet:
                    k = nms(boxes, prob, 0.7)
                    boxes = _square(_regress(boxes[k], reg[k]))
                else:
                    boxes = _regress(boxes, reg)
                    k = nms(boxes, prob, 0.7, overlap="min")
                    boxes, prob = boxes[k], prob[k]
            if boxes.shape[0] == 0:
                found.append(Detections.empty(images.device))
                continue
            limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
            boxes = boxes.clamp(min=torch.zeros_like(limit), max=limit)
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            found.append(Detections(boxes[valid], torch.ones(int(valid.sum()), dtype=torch.long,
                                                             device=boxes.device), prob[valid]))
        return found

