"""ObjectHiding (Algorithm 5): targeted FGSM hides private objects, keeps the rest, stops early, reports."""

from __future__ import annotations

import pytest
import torch

from privis.detectors import Detections, Detector
from privis.errors import InvalidInputError
from privis.methods import create
from privis.methods.object_hiding import ObjectHiding
from privis.metrics.hiding import hiding_ratios
from toy_detector import ToyDetector, toy_scenes


def test_faces_are_hidden_cups_kept_and_each_image_stops_at_the_closed_form_step(device):
    images, _ = toy_scenes(4)
    images = images.to(device)
    det = ToyDetector().to(device)
    hider = ObjectHiding(detector=det, eps=0.04, iterations=20).fit(images)
    out = hider.transform(images)
    clean, after = det.detect(images), det.detect(out)
    ratios = hiding_ratios(clean, after, hider.private_ids_)
    assert (ratios.hide_ratio, ratios.keep_ratio, ratios.private_objects, ratios.other_objects) == (1.0, 1.0, 3, 2)
    report = hider.report()
    # the face cell's mean falls by eps per step from 0.9; the detector stops seeing a face below 0.6: 8 steps
    assert report.effort.tolist() == [8.0, 8.0, 8.0, 0.0]
    assert report.nothing_to_hide.tolist() == [False, False, False, True]
    assert report.hidden.all()
    assert torch.equal(out[3], images[3])  # nothing to hide: unchanged
    delta = out - images
    assert float(delta.abs().max()) <= 8 * 0.04 + 1e-6
    # targeted FGSM moves only pixels whose regions' loss has a gradient: the object cells (mid-grey background
    # cells sit where face and cup logits balance, so their gradient is exactly 0)
    moved = delta.abs().amax(dim=1) > 0
    assert moved[:3, :4, :4].all() and not moved[:, 4:12].any()
    diag = hider.diagnostics()
    assert diag["hidden_fraction"] == 1.0 and diag["iterations_mean"] == 8.0
    assert diag["nothing_to_hide_fraction"] == 0.25
    assert diag["perturbation_min_255"] == pytest.approx(float(delta.min()) * 255, abs=1e-3)


def test_iteration_budget_caps_the_work_and_is_reported_as_not_hidden():
    images, _ = toy_scenes(2)
    hider = ObjectHiding(detector=ToyDetector(), eps=0.04, iterations=3).fit(images)
    out = hider.transform(images)
    report = hider.report()
    assert report.effort.tolist() == [3.0, 0.0] and report.hidden.tolist() == [False, True]
    assert float((out - images).abs().max()) == pytest.approx(3 * 0.04, abs=1e-6)


def test_the_l2_term_changes_the_direction_and_zero_lambda_is_the_plain_loss():
    images, _ = toy_scenes(2)
    images[0, :, 4:8, 4:8] = 0.45 + 0.02 * torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    plain = ObjectHiding(detector=ToyDetector(), eps=0.04, iterations=2).fit(images).transform(images)
    pulled = ObjectHiding(detector=ToyDetector(), eps=0.04, iterations=2, lam=100.0).fit(images).transform(images)
    assert not torch.equal(plain, pulled)
    # with a huge lambda the second step goes back towards the original wherever the first step moved
    assert float((pulled - images).abs().sum()) < float((plain - images).abs().sum())


def test_object_regions_keep_the_perturbation_on_the_objects():
    images, _ = toy_scenes(2)
    images[:, :, 8:12, 8:12] = 0.5  # a background cell off the face/cup balance: its gradient is not 0
    moved = {}
    for regions in ("all", "objects"):
        out = ObjectHiding(detector=ToyDetector(), eps=0.04, iterations=20, loss_regions=regions).fit(
            images).transform(images)
        moved[regions] = (out - images).abs().amax(dim=1) > 0
        assert moved[regions][0, :4, :4].all()  # the face moved either way
    assert moved["all"][0, 8:12, 8:12].all() and not moved["objects"][0, 8:12, 8:12].any()


def test_bad_detector_setups_are_one_line_errors():
    images, _ = toy_scenes(2)
    with pytest.raises(InvalidInputError, match="has no class 'plate'"):
        ObjectHiding(detector=ToyDetector(), private_classes="plate").fit(images)
    with pytest.raises(InvalidInputError, match="0 is background"):
        ObjectHiding(detector=ToyDetector(), private_classes=[0]).fit(images)
    with pytest.raises(InvalidInputError, match="private_classes must be"):
        ObjectHiding(detector=ToyDetector(), private_classes=[]).fit(images)

    class BlackBox(Detector):
        name = "black"

        def _detect(self, images):
            return [Detections.empty() for _ in images]

    with pytest.raises(InvalidInputError, match="white-box"):
        ObjectHiding(detector=BlackBox(), private_classes=1).fit(images)
    with pytest.raises(InvalidInputError, match="no transform has run yet"):
        ObjectHiding(detector=ToyDetector()).report()
    with pytest.raises(InvalidInputError, match="unknown detector|no-such-detector"):
        create("object-hiding", detector="no-such-detector").fit(images)
