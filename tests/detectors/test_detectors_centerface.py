"""CenterFace through ONNX Runtime with the shipped ONNX file: real faces, sides not multiples of 32, thresholds."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from privis.data import astronaut, lfw_subset
from privis.detectors import REGISTRY, box_iou
from privis.errors import InvalidInputError, PrivisError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def centerface():
    return REGISTRY.create("centerface")


def test_finds_the_astronauts_face_and_maps_boxes_back_from_the_padded_size(centerface, device) -> None:
    photo = astronaut().images.to(device)
    found = centerface.detect(photo)[0]
    assert len(found) == 1 and 0.5 <= found.scores.item() <= 1 and found.boxes.device.type == device.type
    assert box_iou(found.boxes.cpu(), torch.tensor([[179.0, 83, 267, 171]])).item() > 0.5  # dlib HOG's box
    small = F.interpolate(photo, size=(300, 300), mode="area")  # run at 320x320, boxes in 300x300 pixels
    scaled = centerface.detect(small)[0]
    assert len(scaled) == 1 and box_iou(scaled.boxes.cpu(), found.boxes.cpu() * 300 / 512).item() > 0.8
    assert [len(d) for d in centerface.detect(torch.full((2, 3, 100, 100), 0.5, device=device))] == [0, 0]


def test_finds_upscaled_lfw_faces_not_non_faces_and_obeys_its_threshold(centerface) -> None:
    data = lfw_subset()
    idx = torch.cat([torch.arange(0, 100, 10), torch.arange(100, 200, 10)])  # 10 faces, 10 non-faces
    images = F.pad(F.interpolate(data.images[idx], size=(100, 100), mode="bilinear", align_corners=False)
                   .clamp(0, 1), (30, 30, 30, 30), value=0.5)
    found = centerface.detect(images)
    hits = torch.tensor([len(d) > 0 for d in found])
    assert hits[:10].float().mean() >= 0.9 and hits[10:].float().mean() <= 0.2
    best = max(float(d.scores.max()) for d in found if len(d))
    strict = REGISTRY.create("centerface", score_threshold=min(1.0, best + 1e-3))
    assert sum(len(d) for d in strict.detect(images)) == 0
    with pytest.raises(InvalidInputError, match="score_threshold"):
        REGISTRY.create("centerface", score_threshold=-0.1)
    with pytest.raises(PrivisError, match="black-box"):
        centerface.regions(images)
