"""A white-box toy detector for the tests of detector-based methods: bright cells are faces, dark cells cups.

The image is cut into ``cell x cell`` regions; a region's class logits are ``(0, k (m - 0.6), k (0.3 - m))`` for
background, face and cup, ``m`` the region's mean intensity, so a face hides once its cell's mean drops below
0.6 and a cup stays while the mean stays below 0.3. Differentiable in the images; no training, no randomness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.detectors import Detections, Detector, RegionLogits


class ToyDetector(Detector):
    name = "toy"
    class_names = ("background", "face", "cup")
    white_box = True
    score_threshold = 0.5

    def __init__(self, cell: int = 4, gain: float = 40.0) -> None:
        super().__init__()
        self.cell = cell
        self.gain = nn.Parameter(torch.tensor(float(gain)))  # a parameter, so tests see it left untouched

    def _regions(self, images: Tensor) -> RegionLogits:
        n, _, h, w = images.shape
        m = F.avg_pool2d(images.mean(dim=1, keepdim=True), self.cell).flatten(1)  # (N, R)
        logits = torch.stack([torch.zeros_like(m), self.gain * (m - 0.6), self.gain * (0.3 - m)], dim=-1)
        ys, xs = torch.meshgrid(torch.arange(h // self.cell), torch.arange(w // self.cell), indexing="ij")
        boxes = torch.stack([xs, ys, xs + 1, ys + 1], dim=-1).reshape(-1, 4).float() * self.cell
        return RegionLogits(logits, boxes.to(images.device).expand(n, -1, -1))

    def _detect(self, images: Tensor) -> list[Detections]:
        out = self._regions(images)
        probs = out.logits.softmax(dim=-1)
        scores, labels = probs[..., 1:].max(dim=-1)
        labels = labels + 1
        keep = scores >= self.score_threshold
        return [Detections(out.boxes[i][keep[i]], labels[i][keep[i]], scores[i][keep[i]]) for i in range(len(images))]


def toy_scenes(n: int = 4, size: int = 16) -> tuple[Tensor, list[Detections]]:
    """``n`` grey ``size x size`` scenes on mid grey (0.45): image ``i`` has a face (0.9) in its first cell and,
    for even ``i``, a cup (0.1) in its last cell; the last image has no face. Returns images and true objects."""
    images = torch.full((n, 1, size, size), 0.45)
    truth = []
    for i in range(n):
        boxes, labels = [], []
        if i < n - 1:
            images[i, :, :4, :4] = 0.9
            boxes.append([0.0, 0, 4, 4])
            labels.append(1)
        if i % 2 == 0:
            images[i, :, -4:, -4:] = 0.1
            boxes.append([size - 4.0, size - 4, size, size])
            labels.append(2)
        truth.append(Detections(torch.tensor(boxes).reshape(-1, 4), torch.tensor(labels, dtype=torch.long),
                                torch.ones(len(labels))))
    return images, truth
