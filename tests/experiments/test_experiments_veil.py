"""Veil experiments run end to end in quick mode on digits and produce the tables they promise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privis import experiments
from privis.experiments.veil_tables import widen_classifier
from privis.models import create
from privis.report import render_html


def test_registry_lists_veil_tables():
    names = set(experiments.available())
    assert {"demo", "veil-table2", "veil-table3", "veil-table4", "veil-table5", "veil-frontier"} <= names


def test_table2_and_3_quick_on_digits():
    r2 = experiments.get("veil-table2").run(data="digits", quick=True, seed=0)
    row = r2.tables["Table 2 (accuracy)"][0]
    assert row["dataset"] == "digits"
    assert 0 <= row["veiled_on_original"] <= 1 and 0 <= row["ssim_mean"] <= 1
    # the baseline learns the digits (chance: 0.1) and does not read the veiled images as well as the originals
    assert row["baseline_on_original"] > 0.5 and row["baseline_on_veiled"] < row["baseline_on_original"] - 0.2
    assert row["stop_reached"] == r2.summary["digits.stop_reached_fraction"]
    r3 = experiments.get("veil-table3").run(data="digits", quick=True, seed=0)
    row3 = r3.tables["Table 3 (|SSIM| veiled vs original)"][0]
    assert row3["p90"] >= row3["median"] and row3["max"] >= row3["p99"]
    # Table 3 measures the same veiled test images as Table 2 (same seed): its mean is Table 2's figure
    assert row3["mean"] == pytest.approx(row["ssim_mean"], abs=1e-6)
    examples = [row3["example_1"], row3["example_2"], row3["example_3"]]
    assert all(0 <= e <= row3["max"] for e in examples) and 0 < row3["fraction_below_0.05"] < 1
    assert "<table>" in render_html(r3)


def test_table4_quick_on_digits():
    r = experiments.get("veil-table4").run(data="digits", quick=True, seed=0)
    assert {"Combination training", "Fine-tuning training", "Transferability"} <= set(r.tables)
    assert r.tables["Transferability"][0]["transfer_model"] == "alexnet"
    # the classes left as originals are still learnt (chance: 0.1), and the combination model reads the
    # veiled class as veiled: what it was trained on
    combo = r.tables["Combination training"][0]
    assert combo["original_classes"] > 0.5 and combo["veiled_class_on_veiled"] > 0.5
    finetune = r.tables["Fine-tuning training"][0]
    assert finetune["original_classes"] > 0.5
    assert r.summary["digits.combination_total"] == combo["total_original_test"]


def test_widen_classifier_trains_only_last_layer():
    torch.manual_seed(0)
    model = create("lenet5", num_classes=9, in_channels=1, image_size=8)
    wide = widen_classifier(model, 10)
    assert wide.fc3.out_features == 10
    assert [n for n, p in wide.named_parameters() if p.requires_grad] == ["fc3.weight", "fc3.bias"]
    assert torch.equal(wide.fc3.weight[:9], model.fc3.weight)
    assert isinstance(model.fc3, nn.Linear) and model.fc3.out_features == 9  # original untouched
