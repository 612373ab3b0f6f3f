"""Hide ratio r_p, keep ratio r_a and R = r_p + 0.5 r_a against hand-counted cases."""

from __future__ import annotations

import math

import pytest
import torch

from privis.detectors import Detections
from privis.errors import InvalidInputError
from privis.metrics.hiding import found_again, hiding_ratios


def _d(boxes, labels):
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.long),
                      torch.ones(len(labels)))


def test_ratios_pool_objects_over_the_batch_with_class_and_iou_matching():
    clean = [_d([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [1, 1, 2]),
             _d([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 3])]
    protected = [_d([[0, 0, 10, 9], [40, 40, 50, 50]], [1, 2]),        # face 1 found again (IoU 0.9), face 2 hidden
                 _d([[0, 0, 10, 10], [20, 20, 30, 30]], [2, 3])]        # face relabelled: hidden; class 3 kept
    r = hiding_ratios(clean, protected, private_classes=[1])
    assert (r.private_objects, r.other_objects) == (3, 2)
    assert r.hide_ratio == pytest.approx(2 / 3) and r.keep_ratio == 1.0 and r.score == pytest.approx(2 / 3 + 0.5)
    assert r.all_hidden().tolist() == [False, True]
    # at IoU 0.95 the 0.9-overlap box no longer finds the first face again
    assert hiding_ratios(clean, protected, [1], iou_threshold=0.95).hide_ratio == 1.0


def test_empty_sides_give_nan_ratios_and_errors_are_one_line():
    r = hiding_ratios([_d([], [])], [_d([], [])], [1])
    assert math.isnan(r.hide_ratio) and math.isnan(r.keep_ratio) and math.isnan(r.score)
    r = hiding_ratios([_d([[0, 0, 4, 4]], [1])], [_d([], [])], [1])
    assert r.hide_ratio == 1.0 and math.isnan(r.keep_ratio) and r.score == 1.0
    assert found_again(_d([[0, 0, 4, 4]], [1]), _d([], [])).tolist() == [False]
    with pytest.raises(InvalidInputError, match="2 clean detection lists but 1"):
        hiding_ratios([_d([], [])] * 2, [_d([], [])], [1])
    with pytest.raises(InvalidInputError, match=r"\(0, 1\]"):
        found_again(_d([], []), _d([], []), iou_threshold=0)
