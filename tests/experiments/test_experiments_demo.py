"""``privis demo``: every registered method on the same slice, its utility where deployed, its worst leakage."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from privis import methods
from privis.errors import InvalidInputError
from privis.experiments.demo import demo_png, run_demo


def test_quick_demo_shows_every_registered_method(quick_demo):
    rows = {r["method"]: r for r in quick_demo.tables["methods"]}
    # a method joins by registering (those hiding objects from a detector have their own experiments)
    assert list(rows) == [n for n, cls in methods.available().items() if cls.task == "classification"]
    for name, row in rows.items():
        assert row["deployment"] == methods.available()[name].deployment
        assert 0.0 <= row["utility"] <= 1.0 and quick_demo.summary[f"{name}.utility"] == row["utility"]
        # leakage is an |SSIM| of a recovery; the attack behind it is named
        assert 0.0 <= row["leakage_ssim"] <= 1.0 and row["leakage_attack"].split(" ")[0] in quick_demo.config["attacks"]
    assert quick_demo.config["quick"] and quick_demo.config["train_size"] == 300
    assert 0.0 < quick_demo.summary["baseline_acc_original"] <= 1.0
    assert quick_demo.headline and len(quick_demo.figures) == 2
    # the plot's sentence names the methods no other beats on both axes: none of them is dominated
    front = quick_demo.figures[1].caption.split("No other method beats ")[1].split(" on both axes")[0].split(", ")
    best_utility = max(rows.values(), key=lambda r: (r["utility"], -r["leakage_ssim"]))["method"]
    assert best_utility in front
    for name in front:
        assert not any(r["leakage_ssim"] <= rows[name]["leakage_ssim"] and r["utility"] >= rows[name]["utility"]
                       and (r["leakage_ssim"], r["utility"]) != (rows[name]["leakage_ssim"], rows[name]["utility"])
                       for r in rows.values())
    grid = Image.open(io.BytesIO(quick_demo.figures[0].png))
    plot = Image.open(io.BytesIO(quick_demo.figures[1].png))
    stacked = Image.open(io.BytesIO(demo_png(quick_demo)))
    assert stacked.size == (max(grid.width, plot.width), grid.height + plot.height)


def test_demo_refuses_unknown_sizes_and_bad_counts_before_any_work(tmp_path):
    with pytest.raises(InvalidInputError, match="--size must be one of small, medium, full"):
        run_demo(tmp_path / "out", size="huge")
    with pytest.raises(InvalidInputError, match="--train-size must be an integer >= 1"):
        run_demo(tmp_path / "out", train_size=0)
    assert not (tmp_path / "out").exists()


def test_demo_results_json_carries_the_headline(tmp_path, quick_demo, monkeypatch):
    import privis.experiments.demo as demo_module

    monkeypatch.setattr(demo_module, "demo", lambda **kwargs: quick_demo)
    run_demo(tmp_path)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["headline"] == quick_demo.headline and record["tables"]["methods"]
    assert "<title>privis: demo</title>" in (tmp_path / "report.html").read_text()
