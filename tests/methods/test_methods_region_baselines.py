"""Box-restricted blur and mosaic: the weakest strength that hides, only inside the private boxes."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.methods.baselines import Pixelate
from privis.methods.region_baselines import RegionBlur, RegionMosaic, box_mask
from toy_detector import ToyDetector, toy_scenes


def test_mosaic_picks_the_first_cell_that_averages_the_face_below_the_detector_threshold():
    images, truth = toy_scenes(3)
    det = ToyDetector()
    mosaic = RegionMosaic(detector=det, strengths=(2, 4, 8, 16)).fit(images)
    out = mosaic.transform(images)
    # a 4x4 face at 0.9 on 0.45: cells of 2 and 4 keep its mean; a cell of 8 gives (16 * 0.9 + 48 * 0.45) / 64
    assert mosaic.report().effort.tolist() == [8.0, 8.0, 0.0]
    assert mosaic.report().hidden.all()
    mask = box_mask(truth, [1], (16, 16), images.device).bool().expand_as(images)
    assert torch.equal(out[~mask], images[~mask])  # nothing outside the private boxes changes
    assert torch.equal(out[:2][mask[:2]], Pixelate(block=8).transform(images[:2])[mask[:2]])
    assert all(int((d.labels == 1).sum()) == 0 for d in det.detect(out))


def test_blur_strength_is_the_weakest_that_hides_and_a_too_weak_list_keeps_its_strongest():
    images, _ = toy_scenes(2)
    blur = RegionBlur(detector=ToyDetector(), strengths=(0.5, 1.0, 2.0, 4.0)).fit(images)
    blur.transform(images)
    chosen = float(blur.report().effort[0])
    assert blur.report().hidden[0]
    weaker = [s for s in (0.5, 1.0, 2.0, 4.0) if s < chosen]
    assert weaker, "the search should need more than the weakest level"
    short = RegionBlur(detector=ToyDetector(), strengths=tuple(weaker)).fit(images)
    short.transform(images)
    assert short.report().hidden.tolist() == [False, True] and float(short.report().effort[0]) == weaker[-1]


def test_strengths_must_increase_and_mosaic_cells_be_whole():
    images, _ = toy_scenes(2)
    with pytest.raises(InvalidInputError, match="increasing"):
        RegionBlur(detector=ToyDetector(), strengths=(2.0, 1.0)).fit(images)
    with pytest.raises(InvalidInputError, match="whole cell sides"):
        RegionMosaic(detector=ToyDetector(), strengths=(2.5,)).fit(images)
