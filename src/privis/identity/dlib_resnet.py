"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a differentiable torch module.

The network of D. E. King, dlib (http://dlib.net; "Dlib-ml: A Machine Learning Toolkit", Journal of Machine
Learning Research 10, 2009), a 29-layer residual network after K. He, X. Zhang, S. Ren and J. Sun, "Deep
Residual Learning for Image Recognition", CVPR 2016, trained with a metric loss so that two 150x150 face
chips of the same person map to 128-D descriptors less than 0.6 apart (Euclidean). Its C++ type, from dlib's
``tools/python/src/face_recognition.cpp``::

    block<N, stride>  = affine(con<N,3x3,1>(relu(affine(con<N,3x3,stride>(x)))))
    ares<N>           = relu(block<N,1>(x) + x)
    ares_down<N>      = relu(block<N,2>(x) + avg_pool<2x2,2>(x))      (zero-padded where sizes differ)
    net = fc_no_bias<128>(avg_pool_everything(ares_down<256>(ares<256>x2(ares_down<256>(ares<128>x2(
          ares_down<128>(ares<64>x3(ares_down<64>(ares<32>x3(max_pool<3x3,2>(relu(affine(con<32,7x7,2>(
          input_rgb_image_sized<150>))))))))))))))

dlib's convolutions and pools with stride 2 have no padding, stride-1 ones pad by half the window; its
``add_prev`` adds tensors of different shapes as if the smaller one were zero-padded at the end of each
dimension (channels, rows, columns); its input layer maps a pixel value ``v`` in ``0..255`` to
``(v - mean_c) / 256`` with the per-channel means stored in the file (122.782, 117.001, 104.298 for R, G,
B). The inference network's ``affine`` layers (batch norm frozen to ``gamma * x + beta``) are folded into the
convolutions before them, which changes results only at float32 rounding.

The weights come from the ``.dat`` file through :func:`privis.identity.dlib_format.read_dlib_net`; dlib itself
is not needed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import ImageFileError, InvalidInputError
from privis.identity.dlib_format import DlibLayer, read_dlib_net

__all__ = ["CHIP_SIZE", "DESCRIPTOR_SIZE", "DlibFaceResNet"]

#: Side of the face chip the network takes (pixels).
CHIP_SIZE = 150
#: Length of the face descriptor.
DESCRIPTOR_SIZE = 128

#: (filters, downsampling block first?, blocks) per level, from the input up (dlib's alevel4 ... alevel0).
_LEVELS = ((32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1))
_BLOCK = ["con", "affine", "relu", "con", "affine"]
_RESIDUAL = ["tag_or_skip", *_BLOCK, "add_prev", "relu"]
_RESIDUAL_DOWN = ["tag_or_skip", *_BLOCK, "tag_or_skip", "tag_or_skip", "avg_pool", "add_prev", "relu"]


def _expected_kinds() -> list[str]:
    kinds = ["input_rgb_image_sized", "con", "affine", "relu", "max_pool"]
    for _, down, blocks in _LEVELS:
        kinds += _RESIDUAL_DOWN if down else _RESIDUAL
        kinds += _RESIDUAL * (blocks - 1)
    return [*kinds, "avg_pool", "fc", "loss_metric"]


def _folded_conv(con: DlibLayer, affine: DlibLayer) -> nn.Conv2d:
    """``affine(con(x))`` as one convolution: weights scaled by gamma, bias ``gamma * b + beta``."""
    weight = con.params["weight"]
    out_ch, in_ch, kh, kw = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=(int(con.config["stride_y"]), int(con.config["stride_x"])),
                     padding=(int(con.config["padding_y"]), int(con.config["padding_x"])))
    gamma, beta = affine.params["gamma"], affine.params["beta"]
    bias = con.params.get("bias", torch.zeros(out_ch))
    conv.weight = nn.Parameter(weight * gamma.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bias * gamma + beta)
    return conv


