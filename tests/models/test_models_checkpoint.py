"""Checkpoints (state dict + arch) and TorchScript export round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from privis.errors import InvalidInputError
from privis.models import create, export_torchscript, load_checkpoint, save_checkpoint


@pytest.mark.parametrize(
    ("name", "options"), [("lenet5", {}), ("resnet18", {"width": 8}), ("vit", {"dim": 32, "depth": 2})]
)
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str, options: dict[str, int]) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=4, in_channels=3, image_size=16, **options).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    path = save_checkpoint(
        model, tmp_path / "sub" / "model.pt", extra={"acc": np.float32(0.5), "epochs": [1, 2]}
    )
    loaded, info = load_checkpoint(path)
    assert info["format"] == "checkpoint"
    assert info["arch"] == name and info["arch_kwargs"] == model.arch_kwargs
    assert info["extra"] == {"acc": 0.5, "epochs": [1, 2]}
    assert info["privis_version"]
    assert not loaded.training and loaded.arch == name
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert not list(path.parent.glob("*.tmp"))


def test_checkpoint_is_weights_only_loadable(tmp_path: Path) -> None:
    path = save_checkpoint(create("lenet5"), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"arch", "arch_kwargs", "state_dict", "extra", "privis_version"}


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(InvalidInputError, match="nope.pt"):
        load_checkpoint(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InvalidInputError, match="corrupt.pt"):
        load_checkpoint(corrupt)
    truncated = tmp_path / "truncated.pt"
    good = save_checkpoint(create("lenet5"), tmp_path / "good.pt").read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(InvalidInputError, match="truncated.pt"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InvalidInputError, match="other.pt: not a privis checkpoint"):
        load_checkpoint(other)


def test_unknown_arch_in_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "alien.pt"
    torch.save({"arch": "alien", "arch_kwargs": {}, "state_dict": {}}, path)
    with pytest.raises(InvalidInputError, match="alien.pt: unknown model 'alien'"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.pt"
    payload = torch.load(save_checkpoint(create("lenet5"), path), weights_only=True)
    payload["arch_kwargs"]["num_classes"] = 3
    torch.save(payload, path)
    with pytest.raises(InvalidInputError, match="mismatch.pt: weights do not fit 'lenet5'"):
        load_checkpoint(path)


def test_save_rejects_models_without_arch_and_bad_extra(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="export_torchscript"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    with pytest.raises(InvalidInputError, match="extra"):
        save_checkpoint(create("lenet5"), tmp_path / "x.pt", extra={"f": object()})
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("name", "options"), [("lenet5", {}), ("vit", {"dim": 32, "depth": 2})])
def test_torchscript_export_matches_eager(tmp_path: Path, name: str, options: dict[str, int]) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=3, image_size=28, **options)  # left in train mode on purpose
    x = torch.rand(4, 1, 28, 28)
    path = export_torchscript(model, tmp_path / "model.ts", x[:2])
    assert model.training
    scripted = torch.jit.load(str(path))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
    loaded, info = load_checkpoint(path)
    assert info["format"] == "torchscript" and info["arch"] == name
    assert info["arch_kwargs"]["image_size"] == [28, 28]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
