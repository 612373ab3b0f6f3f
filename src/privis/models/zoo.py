"""The model zoo: small classifiers for 8x8 to 64x64+ images, grey or RGB, behind the registry.

Every model takes canonical images (``(N, C, H, W)`` float32 in ``[0, 1]``) and, as its first step,
normalises them with mean :data:`INPUT_MEAN` and std :data:`INPUT_STD` (0.5 and 0.5, so ``[0, 1]`` maps to
``[-1, 1]``). Normalising inside the model keeps one image form everywhere (``docs/architecture.md``) and lets methods
that work in ``[-1, 1]`` (Veil) feed any model canonical images. Every model returns logits
``(N, num_classes)``.

Feature-layer names (for :class:`privis.models.FeatureExtractor`), per architecture:

- ``lenet5``: ``conv1``, ``pool1``, ``conv2``, ``pool2``, ``avgpool``, ``fc1``, ``fc2``, ``fc3`` (the logits
  layer). The Veil paper's Table 5 layers Conv/Fc1/Fc2/Fc3 are ``conv2``/``fc1``/``fc2``/``fc3``.
- ``alexnet``: ``conv1`` .. ``conv5``, ``pool1`` .. ``pool3``, ``avgpool``, ``drop1``, ``fc1``, ``drop2``,
  ``fc2``, ``fc3`` (logits).
- ``vgg``: VGG-11 with BatchNorm; ``block1`` .. ``block5`` (each ``conv-bn-relu`` units then a max-pool;
  sub-layers ``block1.0`` ...), ``avgpool``, ``fc1``, ``drop1``, ``fc2``, ``drop2``, ``fc3`` (logits).
- ``resnet18``: ``conv1``, ``bn1``, ``layer1`` .. ``layer4`` (sub-blocks ``layer1.0`` ...), ``avgpool``,
  ``fc`` (logits).
- ``vit``: ``patch_embed``, ``pos_drop``, ``blocks.0`` .. ``blocks.5``, ``norm``, ``head`` (logits).

Convolutional nets use ceil-mode max-pools and adaptive average pools, so they accept any input size
(even smaller than 8x8); ``lenet5`` pads its second convolution when built for inputs smaller than 20 px.
The ViT's position embedding is sized from ``image_size`` and interpolated for other input sizes.
Activations are never computed in place, so a forward hook sees a layer's own output.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.models.registry import register_model

#: Mean and std every model normalises its ``[0, 1]`` input with, as its first step.
INPUT_MEAN = 0.5
INPUT_STD = 0.5


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise InvalidInputError(f"{what} must be a float in [0, 1), got {value!r}")
    return float(value)


class ImageClassifier(nn.Module):
    """Base class of the zoo: checks the input's shape, normalises it, then calls ``forward_features``.

    Attributes:
        num_classes: number of logits.
        in_channels: expected input channels.
        image_size: ``(H, W)`` the model was built for.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` for canonical images ``x`` ``(N, C, H, W)`` in ``[0, 1]``."""
        checking = not torch.jit.is_tracing() and not torch.jit.is_scripting()
        if checking and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise InvalidInputError(
                f"{type(self).__name__} expects input (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.forward_normalized((x - INPUT_MEAN) / INPUT_STD)

    def forward_normalized(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Logits for images already normalised to ``[-1, 1]``."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- LeNet-5


class LeNet5(ImageClassifier):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max-pooling, as used by the Veil paper.

    ``conv1`` (6 ch, 5x5, padding 2) -> ReLU -> ``pool1`` -> ``conv2`` (16 ch, 5x5) -> ReLU -> ``pool2``
    -> ``avgpool`` (adaptive, to 5x5, so ``fc1`` always sees 16*5*5 = 400 inputs) -> ``fc1`` (120) -> ReLU
    -> ``fc2`` (84) -> ReLU -> ``fc3`` (logits). For 28x28 inputs this is the classic network (the
    adaptive pool is the identity). When the map after ``pool1`` is smaller than 10 px (inputs under
    20 px, e.g. 8x8 digits) ``conv2`` gets padding 2, otherwise it would have nothing to convolve.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__(num_classes, in_channels, image_size)
        pooled = min(math.ceil(s / 2) for s in image_size)
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.pool1 = nn.MaxPool2d(2, ceil_mode=True)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, padding=0 if pooled >= 10 else 2)
        self.pool2 = nn.MaxPool2d(2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d(5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward_normalized(self, x: Tensor) -> Tensor:
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = torch.flatten(self.avgpool(x), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@register_model("lenet5")
def lenet5(num_classes: int, in_channels: int, image_size: tuple[int, int]) -> LeNet5:
    """Classic LeNet-5 (about 62k parameters for 1x28x28 inputs and 10 classes)."""
    return LeNet5(num_classes, in_channels, image_size)


# --------------------------------------------------------------------------------------------- AlexNet


class AlexNet(ImageClassifier):
    """AlexNet (Krizhevsky et al., 2012) scaled for 28-32 px inputs, CIFAR-style.

    Five convolutions (64-192-384-256-256 channels; 5x5, 5x5, 3x3, 3x3, 3x3, stride 1, same padding) with
    ReLU, 2x2 max-pools after ``conv1``, ``conv2`` and ``conv5``, an adaptive average pool to 2x2, then
    ``drop1`` -> ``fc1`` (1024) -> ReLU -> ``drop2`` -> ``fc2`` (1024) -> ReLU -> ``fc3`` (logits).
    """

    def __init__(
        self, num_classes: int, in_channels: int, image_size: tuple[int, int], dropout: float = 0.5
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=5, padding=2)
        self.pool1 = nn.MaxPool2d(2, ceil_mode=True)
        self.conv2 = nn.Conv2d(64, 192, kernel_size=5, padding=2)
        self.pool2 = nn.MaxPool2d(2, ceil_mode=True)
        self.conv3 = nn.Conv2d(192, 384, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, kernel_size=3, padding=1)
        self.pool3 = nn.MaxPool2d(2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(256 * 2 * 2, 1024)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, num_classes)

    def forward_normalized(self, x: Tensor) -> Tensor:
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = self.pool3(F.relu(self.conv5(x)))
        x = torch.flatten(self.avgpool(x), 1)
        x = F.relu(self.fc1(self.drop1(x)))
        x = F.relu(self.fc2(self.drop2(x)))
        return self.fc3(x)


@register_model("alexnet")
def alexnet(
    num_classes: int, in_channels: int, image_size: tuple[int, int], *, dropout: float = 0.5
) -> AlexNet:
    """Small-input AlexNet (about 4 M parameters). Option: ``dropout`` (default 0.5)."""
    return AlexNet(num_classes, in_channels, image_size, dropout=_probability(dropout, "dropout"))


# ------------------------------------------------------------------------------------------------- VGG

#: VGG-11 ("configuration A", Simonyan & Zisserman 2015): convolutions per block and width multipliers.
_VGG11_BLOCKS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 4), (2, 8), (2, 8))


class VGG(ImageClassifier):
    """VGG-11 with BatchNorm, widths scaled by ``width`` (64 is the paper's; 32 by default here).

    ``block1`` .. ``block5`` each hold ``conv3x3-BN-ReLU`` units then a 2x2 ceil-mode max-pool (so 8x8
    inputs work), followed by ``avgpool`` (adaptive, 1x1), ``fc1`` (``hidden``) -> ReLU -> ``drop1`` ->
    ``fc2`` (``hidden``) -> ReLU -> ``drop2`` -> ``fc3`` (logits), as CIFAR-sized VGGs do.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        width: int = 32,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        channels = in_channels
        for index, (convs, multiplier) in enumerate(_VGG11_BLOCKS, start=1):
            layers: list[nn.Module] = []
            for _ in range(convs):
                out = width * multiplier
                layers += [
                    nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(),
                ]
                channels = out
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            self.add_module(f"block{index}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.fc3 = nn.Linear(hidden, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_normalized(self, x: Tensor) -> Tensor:
        for index in range(1, len(_VGG11_BLOCKS) + 1):
            x = getattr(self, f"block{index}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        x = self.drop1(F.relu(self.fc1(x)))
        x = self.drop2(F.relu(self.fc2(x)))
        return self.fc3(x)


@register_model("vgg")
def vgg(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    *,
    width: int = 32,
    hidden: int = 512,
    dropout: float = 0.5,
) -> VGG:
    """VGG-11-BN at half width (about 2.7 M parameters). Options: ``width``, ``hidden``, ``dropout``."""
    return VGG(
        num_classes,
        in_channels,
        image_size,
        width=check_int(width, "width"),
        hidden=check_int(hidden, "hidden"),
        dropout=_probability(dropout, "dropout"),
    )


# ---------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., 2016): two 3x3 conv-BN, identity or 1x1 projection shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(ImageClassifier):
    """ResNet-18 with a CIFAR-style stem: 3x3 stride-1 ``conv1`` + ``bn1``, no initial max-pool.

    ``layer1`` .. ``layer4`` hold two basic blocks each (widths ``width`` x 1, 2, 4, 8; stride 2 from
    ``layer2`` on), then ``avgpool`` (adaptive, 1x1) and ``fc`` (logits).
    """

    def __init__(
        self, num_classes: int, in_channels: int, image_size: tuple[int, int], width: int = 64
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes = width
        layers = []
        for index, multiplier in enumerate((1, 2, 4, 8), start=1):
            out = width * multiplier
            stride = 1 if index == 1 else 2
            layers.append(nn.Sequential(BasicBlock(planes, out, stride), BasicBlock(out, out)))
            planes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_normalized(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("resnet18")
def resnet18(num_classes: int, in_channels: int, image_size: tuple[int, int], *, width: int = 64) -> ResNet18:
    """CIFAR-style ResNet-18 (about 11 M parameters at ``width`` 64)."""
    return ResNet18(num_classes, in_channels, image_size, width=check_int(width, "width"))


# ------------------------------------------------------------------------------------------------- ViT


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (Vaswani et al., 2017).

    Written out with matmuls rather than a fused kernel so it traces, runs deterministically on CPU and
    supports higher-order gradients.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def default_patch_size(image_size: tuple[int, int]) -> int:
    """Patch side for a ViT on ``image_size``: 2 below 16 px, 4 up to 64 px, else at most 16x16 patches."""
    if min(image_size) < 16:
        return 2
    if max(image_size) <= 64:
        return 4
    return math.ceil(max(image_size) / 16)


class ViT(ImageClassifier):
    """A small Vision Transformer (Dosovitskiy et al., 2021) for small images.

    ``patch_embed`` (a strided convolution; inputs whose size is not a multiple of the patch are padded at
    the bottom/right with the normalised mid-grey 0) -> prepend a learnable class token -> add the
    learnable position embedding (sized for ``image_size``, bilinearly interpolated for other sizes) ->
    ``pos_drop`` -> ``blocks.0`` .. ``blocks.{depth-1}`` -> ``norm`` -> ``head`` on the class token.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int = 128,
        depth: int = 6,
        heads: int = 4,
        mlp_dim: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        self.patch_size = patch_size
        self.grid = (math.ceil(image_size[0] / patch_size), math.ceil(image_size[1] / patch_size))
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """The position embedding for a ``grid_h`` x ``grid_w`` patch grid (interpolated if not native)."""
        if (grid_h, grid_w) == self.grid:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, self.grid[0], self.grid[1], dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)], dim=1)

    def forward_normalized(self, x: Tensor) -> Tensor:
        p = self.patch_size
        h, w = int(x.shape[-2]), int(x.shape[-1])
        pad_h, pad_w = (-h) % p, (-w) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)
        grid_h, grid_w = int(x.shape[-2]), int(x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self._position_embedding(grid_h, grid_w))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


@register_model("vit")
def vit(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    *,
    patch_size: int | None = None,
    dim: int = 128,
    depth: int = 6,
    heads: int = 4,
    mlp_dim: int = 256,
    dropout: float = 0.0,
) -> ViT:
    """Small ViT (about 0.8 M parameters): dim 128, depth 6, 4 heads, MLP 256, class token.

    ``patch_size`` defaults to :func:`default_patch_size` (2 under 16 px, 4 up to 64 px).
    """
    patch = default_patch_size(image_size) if patch_size is None else check_int(patch_size, "patch_size")
    dim = check_int(dim, "dim")
    heads = check_int(heads, "heads")
    if dim % heads:
        raise InvalidInputError(f"dim ({dim}) must be divisible by heads ({heads})")
    return ViT(
        num_classes,
        in_channels,
        image_size,
        patch,
        dim=dim,
        depth=check_int(depth, "depth"),
        heads=heads,
        mlp_dim=check_int(mlp_dim, "mlp_dim"),
        dropout=_probability(dropout, "dropout"),
    )
