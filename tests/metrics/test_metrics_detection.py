"""Detection metrics: AP at IoU 0.5 against hand-computed cases and the PASCAL VOC devkit's procedure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from privis.detectors import Detections
from privis.errors import InvalidInputError
from privis.metrics.detection import (
    average_precision,
    box_iou,
    image_detection_rate,
    mean_average_precision,
    object_detection_rate,
)


def dets(boxes, labels, scores=None) -> Detections:
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return Detections(b, torch.tensor(labels, dtype=torch.long), torch.tensor(scores or [1.0] * len(labels)))


def voc_reference_ap(detections, truths, label, thr=0.5) -> float:
    """py-faster-rcnn's voc_eval/voc_ap (VOC 2010+ all-point), in numpy, one loop per detection."""
    gts = {i: [t.boxes[t.labels == label].numpy(), np.zeros(int((t.labels == label).sum()), bool)]
           for i, t in enumerate(truths)}
    npos = sum(len(g[1]) for g in gts.values())
    rows = [(i, float(s), b.numpy()) for i, d in enumerate(detections)
            for b, s, c in zip(d.boxes, d.scores, d.labels, strict=True) if int(c) == label]
    rows.sort(key=lambda r: -r[1])
    tp, fp = np.zeros(len(rows)), np.zeros(len(rows))
    for k, (i, _, bb) in enumerate(rows):
        gt, used = gts[i]
        ovmax, jmax = -np.inf, -1
        if len(gt):
            ixmin, iymin = np.maximum(gt[:, 0], bb[0]), np.maximum(gt[:, 1], bb[1])
            ixmax, iymax = np.minimum(gt[:, 2], bb[2]), np.minimum(gt[:, 3], bb[3])
            inter = np.maximum(ixmax - ixmin, 0) * np.maximum(iymax - iymin, 0)
            union = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - inter
            ov = inter / union
            ovmax, jmax = ov.max(), int(ov.argmax())
        if ovmax >= thr and not used[jmax]:
            tp[k], used[jmax] = 1, True
        else:
            fp[k] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def test_ap_hand_computed_with_a_duplicate_a_miss_and_another_class() -> None:
    truths = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1]), dets([[0, 0, 8, 8]], [1])]
    found = [dets([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [40, 40, 50, 50]], [1, 1, 1, 2],
                  [0.9, 0.85, 0.6, 0.99]),
             dets([[30, 30, 40, 40]], [1], [0.7])]
    # ranked: 0.9 TP, 0.85 FP (duplicate), 0.7 FP, 0.6 TP; 3 truths
    # precision 1, 1/2, 1/3, 1/2 -> monotone 1, 1/2, 1/2, 1/2; recall steps 1/3 at ranks 1 and 4
    assert average_precision(found, truths, 1) == pytest.approx(1 / 3 + 1 / 3 * 1 / 2)
    assert math.isnan(average_precision(found, truths, 2))  # no ground truth of class 2: its FP does not count
    m, per = mean_average_precision(found, truths, [1, 2])
    assert m == pytest.approx(0.5) and math.isnan(per[2])
    assert average_precision(found, truths, 1, iou_threshold=0.95) == pytest.approx(1 / 3 + 1 / 3 * 1 / 2)
    assert object_detection_rate(found, truths) == pytest.approx(2 / 3)
    assert image_detection_rate(found, label=1) == 1.0 and image_detection_rate(found, label=2) == 0.5
    with pytest.raises(InvalidInputError, match="2 ground-truth"):
        average_precision(found[:1], truths, 1)


def test_ap_matches_the_voc_devkit_procedure_on_random_cases() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        truths, found = [], []
        for _ in range(4):
            k, m = int(torch.randint(0, 4, (), generator=g)), int(torch.randint(0, 6, (), generator=g))
            xy = torch.rand(k, 2, generator=g) * 50
            gt = torch.cat([xy, xy + 10 + torch.rand(k, 2, generator=g) * 20], 1)
            near = gt[torch.randint(0, max(k, 1), (m,), generator=g)] if k else torch.rand(m, 4, generator=g) * 50
            jitter = near + torch.randn(m, 4, generator=g) * 4
            boxes = torch.cat([jitter[:, :2], torch.maximum(jitter[:, 2:], jitter[:, :2] + 1)], 1)
            truths.append(Detections(gt, torch.randint(1, 3, (k,), generator=g), torch.ones(k)))
            found.append(Detections(boxes, torch.randint(1, 3, (m,), generator=g), torch.rand(m, generator=g)))
        for label in (1, 2):
            if sum(int((t.labels == label).sum()) for t in truths):
                assert average_precision(found, truths, label) == pytest.approx(voc_reference_ap(found, truths, label))


def test_perfect_detections_give_ap_one_and_box_iou_is_symmetric() -> None:
    truths = [dets([[0, 0, 10, 10], [5, 5, 9, 9]], [1, 2])]
    assert mean_average_precision(truths, truths, [1, 2])[0] == 1.0
    a, b = torch.rand(5, 2) * 10, torch.rand(3, 2) * 10
    a, b = torch.cat([a, a + 3], 1), torch.cat([b, b + 5], 1)
    assert torch.allclose(box_iou(a, b), box_iou(b, a).T)
