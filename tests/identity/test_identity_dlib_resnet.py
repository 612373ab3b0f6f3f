"""privis' torch port of dlib's face ResNet against dlib's own compute_face_descriptor on the same chips."""

from __future__ import annotations

import copy

import pytest
import torch

from privis.errors import ImageFileError, InvalidInputError
from privis.identity.dlib_format import read_dlib_net
from privis.identity.dlib_resnet import DlibFaceResNet, _add_padded
from privis.models.pretrained import dlib_model_file

dlib = pytest.importorskip("dlib")
pytestmark = pytest.mark.usefixtures("one_thread")

from privis.identity.alignment import dlib_face_chips, face_landmarks, sample_faces  # noqa: E402
from privis.identity.dlib_identity import DlibIdentity  # noqa: E402


@pytest.fixture(scope="module")
def net() -> DlibFaceResNet:
    return DlibFaceResNet.load()


@pytest.fixture(scope="module")
def chips() -> torch.Tensor:
    """dlib's own 8-bit chips of 6 real faces (astronaut + upscaled LFW faces)."""
    return torch.cat([dlib_face_chips(image, face_landmarks(image).points) for image in sample_faces(6)])


@pytest.fixture(scope="module")
def dlib_descriptors(chips) -> torch.Tensor:
    return DlibIdentity().embed_chips(chips)


def test_port_matches_dlib_on_real_chips(net, chips, dlib_descriptors):
    with torch.no_grad():
        mine = net(chips)
    assert mine.shape == (6, 128) and mine.dtype == torch.float32
    assert (mine - dlib_descriptors).abs().max() <= 1e-4  # float32 rounding only; acceptance: 1e-3
    same_mine = torch.cdist(mine, mine) <= 0.6
    same_dlib = torch.cdist(dlib_descriptors, dlib_descriptors) <= 0.6
    assert torch.equal(same_mine, same_dlib)
    # the batch does not change a descriptor (no cross-sample state)
    with torch.no_grad():
        assert torch.allclose(net(chips[2:3]), mine[2:3], atol=1e-5)


def test_gradients_reach_the_chips_and_device_follows_the_module(net, chips, dlib_descriptors, device):
    moved = copy.deepcopy(net).to(device)
    x = chips[:1].to(device).requires_grad_(True)
    out = moved(x)
    assert out.device.type == device.type
    assert torch.allclose(out.detach().cpu(), dlib_descriptors[:1], atol=1e-3)
    (out - dlib_descriptors[1:2].to(device)).norm().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_add_prev_zero_pads_the_smaller_tensor_at_the_end():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 2.0)
    out = _add_padded(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(3).all() and out[0, 0, 3].eq(2).all() and out[0, 0, :, 3].eq(2).all()
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3].eq(0).all()


def test_other_networks_and_inputs_are_refused(net):
    layers = read_dlib_net(dlib_model_file("face_recognition"))
    with pytest.raises(ImageFileError, match="layer 5 is relu, expected tag_or_skip"):
        DlibFaceResNet(layers[:5] + layers[3:])
    with pytest.raises(InvalidInputError, match=r"\(N, 3, 150, 150\)"):
        net(torch.rand(1, 3, 112, 112))
    with pytest.raises(InvalidInputError):
        net(torch.rand(1, 1, 150, 150))
