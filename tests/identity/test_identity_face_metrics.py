"""Face metrics: SDR against a detector with a known answer and dlib's HOG on a real face, region distances in
closed form, and dlib's 68 landmarks unmoved on an unchanged face and moved with a shifted one."""

from __future__ import annotations

import math

import pytest
import torch

from privis.data import astronaut
from privis.detectors import Detections, Detector
from privis.errors import InvalidInputError
from privis.identity.face_metrics import (
    LANDMARK_REGIONS,
    detected,
    landmark_distances,
    region_distances,
    successful_detection_rate,
)


class BrightDetector(Detector):
    """Finds one object in an image whose mean is above 0.5, none otherwise."""

    class_names = ("background", "face")

    def _detect(self, images):
        out = []
        for image in images:
            if float(image.mean()) > 0.5:
                out.append(Detections(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([1]), torch.tensor([1.0])))
            else:
                out.append(Detections.empty())
        return out


def test_sdr_is_the_share_of_images_with_a_detection_whatever_the_batch():
    images = torch.cat([torch.full((3, 1, 4, 4), 0.9), torch.full((5, 1, 4, 4), 0.1)])
    assert detected(BrightDetector(), images, batch_size=3).tolist() == [True] * 3 + [False] * 5
    assert successful_detection_rate(BrightDetector(), images, batch_size=2) == pytest.approx(3 / 8)
    with pytest.raises(InvalidInputError, match="batch_size"):
        detected(BrightDetector(), images, batch_size=0)


def test_region_distances_in_closed_form():
    a = torch.rand(2, 68, 2) * 100
    b = a + torch.tensor([3.0, 4.0])  # every point moved by 5 px
    b[1, list(LANDMARK_REGIONS["mouth"])] = a[1, list(LANDMARK_REGIONS["mouth"])]
    d = region_distances(a, b)
    for region in ("chin", "nose", "eyes"):
        torch.testing.assert_close(d[region], torch.tensor([5.0, 5.0]))
    torch.testing.assert_close(d["mouth"], torch.tensor([5.0, 0.0]))
    with pytest.raises(InvalidInputError, match=r"\(N, 68, 2\)"):
        region_distances(torch.rand(2, 5, 2), torch.rand(2, 5, 2))


@pytest.fixture(scope="module")
def face():
    pytest.importorskip("dlib")
    return astronaut().images


def test_hog_finds_the_astronaut_and_not_a_blank_image(face):
    from privis.detectors import REGISTRY

    hog = REGISTRY.create("dlib-hog")
    assert successful_detection_rate(hog, face) == 1.0
    assert successful_detection_rate(hog, torch.full((1, 3, 128, 128), 0.5)) == 0.0


def test_landmarks_stay_on_an_unchanged_face_and_follow_a_shifted_one(face):
    same = landmark_distances(face, face)
    assert same["faces"] == 1 and all(same[r] == 0 for r in LANDMARK_REGIONS)
    shifted = torch.roll(face, shifts=(6, 0), dims=(2, 3))  # the face moves 6 px down inside the same box
    moved = landmark_distances(face, shifted)
    assert all(2.0 < moved[r] < 10.0 for r in LANDMARK_REGIONS), moved
    blank = landmark_distances(torch.full((1, 3, 64, 64), 0.5), torch.full((1, 3, 64, 64), 0.5))
    assert blank["faces"] == 0 and math.isnan(blank["chin"])