def _add_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, each input zero-padded at the end of C, H and W."""
    if a.shape == b.shape:
        return a + b
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: Tensor) -> Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return pad(a) + pad(b)


class _Residual(nn.Module):
    """``relu(block(x) + shortcut(x))``; the shortcut is ``avg_pool<2x2, stride 2>`` in a downsampling block."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, down: bool) -> None:
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.down = down

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut))


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet: aligned face chips ``(N, 3, 150, 150)`` -> descriptors ``(N, 128)``.

    Input: canonical RGB chips, float32 in ``[0, 1]`` (pixel value ``v / 255``), aligned as dlib's
    ``get_face_chip(..., size=150, padding=0.25)`` aligns them (see :mod:`privis.identity.alignment`).
    Output: float32 descriptors, unnormalised, as dlib's ``compute_face_descriptor`` returns them; two faces
    are the same person when their Euclidean distance is at most :attr:`threshold` (0.6). Differentiable in
    the chips; runs on the device of its parameters.

    Build it with :meth:`load` (parses the ``.dat`` file) or from already parsed layers.
    """

    threshold: float = 0.6
    mean: Tensor

    def __init__(self, layers: list[DlibLayer], source: str | Path = "<layers>") -> None:
        super().__init__()
        kinds = [layer.kind for layer in layers]
        expected = _expected_kinds()
        if kinds != expected:
            at = next((i for i, (k, e) in enumerate(zip(kinds, expected, strict=False)) if k != e),
                      min(len(kinds), len(expected)))
            found = kinds[at] if at < len(kinds) else "the end"
            wanted = expected[at] if at < len(expected) else "the end"
            raise ImageFileError(source, f"not dlib's face-recognition ResNet: layer {at} is {found}, "
                                         f"expected {wanted} ({len(kinds)} layers, expected {len(expected)})")
        inp = layers[0].config
        if (inp["nr"], inp["nc"]) != (CHIP_SIZE, CHIP_SIZE):
            raise ImageFileError(source, f"input size {inp['nr']}x{inp['nc']}, expected {CHIP_SIZE}x{CHIP_SIZE}")
        self.register_buffer("mean", torch.tensor([inp["avg_red"], inp["avg_green"], inp["avg_blue"]],
                                                  dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _folded_conv(layers[1], layers[2])
        blocks: list[nn.Module] = []
        i = 5
        for _, down, count in _LEVELS:
            for b in range(count):
                is_down = down and b == 0
                blocks.append(_Residual(_folded_conv(layers[i + 1], layers[i + 2]),
                                        _folded_conv(layers[i + 4], layers[i + 5]), is_down))
                i += len(_RESIDUAL_DOWN if is_down else _RESIDUAL)
        self.blocks = nn.Sequential(*blocks)
        fc = layers[i + 1]
        self.fc = nn.Linear(int(fc.config["num_inputs"]), int(fc.config["num_outputs"]), bias="bias" in fc.params)
        with torch.no_grad():
            self.fc.weight.copy_(fc.params["weight"])
            if self.fc.bias is not None:
                self.fc.bias.copy_(fc.params["bias"])
        self.threshold = float(layers[-1].config["dist_thresh"])
        self.eval()

    @classmethod
    def load(cls, path: str | Path | None = None) -> DlibFaceResNet:
        """The network from a dlib ``.dat`` file; default: ``dlib_face_recognition_resnet_model_v1.dat`` from
        the installed ``face_recognition_models`` package.

        Raises:
            ImageFileError: unreadable, truncated or a different network.
            privis.models.pretrained.MissingWeightsError: ``path`` is None and the package is not installed.
        """
        if path is None:
            from privis.models.pretrained import dlib_model_file

            path = dlib_model_file("face_recognition")
        return cls(read_dlib_net(path), source=path)

    def forward(self, chips: Tensor) -> Tensor:
        """Descriptors ``(N, 128)`` float32 of chips ``(N, 3, 150, 150)`` float32 in ``[0, 1]``.

        Raises:
            InvalidInputError: not canonical images, or not 3x150x150.
        """
        chips = check_images(chips, channels=(3,))
        if tuple(chips.shape[2:]) != (CHIP_SIZE, CHIP_SIZE):
            raise InvalidInputError(f"dlib's face ResNet takes (N, 3, {CHIP_SIZE}, {CHIP_SIZE}) chips, "
                                    f"got {tuple(chips.shape)}")
        x = (chips * 255.0 - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))
