"""Layer names and the feature extractor (differentiable w.r.t. the input, used by Veil)."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.models import FeatureExtractor, create, layer_names

DOCUMENTED = {
    "lenet5": ["conv1", "conv2", "fc1", "fc2", "fc3"],
    "alexnet": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"],
    "vgg": ["block1", "block2", "block3", "block4", "block5", "avgpool", "fc1", "fc2", "fc3"],
    "resnet18": ["conv1", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"],
    "vit": ["patch_embed", "blocks.0", "blocks.5", "norm", "head"],
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_layer_names_contain_documented_names(name: str) -> None:
    names = layer_names(create(name))
    assert set(DOCUMENTED[name]) <= set(names)
    assert names[-1] == "logits"
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("layer", "width"),
    [("conv1", 6 * 28 * 28), ("conv2", 16 * 10 * 10), ("fc1", 120), ("fc2", 84), ("fc3", 10)],
)
def test_lenet5_feature_shapes(layer: str, width: int) -> None:
    torch.manual_seed(0)
    extractor = FeatureExtractor(create("lenet5").eval(), layer)
    assert extractor(torch.rand(3, 1, 28, 28)).shape == (3, width)


def test_logits_layer_is_the_model_output_and_fc3_equals_it() -> None:
    torch.manual_seed(0)
    model = create("lenet5").eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(FeatureExtractor(model)(x), model(x))
        torch.testing.assert_close(FeatureExtractor(model, "fc3")(x), model(x))


@pytest.mark.parametrize(
    ("name", "layer"), [("lenet5", "conv2"), ("resnet18", "layer2"), ("vit", "blocks.2")]
)
def test_gradient_wrt_input_is_nonzero(name: str, layer: str) -> None:
    torch.manual_seed(0)
    model = create(name, in_channels=1, image_size=16).eval()
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    features = FeatureExtractor(model, layer)(x)
    assert features.ndim == 2 and features.shape[0] == 2
    features.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_stop_early_gives_same_features_and_leaves_no_hooks() -> None:
    torch.manual_seed(0)
    model = create("alexnet").eval()
    x = torch.rand(2, 1, 28, 28)
    early = FeatureExtractor(model, "conv5")(x)
    full = FeatureExtractor(model, "conv5", stop_early=False)(x)
    torch.testing.assert_close(early, full)
    assert all(not m._forward_hooks for m in model.modules())
    assert model(x).shape == (2, 10)


def test_unknown_layer_lists_valid_layers() -> None:
    with pytest.raises(InvalidInputError, match="valid layers: conv1, pool1"):
        FeatureExtractor(create("lenet5"), "conv9")
