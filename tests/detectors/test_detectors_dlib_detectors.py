"""dlib's HOG and MMOD face detectors behind the Detector contract, on real images with the shipped weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from privis.data import astronaut
from privis.detectors import REGISTRY, box_iou
from privis.errors import InvalidInputError, PrivisError

dlib = pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return astronaut().images  # (1, 3, 512, 512), one face near (170..265, 70..170)


def test_hog_finds_the_one_face_and_its_score_is_the_sigmoid_of_dlibs_margin(photo, device) -> None:
    det = REGISTRY.create("dlib-hog")
    found = det.detect(photo.to(device))[0]
    assert len(found) == 1 and found.labels.tolist() == [1] and found.boxes.device.type == device.type
    rects, margins, _ = dlib.get_frontal_face_detector().run(np.asarray(astronaut().images[0].permute(1, 2, 0)
                                                                      .mul(255).round().byte()).copy(), 0, 0.0)
    assert found.scores.item() == pytest.approx(1 / (1 + math.exp(-margins[0])), abs=1e-6)
    r = rects[0]
    assert found.boxes.cpu()[0].tolist() == [r.left(), r.top(), r.right() + 1, r.bottom() + 1]
    assert [len(d) for d in det.detect(torch.zeros(2, 3, 96, 96, device=device))] == [0, 0]


def test_hog_threshold_and_upsampling_change_what_is_found(photo) -> None:
    loose = REGISTRY.create("dlib-hog", score_threshold=0.2).detect(photo.mean(1, keepdim=True))[0]  # grey input
    assert len(loose) > 1 and bool((loose.scores >= 0.2).all()) and loose.scores.max() > 0.5
    small = torch.nn.functional.interpolate(photo, scale_factor=0.5, mode="area")  # face ~45 px: below HOG's 80
    assert len(REGISTRY.create("dlib-hog").detect(small)[0]) == 0
    assert len(REGISTRY.create("dlib-hog", upsample=1).detect(small)[0]) == 1
    with pytest.raises(InvalidInputError, match="upsample"):
        REGISTRY.create("dlib-hog", upsample=-1)
    with pytest.raises(InvalidInputError, match="score_threshold"):
        REGISTRY.create("dlib-hog", score_threshold=1.5)


def test_mmod_finds_the_same_face_as_hog_and_nothing_on_a_blank_image(photo) -> None:
    mmod = REGISTRY.create("dlib-mmod")
    assert not mmod.white_box and mmod.class_names == ("background", "face")
    found = mmod.detect(photo)[0]
    hog = REGISTRY.create("dlib-hog").detect(photo)[0]
    assert len(found) == 1 and 0.5 <= found.scores.item() <= 1
    assert box_iou(found.boxes, hog.boxes).item() > 0.6
    assert len(mmod.detect(torch.full((1, 1, 80, 80), 0.5))[0]) == 0  # grey input is expanded to RGB
    with pytest.raises(PrivisError, match="black-box"):
        mmod.regions(photo)
