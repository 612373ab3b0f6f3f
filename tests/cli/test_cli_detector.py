"""``privis train-detector``: trains on built-in scenes, reports held-out mAP@0.5, writes a loadable detector."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from privis.cli.main import app
from privis.detectors.scene_detector import load_scene_detector

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_train_detector_writes_a_loadable_detector_and_its_map(tmp_path):
    out, report = tmp_path / "det.pt", tmp_path / "det.json"
    res = _run("train-detector", "--scenes", 32, "--test-scenes", 8, "--size", 32, "--epochs", 1, "--out", out,
               "--private", "face,digit", "--json", report)
    assert res.exit_code == 0, res.output
    assert "Detector mAP at IoU 0.5 on held-out scenes" in res.output and f"wrote {out}" in res.output
    result = json.loads(report.read_text())
    assert 0 <= result["summary"]["map50"] <= 1 and result["config"]["private_classes"] == ["face", "digit"]
    det = load_scene_detector(out)
    assert det.extra["private_classes"] == ["face", "digit"] and det.extra["map50"] == result["summary"]["map50"]
    assert det.class_names == tuple(result["config"]["class_names"])
    res = _run("train-detector", "--scenes", 32, "--epochs", 1, "--out", out)
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_train_detector_refuses_bad_size_and_classes_before_work(tmp_path):
    out = tmp_path / "det.pt"
    res = _run("train-detector", "--size", 34, "--out", out)
    assert res.exit_code == 2 and "divisible by 4" in res.output
    res = _run("train-detector", "--private", "plate", "--out", out)
    assert res.exit_code == 2 and "private classes" in res.output and not out.exists()
