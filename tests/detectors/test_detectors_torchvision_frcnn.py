"""The Faster R-CNN adapter: checks the user's inputs first and says in one line when torchvision is missing."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from privis.detectors import REGISTRY
from privis.errors import InvalidInputError, PrivisError

NAMES = ("background", "face", "plate")


def test_a_missing_weights_file_or_bad_class_names_are_refused_before_torchvision_is_needed(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="weights file not found"):
        REGISTRY.create("faster-rcnn", weights=tmp_path / "none.pt", class_names=NAMES)
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(InvalidInputError, match="start with 'background'"):
        REGISTRY.create("faster-rcnn", weights=tmp_path / "w.pt", class_names=("face", "plate"))


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here")
def test_without_torchvision_the_error_is_one_line_naming_it(tmp_path) -> None:
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(PrivisError, match="needs torchvision, which cannot be imported") as info:
        REGISTRY.create("faster-rcnn", weights=tmp_path / "w.pt", class_names=NAMES)
    assert "\n" not in str(info.value) and not isinstance(info.value, InvalidInputError)
