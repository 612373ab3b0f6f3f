"""The protective perturbation generator ``U(.)``: a U-Net.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189, Section 3.2.

Section 3.2 feeds the image ``x`` to a U-Net (Ronneberger et al. 2015) that outputs a perturbation
``delta``; the protected image is ``x' = clamp(x + delta)`` (Fig. 3). Section 4.3.1 adds that the
generator "involves 7.766 M parameters" and, being fully convolutional, "accepts different sizes of
inputs". Our network:

- ``inc``: double convolution ``in_channels -> w`` (each ``conv3x3 -> BatchNorm -> ReLU``);
- ``down1`` .. ``down4``: 2x2 max-pool then a double convolution, widths ``w -> 2w -> 4w -> 8w -> 16w``;
- ``up1`` .. ``up4``: 2x2 transposed convolution (stride 2) halving the width, concatenation with the
  skip connection of the same resolution, double convolution; widths ``16w -> 8w -> 4w -> 2w -> w``;
- ``outc``: a 1x1 convolution ``w -> in_channels`` giving ``delta`` (unbounded, as in Fig. 3).

With ``width=32`` this is 7,766,051 parameters for RGB inputs: exactly the paper's 7.766 M (the classic
U-Net layout at base width 32 with biased convolutions). ``width`` is an option because the CPU budget
here is 2 cores, not the paper's 16: ``width=16`` has a quarter of the parameters and of the work.

Any input size works: the four 2x downsamplings need ``H`` and ``W`` to be multiples of 16, so the
input is padded at the bottom/right (edge replication, defined for any size, even 1 px) to the next
multiple of 16 and ``delta`` is cropped back to ``H x W``. The module is scriptable with
``torch.jit.script`` (then the exported module keeps dynamic sizes; see :mod:`privis.models.export`).

Registered as ``"unet-perturbation"`` in the model registry, so ``create``/``save_checkpoint``/
``load_checkpoint`` handle generators like classifiers. It is not a classifier: the registry's
``num_classes`` is accepted and ignored (the output is an image of the input's shape) and
``image_size`` is only recorded (any size works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.models.registry import register_model

#: Every input side is padded to a multiple of this (four 2x poolings).
SIZE_MULTIPLE = 16


class DoubleConv(nn.Sequential):
    """``conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> ReLU``: ``(N, c_in, H, W) -> (N, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, kernel_size=3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


class Down(nn.Sequential):
    """Encoder step: ``(N, c_in, H, W) -> (N, c_out, H/2, W/2)`` by a 2x2 max-pool and a :class:`DoubleConv`."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(c_in, c_out))


class Up(nn.Module):
    """Decoder step with a skip connection.

    ``(N, c_in, H, W)`` and skip ``(N, c_in/2, 2H, 2W)`` -> ``(N, c_out, 2H, 2W)``: a 2x2 stride-2
    transposed convolution to ``c_in/2`` channels, concatenation with the skip, a :class:`DoubleConv`.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_in // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(c_in, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetPerturbation(nn.Module):
    """``U(.)`` of Section 3.2: canonical images ``(N, C, H, W)`` in ``[0, 1]`` -> ``x' = clamp(x + delta, 0, 1)``.

    Args:
        in_channels: ``C`` (1 for grey, 3 for RGB); the output has the same channels.
        width: channels after the first double convolution (the paper's network is ``width=32``).

    Attributes:
        in_channels, width: as given.
        size_multiple: 16; inputs are padded to a multiple of it.
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.width = width
        self.size_multiple = SIZE_MULTIPLE
        w = width
        self.inc = DoubleConv(in_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w)
        self.up1 = Up(16 * w, 8 * w)
        self.up2 = Up(8 * w, 4 * w)
        self.up3 = Up(4 * w, 2 * w)
        self.up4 = Up(2 * w, w)
        self.outc = nn.Conv2d(w, in_channels, kernel_size=1)

    @torch.jit.unused
    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"UNetPerturbation expects images (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def perturbation(self, x: Tensor) -> Tensor:
        """``delta = U(x)`` ``(N, C, H, W)`` (Fig. 3), computed on ``x`` padded to a multiple of 16 and cropped back."""
        h, w = x.shape[2], x.shape[3]
        m = self.size_multiple
        pad_h = (m - h % m) % m
        pad_w = (m - w % m) % m
        # Unconditional (a zero pad is a no-op): a trace for ONNX must record the pad for every size, not
        # bake in the branch taken by the example's size.
        x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        y = self.up1(x5, x4)
        y = self.up2(y, x3)
        y = self.up3(y, x2)
        y = self.up4(y, x1)
        return self.outc(y)[:, :, :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        """Protected images ``x' = clamp(x + U(x), 0, 1)`` ``(N, C, H, W)`` for canonical ``x`` ``(N, C, H, W)``."""
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check(x)
        return torch.clamp(x + self.perturbation(x), 0.0, 1.0)


@register_model("unet-perturbation", kind="generator")
def unet_perturbation(
    num_classes: int, in_channels: int, image_size: tuple[int, int], *, width: int = 32
) -> UNetPerturbation:
    """Protective perturbation U-Net (Sec. 3.2). ``num_classes`` is ignored and ``image_size`` only
    recorded (any input size works). Option: ``width`` (default 32, the paper's 7.766 M parameters)."""
    del num_classes, image_size
    return UNetPerturbation(in_channels, check_int(width, "width"))
