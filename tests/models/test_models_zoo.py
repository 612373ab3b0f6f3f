"""The registry and the zoo: every architecture builds and forwards on 8x8 to 32x32, grey or RGB."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.models import INPUT_MEAN, INPUT_STD, available, create, register_model

ARCHS = ["alexnet", "lenet5", "resnet18", "vgg", "vit"]
SHAPES = [(2, 1, 8, 8), (2, 1, 28, 28), (2, 3, 32, 32)]


def test_available_lists_the_zoo() -> None:
    assert set(ARCHS) <= set(available())
    assert available() == sorted(available())


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[1:])))
def test_forward_shapes(name: str, shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=7, in_channels=shape[1], image_size=shape[2:])
    model.eval()
    x = torch.rand(shape)
    with torch.no_grad():
        out = model(x)
        first = model(x[:1])
    assert out.shape == (2, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # in eval mode each image's logits are its own: the same alone as in the batch, and they depend on it
    torch.testing.assert_close(first[0], out[0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("name", ARCHS)
def test_arch_attributes_rebuild_the_model(name: str) -> None:
    model = create(name, num_classes=5, in_channels=3, image_size=(16, 12))
    assert model.arch == name
    assert model.arch_kwargs == {"num_classes": 5, "in_channels": 3, "image_size": (16, 12)}
    twin = create(model.arch, **model.arch_kwargs)
    assert twin.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 16, 12)).shape == (1, 5)


@pytest.mark.parametrize("name", ARCHS)
def test_forward_64px_rgb(name: str) -> None:
    model = create(name, in_channels=3, image_size=64).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 10)


def test_parameter_counts_are_sensible() -> None:
    def count(name: str, **kwargs: object) -> int:
        return sum(p.numel() for p in create(name, **kwargs).parameters())

    # LeNet-5 on 1x28x28 with 10 classes: 156 + 2416 + 48120 + 10164 + 850.
    assert count("lenet5") == 61_706
    assert 3e6 < count("alexnet", in_channels=3, image_size=32) < 6e6
    assert 1e6 < count("vgg", in_channels=3, image_size=32) < 5e6
    assert 10.5e6 < count("resnet18", in_channels=3, image_size=32) < 11.5e6
    assert 0.5e6 < count("vit", in_channels=3, image_size=32) < 1.2e6


def test_lenet5_layout_is_classic_at_28px() -> None:
    model = create("lenet5")
    assert model.conv1.out_channels == 6 and model.conv1.padding == (2, 2)
    assert model.conv2.out_channels == 16 and model.conv2.padding == (0, 0)
    assert (model.fc1.in_features, model.fc1.out_features) == (400, 120)
    assert (model.fc2.out_features, model.fc3.out_features) == (84, 10)
    assert create("lenet5", image_size=8).conv2.padding == (2, 2)


def test_vit_patch_size_follows_image_size() -> None:
    assert create("vit", image_size=8).patch_size == 2
    assert create("vit", image_size=28).patch_size == 4
    assert create("vit", image_size=28, patch_size=7).patch_size == 7


def test_vit_accepts_other_input_sizes() -> None:
    model = create("vit", image_size=16).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 20, 12)).shape == (2, 10)


def test_models_normalise_inputs_to_minus_one_one() -> None:
    assert (INPUT_MEAN, INPUT_STD) == (0.5, 0.5)
    torch.manual_seed(0)
    model = create("lenet5").eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_normalized(x * 2 - 1))


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(InvalidInputError, match="available: .*lenet5"):
        create("lenet6")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"in_channels": -1},
        {"image_size": 0},
        {"image_size": (28,)},
        {"image_size": "28"},
        {"not_an_option": 1},
    ],
)
def test_create_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        create("lenet5", **kwargs)


def test_options_are_validated_and_recorded() -> None:
    model = create("vgg", width=8, hidden=32)
    assert model.arch_kwargs["width"] == 8
    with pytest.raises(InvalidInputError):
        create("vit", dim=30, heads=4)
    with pytest.raises(InvalidInputError):
        create("alexnet", dropout=1.5)


def test_wrong_channel_count_is_reported() -> None:
    model = create("lenet5", in_channels=1)
    with pytest.raises(InvalidInputError, match="expects input"):
        model(torch.rand(2, 3, 28, 28))


def test_register_model_rejects_duplicates() -> None:
    with pytest.raises(InvalidInputError, match="already registered"):
        register_model("lenet5")(lambda num_classes, in_channels, image_size: torch.nn.Identity())
