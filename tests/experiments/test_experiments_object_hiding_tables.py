"""Object hiding experiments in quick mode against the white-box toy detector (bright cells are faces)."""

from __future__ import annotations

import math

import torch

from privis.detectors import Detections, Detector
from privis.experiments import get
from privis.experiments.object_hiding_tables import PROCESSINGS, half, jpeg
from toy_detector import ToyDetector


def test_tables_compare_the_three_methods_and_object_hiding_hides_every_toy_face():
    r = get("object-hiding-tables").run(quick=True, seed=0, test_size=8, detector=ToyDetector(), eps=0.05,
                                        iterations=20)
    rows = {row["method"]: row for row in r.tables["methods (all test scenes)"]}
    assert set(rows) == {"object-hiding", "region-blur", "region-mosaic"}
    assert rows["object-hiding"]["hide_ratio"] == 1.0 and r.summary["hide_ratio"] == 1.0
    for row in rows.values():
        assert 0 <= row["ssim_mean"] <= 1 and row["l2_mean"] >= 0
    equal = r.tables["equal hide ratio (scenes every method hid)"]
    assert len({row["images"] for row in equal}) == 1 and equal[0]["images"] == r.summary["equal_hide_images"]
    per_image = r.tables["per image (Tables 3.1-3.2 layout)"]  # scenes with a private object: all changed
    assert 1 <= len(per_image) <= 6 and all(row["object-hiding l2"] > 0 for row in per_image) and r.figures


def test_sweep_hide_ratio_never_falls_with_a_larger_iteration_budget():
    r = get("object-hiding-sweep").run(quick=True, seed=0, test_size=6, detector=ToyDetector(),
                                       eps_values=(1, 4), n_values=(1, 3, 9), fixed_eps=(8,))
    by_n = [row for row in r.tables["hide and keep ratios"] if row["panel"] == "eps = 8"]
    hide = [row["hide_ratio"] for row in by_n]
    assert [row["iterations"] for row in by_n] == [1, 3, 9] and hide == sorted(hide)  # early stop: monotone in N
    assert all(row["range_255"] <= row["iterations"] * 8 + 1e-3 for row in by_n)


def test_robustness_unprocessed_row_is_consistent_and_processings_keep_shapes():
    r = get("object-hiding-robustness").run(quick=True, seed=0, test_size=6, detector=ToyDetector(), eps=0.05,
                                            iterations=20)
    rows = {row["processing"]: row for row in r.tables["detection rate after processing"]}
    assert set(rows) == set(PROCESSINGS)
    assert rows["none"]["private_detection_rate_original"] == 1.0  # the clean detections find themselves
    assert rows["none"]["private_detection_rate_protected"] == 0.0  # everything was hidden (toy detector)
    x = torch.rand(2, 3, 16, 16)
    assert jpeg(x).shape == x.shape and float((jpeg(x) - x).abs().mean()) < 0.2
    assert half(x).shape == (2, 3, 8, 8)


def test_faces_transfer_is_measured_on_the_same_protected_images():
    class Never(Detector):
        name = "never"
        class_names = ("background", "face")

        def _detect(self, images):
            return [Detections.empty() for _ in images]

    r = get("object-hiding-faces").run(quick=True, seed=0, test_size=2, detector=ToyDetector(),
                                       transfer=(Never(),), iterations=20, eps_values=(12,))
    assert r.tables["transfer (black-box)"][0]["faces_found_clean"] == 0
    assert math.isnan(r.summary["transfer_hide_ratio_never"])
    assert 0 <= r.summary["white_box_hide_ratio"] <= 1
