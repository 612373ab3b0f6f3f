"""The Detector contract: detections shape checks, IoU, Eq. 3.8 targets and loss, black-box refusal."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from privis.detectors import BACKGROUND, Detections, Detector, RegionLogits, box_iou, region_targets
from privis.errors import InvalidInputError, PrivisError


class GridDetector(Detector):
    """A 2x2-cell detector over 8x8 images: a 1x1 conv gives 3-class logits per 4x4 cell."""

    name = "grid"
    class_names = ("background", "face", "cup")
    white_box = True
    channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(1, 3, kernel_size=4, stride=4)

    def _regions(self, images: Tensor) -> RegionLogits:
        logits = self.head(images).flatten(2).transpose(1, 2)  # (N, 4, 3)
        cells = torch.tensor([[0, 0, 4, 4], [4, 0, 8, 4], [0, 4, 4, 8], [4, 4, 8, 8]], dtype=torch.float32)
        return RegionLogits(logits, cells.expand(images.shape[0], -1, -1))


def test_box_iou_matches_hand_computed_values() -> None:
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [5, 5, 5, 5]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 2)
    assert iou[0, 0].item() == pytest.approx(1 / 7)
    assert iou[1, 0].item() == 0.0 and iou[0, 1].item() == 0.0  # disjoint, and an empty box


def test_region_targets_hide_private_and_keep_the_rest() -> None:
    boxes = torch.tensor([[0.0, 0, 4, 4], [4, 0, 8, 4], [0, 4, 4, 8], [4, 4, 8, 8]]).expand(2, -1, -1)
    objects = [Detections(torch.tensor([[0.0, 0, 4, 4], [4, 4, 8, 8]]), torch.tensor([1, 2]), torch.tensor([0.9, 0.8])),
               Detections.empty()]
    targets = region_targets(boxes, objects, private_classes=[1])
    assert targets.tolist() == [[BACKGROUND, 0, 0, 2], [0, 0, 0, 0]]
    with pytest.raises(InvalidInputError, match="2 images"):
        region_targets(boxes, objects[:1], private_classes=[1])


def test_classification_loss_is_eq_3_8_mean_cross_entropy_and_differentiable() -> None:
    torch.manual_seed(0)
    det = GridDetector()
    images = torch.rand(2, 1, 8, 8, requires_grad=True)
    targets = torch.tensor([[0, 1, 2, 0], [1, 1, 0, 2]])
    loss = det.classification_loss(images, targets)
    logits = det.regions(images).logits
    expected = torch.stack([nn.functional.cross_entropy(logits[i], targets[i]) for i in range(2)])
    assert torch.allclose(loss, expected)
    loss.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with pytest.raises(InvalidInputError, match=r"\(N, R\) = \(2, 4\)"):
        det.classification_loss(images, targets[:, :3])
    with pytest.raises(InvalidInputError, match=r"\[0, 3\)"):
        det.classification_loss(images, targets + 5)


def test_black_box_detector_refuses_gradients_and_grey_input_is_expanded_for_colour_models() -> None:
    class Colour(Detector):
        name = "colour"
        channels = 3

        def _detect(self, images: Tensor) -> list[Detections]:
            assert images.shape[1] == 3
            return [Detections.empty() for _ in images]

    det = Colour()
    assert [len(d) for d in det.detect(torch.rand(2, 1, 8, 8))] == [0, 0]
    with pytest.raises(PrivisError, match="black-box"):
        det.regions(torch.rand(1, 3, 8, 8))
    with pytest.raises(InvalidInputError):
        Detections(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long), torch.zeros(2))
