"""dlib's face landmarks and privis' differentiable chip extractor against dlib.get_face_chip."""

from __future__ import annotations

import math

import pytest
import torch

from privis.errors import InvalidInputError
from privis.identity.alignment import _MEAN_FACE_5, chip_transform, extract_chips

dlib = pytest.importorskip("dlib")
pytestmark = pytest.mark.usefixtures("one_thread")

from privis.identity.alignment import dlib_face_chips, face_landmarks, sample_faces  # noqa: E402


@pytest.fixture(scope="module")
def faces() -> list[torch.Tensor]:
    return sample_faces(4)


def test_the_mean_face_maps_to_itself_with_dlibs_half_pixel_shift():
    # landmarks exactly at dlib's padded mean face in a 150 chip: identity map, up to dlib's centred_drect,
    # which puts the chip's corners half a pixel inside (the chip spans size - 1 pixels between centres)
    pts = torch.from_numpy((0.25 + _MEAN_FACE_5) / 1.5 * 150)[None]
    m = chip_transform(pts, 150, 0.25)[0]
    assert torch.allclose(m, torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], dtype=torch.float64), atol=1e-9)
    # rotating and scaling the landmarks about a point rotates and scales the map the same way (dlib's
    # rectangle is scale * size - 1 wide between the centres of the chip's size - 1 steps)
    angle, scale, centre = math.pi / 6, 2.0, torch.tensor([100.0, 80.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    moved = (scale * (pts[0] - centre) @ rot.T + centre)[None]
    m2 = chip_transform(moved, 150, 0.25)[0]
    assert torch.allclose(m2[:, :2], (scale * 150 - 1) / 149 * rot, atol=1e-9)
    # and the chip centre lands where the similarity sends it
    centre_chip = torch.tensor([74.5, 74.5], dtype=torch.float64)
    assert torch.allclose(m2[:, :2] @ centre_chip + m2[:, 2], scale * (torch.tensor([75.0, 75.0],
                          dtype=torch.float64) - centre) @ rot.T + centre, atol=1e-9)


def test_chips_match_dlib_get_face_chip_within_one_grey_level(faces):
    for image in faces:
        points = face_landmarks(image).points
        mine = (extract_chips(image, points) * 255).round()
        ref = dlib_face_chips(image, points) * 255
        diff = (mine.expand_as(ref) - ref).abs()
        # same geometry; dlib truncates its bilinear values to 8 bits where privis keeps them (mean ~0.5)
        assert diff.max() <= 1.0 and diff.mean() < 0.6


def test_gradients_reach_the_image_around_the_face(faces, device):
    image = faces[0].to(device).requires_grad_(True)  # the astronaut, face near (220, 120)
    points = face_landmarks(image.detach()).points
    extract_chips(image, points).sum().backward()
    grad = image.grad.abs().sum(dim=(0, 1))
    ys, xs = grad.nonzero(as_tuple=True)
    assert grad.sum() > 0 and 100 < xs.float().mean() < 350 and 30 < ys.float().mean() < 250
    assert grad[400:, :].sum() == 0  # nothing below the face box reaches the chip


def test_landmarks_on_given_boxes_and_errors(faces):
    image = faces[0]
    found = face_landmarks(image)
    assert found.found.tolist() == [True] and found.points.shape == (1, 5, 2)
    on_box = face_landmarks(image, found.boxes, points=68)
    assert on_box.points.shape == (1, 68, 2) and on_box.found.all()
    box = found.boxes[0]
    assert ((on_box.points[0] >= box[:2] - 20) & (on_box.points[0] <= box[2:] + 20)).all()
    blank = face_landmarks(torch.full((1, 3, 120, 120), 0.5))
    assert not blank.found.any() and torch.isnan(blank.points).all()
    with pytest.raises(InvalidInputError, match="no face was found"):
        extract_chips(torch.full((1, 3, 120, 120), 0.5), blank.points)
    with pytest.raises(InvalidInputError, match="points must be 5 or 68"):
        face_landmarks(image, points=7)
    with pytest.raises(InvalidInputError, match="boxes must be"):
        face_landmarks(image, torch.tensor([[10.0, 10.0, 5.0, 50.0]]))
