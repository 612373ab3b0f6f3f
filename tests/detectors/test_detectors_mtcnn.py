"""MTCNN in torch with the shipped weights: finds real faces, none on blank images, white-box P-Net regions."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from privis.data import astronaut, lfw_subset
from privis.detectors import BACKGROUND, REGISTRY, box_iou, region_targets
from privis.errors import InvalidInputError


@pytest.fixture(scope="module")
def mtcnn():
    return REGISTRY.create("mtcnn")


def test_finds_the_astronauts_face_where_dlib_does_and_nothing_on_a_blank_image(mtcnn, device) -> None:
    found = mtcnn.to(device).detect(astronaut().images.to(device))[0]
    assert len(found) == 1 and found.scores.item() > 0.99 and found.boxes.device.type == device.type
    dlib_hog_box = torch.tensor([[179.0, 83, 267, 171]])  # DlibHOG's box (tests/detectors/test_detectors_dlib...)
    assert box_iou(found.boxes.cpu(), dlib_hog_box).item() > 0.6
    assert [len(d) for d in mtcnn.detect(torch.full((2, 3, 96, 96), 0.5, device=device))] == [0, 0]
    mtcnn.cpu()


def test_finds_upscaled_lfw_faces_but_rarely_non_faces(mtcnn) -> None:
    data = lfw_subset()
    idx = torch.cat([torch.arange(0, 100, 10), torch.arange(100, 200, 10)])  # 10 faces, 10 non-faces
    images = F.pad(F.interpolate(data.images[idx], size=(60, 60), mode="bilinear", align_corners=False)
                   .clamp(0, 1), (20, 20, 20, 20), value=0.5)  # grey crops: expanded to RGB by the detector
    hits = torch.tensor([len(d) > 0 for d in mtcnn.detect(images)])
    assert hits[:10].float().mean() >= 0.9 and hits[10:].float().mean() <= 0.3


def test_regions_are_every_pnet_window_and_pushing_them_to_background_hides_the_face(mtcnn) -> None:
    image = F.interpolate(astronaut().images, scale_factor=0.5, mode="area")[:, :, :128, 32:160]  # face ~45 px
    out = mtcnn.regions(image)
    expected = sum(((int(128 * s + 1) - 1) // 2 - 4) ** 2 for s in mtcnn.scales(128, 128))
    assert out.logits.shape == (1, expected, 2) and out.boxes.shape == (1, expected, 4)
    found = mtcnn.detect(image)
    assert len(found[0]) == 1
    targets = region_targets(out.boxes, found, private_classes=[1])
    assert bool((targets == BACKGROUND).all())
    adv = image.clone()
    for _ in range(12):  # targeted iterative FGSM (Eq. 3.9-3.10) on the P-Net windows, 2/255 per step
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(mtcnn.classification_loss(adv, targets).sum(), adv)
        adv = (adv.detach() - grad.sign() * 2 / 255).clamp(0, 1)
    assert len(mtcnn.detect(adv)[0]) == 0
    assert float((adv - image).abs().max()) <= 24 / 255 + 1e-6
    with pytest.raises(InvalidInputError, match="smaller than MTCNN"):
        mtcnn.regions(torch.rand(1, 3, 16, 16))
    with pytest.raises(InvalidInputError, match="thresholds"):
        REGISTRY.create("mtcnn", thresholds=(0.6, 0.7))
