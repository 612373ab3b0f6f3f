"""Smoke runs of the protective perturbation experiments (digits, tiny budgets)."""

from __future__ import annotations

import json

from privis import experiments
from privis.experiments.perturbation_tables import best_pair, perturbation_matrix, perturbation_timing


def test_registered():
    names = experiments.available()
    assert "perturbation-matrix" in names and "perturbation-timing" in names


def test_matrix_quick_smoke():
    res = perturbation_matrix(data="digits", quick=True, targets=("lenet5",), auxiliaries=("lenet5", "vgg"))
    pairs = res.tables["pairs (Fig. 7-8)"]
    assert [(r["target"], r["auxiliary"]) for r in pairs] == [("lenet5", "vgg"), ("lenet5", "(none)")]
    for r in pairs:
        assert 0.0 <= r["target_acc_protected"] <= 1.0 and 0.0 <= r["ssim_abs_mean"] <= 1.0
        assert r["drop_points"] == 100 * (r["target_acc_original"] - r["target_acc_protected"])
        # the generator perturbs, it does not replace: protected images stay close to the originals
        assert r["ssim_abs_mean"] > 0.5 and r["ssim_abs_mean"] >= abs(r["ssim_signed_mean"]) - 1e-6
        # 8-bit rounding of the protected images moves the target's accuracy by a few images at most
        assert abs(r["target_acc_protected_8bit"] - r["target_acc_protected"]) <= 0.05
        assert r["target_acc_original"] == res.summary[f"{r['target']}.acc_original"]
    assert pairs[0]["aux_acc_protected"] is not None and pairs[1]["aux_acc_protected"] is None
    assert pairs[1]["unseen_acc_protected_mean"] is not None  # vgg never saw the no-aux generator
    ablation = res.tables["ablation (first pair)"]
    assert len(ablation) == 3 and ablation[0]["variant"].startswith("privis default")
    assert ablation[0]["ssim_abs_mean"] == pairs[0]["ssim_abs_mean"]
    table2 = res.tables["Table 2 (target accuracy on protected images)"]
    assert table2[0]["aux_min"] == table2[0]["aux_max"] == pairs[0]["target_acc_protected"]
    assert res.summary["pairs"] == 1
    json.loads(res.to_json())
    assert res.figures


def test_best_pair_rule():
    rows = [{"meets_criteria": True, "ssim_abs_mean": 0.3, "name": "a"},
            {"meets_criteria": False, "ssim_abs_mean": 0.1, "name": "b"},
            {"meets_criteria": True, "ssim_abs_mean": 0.2, "name": "c"}]
    assert best_pair(rows)["name"] == "c"
    assert best_pair([rows[1]]) is None


def test_timing_quick_smoke():
    res = perturbation_timing(quick=True)
    rows = res.tables["Table 3 (CPU ms/image)"]
    assert {r["model"] for r in rows} == {"lenet5", "unet-w4"} and {r["batch"] for r in rows} == {1, 8}
    assert all(r["eager_ms_per_image"] > 0 and r["onnxruntime_ms_per_image"] > 0 for r in rows)
    # one row per model and batch size asked for, each exported to ONNX, and the summary quotes the rows
    assert sorted((r["model"], r["batch"]) for r in rows) == sorted(
        (m, b) for m in ("lenet5", "unet-w4") for b in res.config["batches"])
    assert all(r["onnx_export_error"] == "" for r in rows)
    for r in rows:
        key = f"{r['model']}.b{r['batch']}"
        assert res.summary[f"{key}.eager_ms"] == r["eager_ms_per_image"]
        assert res.summary[f"{key}.onnxruntime_ms"] == r["onnxruntime_ms_per_image"]
    assert "load_average_before" in res.config
