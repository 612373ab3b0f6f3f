"""The built-in scene detector: NMS, cell targets, white-box regions, a tiny training run, save and load."""

from __future__ import annotations

import pytest
import torch

from privis.detectors import REGISTRY, Detections, region_targets
from privis.detectors.base import nms
from privis.detectors.scene_detector import (
    STRIDE,
    SceneDetector,
    _targets,
    load_scene_detector,
    save_scene_detector,
    train_scene_detector,
)
from privis.detectors.scenes import make_scenes
from privis.errors import InvalidInputError
from privis.metrics.detection import mean_average_precision


@pytest.fixture(scope="module")
def tiny() -> tuple:
    """A width-8 detector overfitted on 48 scenes of 32x32 (a few seconds)."""
    scenes = make_scenes(48, size=32, seed=0, max_objects=2)
    return train_scene_detector(scenes, epochs=40, batch_size=16, lr=5e-3, width=8, seed=0), scenes


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 10, 10], [0, 0, 10, 9], [30, 30, 40, 40]])
    scores = torch.tensor([0.6, 0.9, 0.7, 0.5])
    assert nms(boxes, scores).tolist() == [1, 3]
    assert nms(boxes, scores, labels=torch.tensor([1, 1, 2, 1])).tolist() == [1, 2, 3]
    assert nms(boxes, scores, iou_threshold=0.95).tolist() == [1, 2, 0, 3]
    inner = torch.tensor([[0.0, 0, 10, 10], [2, 2, 6, 6]])  # IoU 0.16, but the small box lies inside the big one
    assert nms(inner, torch.tensor([0.9, 0.8]), 0.7).tolist() == [0, 1]
    assert nms(inner, torch.tensor([0.9, 0.8]), 0.7, overlap="min").tolist() == [0]


def test_cell_targets_mark_the_middle_of_each_box_and_ignore_its_rim() -> None:
    centres = (torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="xy"), -1)
               .reshape(-1, 2).float() + 0.5) * STRIDE  # (x, y) of a 32x32 image's cells
    obj = Detections(torch.tensor([[0.0, 0, 16, 16]]), torch.tensor([3]), torch.ones(1))
    classes, positive, sides = _targets([obj, Detections.empty()], centres)
    grid = classes[0].reshape(8, 8)
    assert grid[1:3, 1:3].eq(3).all() and int(positive[0].sum()) == 4  # centres 6 and 10 px: within 16/4 of 8
    assert grid[0, :4].eq(-1).all() and grid[:4, 0].eq(-1).all() and grid[4:, :].eq(0).all()
    assert classes[1].eq(0).all()
    cell = 1 * 8 + 1  # centre (6, 6): 6 px to the left/top side, 10 px to the right/bottom
    assert torch.allclose(sides[0, cell], torch.tensor([6.0, 6, 10, 10]).div(STRIDE).log())


def test_regions_are_white_box_per_cell_logits_with_their_boxes(tiny, device) -> None:
    det = tiny[0].to(device)
    images = tiny[1].images[:2].to(device).requires_grad_(True)
    out = det.regions(images)
    m = len(det.class_names)
    assert out.logits.shape == (2, (32 // STRIDE) ** 2, m) and out.boxes.shape == (2, 64, 4)
    assert not out.boxes.requires_grad and bool((out.boxes[..., 2:] >= out.boxes[..., :2]).all())
    found = det.detect(images)
    targets = region_targets(out.boxes, found, private_classes=[1])
    loss = det.classification_loss(images, targets)
    loss.sum().backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0
    with pytest.raises(InvalidInputError, match="divisible by 4"):
        det.detect(torch.rand(1, 3, 30, 30, device=device))
    assert REGISTRY.get("scene-detector") is SceneDetector


def test_tiny_training_run_learns_its_scenes_and_survives_save_and_load(tiny, tmp_path) -> None:
    det, scenes = tiny
    untrained = SceneDetector(scenes.class_names, width=8)
    labels = range(1, len(scenes.class_names))
    det.score_threshold = untrained.score_threshold = 0.05
    trained_map = mean_average_precision(det.detect(scenes.images), scenes.objects, labels)[0]
    assert trained_map > 0.5
    assert mean_average_precision(untrained.detect(scenes.images), scenes.objects, labels)[0] < 0.1
    path = save_scene_detector(det, tmp_path / "det.pt", extra={"map50": trained_map})
    again = load_scene_detector(path)
    assert again.config == det.config and not again.training
    with torch.no_grad():
        assert torch.equal(again(scenes.images[:4])[0], det(scenes.images[:4])[0])
    (tmp_path / "bad.pt").write_bytes(b"not a detector")
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_scene_detector(tmp_path / "bad.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InvalidInputError, match="not a scene-detector file"):
        load_scene_detector(tmp_path / "other.pt")
