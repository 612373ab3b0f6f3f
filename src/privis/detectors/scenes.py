"""Built-in multi-object scenes with boxes and labels, composed offline from real images.

Each scene is a crop of a scikit-image sample photograph (brick, grass, gravel, moon, coffee, rocket, chelsea,
hubble_deep_field; no human face), resized to ``size x size``, with 1 to ``max_objects`` objects pasted on it:

- ``face``: scikit-image's LFW crops (:func:`privis.data.lfw_subset`, the first 100 are faces), pasted as opaque
  squares (a face crop has no background to cut away);
- ``digit``: scikit-learn's handwritten digits, the ink as the mask, in a random colour;
- ``clothing`` (T-shirt, trouser, pullover, dress, coat, shirt), ``footwear`` (sandal, sneaker, ankle boot) and
  ``bag``: Fashion-MNIST items, the item's own intensity as the mask (Fashion-MNIST items lie on black), tinted.
  When Fashion-MNIST is not installed these three classes are absent and the scenes hold faces and digits only
  (:attr:`Scenes.notes` says so).

Objects are 25-50% of the scene side, placed so that no two overlap by more than 10% IoU; a box is the tight
box of the pasted mask (pixels, ``xyxy``). Train and test scenes draw from disjoint source items (faces 0-74 vs
75-99, the digits' and Fashion-MNIST's own train/test splits) and from different crops of the textures (left
and right parts of each photograph), so a detector's test mAP is measured on objects and backgrounds it never
saw.

This is the privis analogue of the street scenes on which H. Xue, "A Study on Image Privacy Protection in
Response to Artificial Intelligence Technology", PhD thesis, University of Technology Sydney, 2023, Chapter 3
hides faces and licence plates from a detector: the private classes (:math:`C_{private}`, default ``face``) are
configurable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from privis.data.checks import check_int
from privis.detectors.base import Detections, box_iou
from privis.errors import InvalidInputError
from privis.random import torch_generator

__all__ = ["SCENE_CLASSES", "TEXTURES", "Scenes", "make_scenes"]

#: Every class a scene can hold; index 0 is the background.
SCENE_CLASSES = ("background", "face", "digit", "clothing", "footwear", "bag")
#: scikit-image sample photographs the backgrounds are cut from (none shows a human face).
TEXTURES = ("brick", "grass", "gravel", "moon", "coffee", "rocket", "chelsea", "hubble_deep_field")
#: Fashion-MNIST label -> scene class name.
_FASHION_GROUP = {0: "clothing", 1: "clothing", 2: "clothing", 3: "clothing", 4: "clothing", 6: "clothing",
                  5: "footwear", 7: "footwear", 9: "footwear", 8: "bag"}
#: Faces of lfw_subset used for train and for test scenes.
_FACE_SPLIT = {"train": slice(0, 75), "test": slice(75, 100)}
#: Items of each source kept in memory per split (plenty for variety, cheap to load).
_ITEMS_PER_SOURCE = 2000


@dataclass(frozen=True)
class Scenes:
    """Scenes and their ground truth.

    Attributes:
        images: ``(N, 3, S, S)`` float32 in ``[0, 1]``.
        objects: per scene, the pasted objects as :class:`Detections` (pixel ``xyxy`` boxes, class ids into
            ``class_names``, scores 1).
        class_names: ``("background", ...)``; the classes the scenes may hold.
        private_classes: ids of the private classes (:math:`C_{private}`) in ``class_names``.
        notes: what the caller should know (e.g. a missing source).
    """

    images: Tensor
    objects: list[Detections]
    class_names: tuple[str, ...]
    private_classes: tuple[int, ...]
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=2)
def _textures(split: str) -> tuple[Tensor, ...]:
    """Each texture as ``(3, H, W)`` float32: the left 70% of the photograph for train, the right 30% for test."""
    from skimage import data as skdata

    out = []
    for name in TEXTURES:
        array = np.asarray(getattr(skdata, name)(), dtype=np.float32) / 255.0
        image = torch.from_numpy(array).unsqueeze(0).expand(3, -1, -1) if array.ndim == 2 else \
            torch.from_numpy(array[..., :3]).permute(2, 0, 1)
        cut = int(image.shape[-1] * 0.7)
        out.append((image[..., :cut] if split == "train" else image[..., cut:]).contiguous())
    return tuple(out)


@lru_cache(maxsize=2)
def _sources(split: str) -> tuple[dict[str, Tensor], bool]:
    """Grey items ``(K, h, w)`` in ``[0, 1]`` by class name, and whether Fashion-MNIST was found."""
    from privis.data import digits, lfw_subset
    from privis.data.idx import fashion_mnist, fashion_mnist_available

    items = {"face": lfw_subset("all", index=_FACE_SPLIT[split]).images[:, 0],
             "digit": digits(split).images[:, 0]}
    have_fashion = fashion_mnist_available()
    if have_fashion:
        fm = fashion_mnist(split, download=False, index=slice(0, 3 * _ITEMS_PER_SOURCE))
        groups = np.array([_FASHION_GROUP[int(label)] for label in fm.labels])
        for group in ("clothing", "footwear", "bag"):
            items[group] = fm.images[torch.from_numpy(groups == group), 0][:_ITEMS_PER_SOURCE]
    return items, have_fashion


def _resize(image: Tensor, height: int, width: int) -> Tensor:
    return F.interpolate(image[None, None], size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)[0, 0].clamp(0, 1)


def make_scenes(n: int, *, size: int = 64, seed: int | None = None, split: str = "train",
                private_classes: Sequence[str] = ("face",), max_objects: int = 3) -> Scenes:
    """``n`` scenes of ``size x size`` pixels with 1 to ``max_objects`` labelled objects each.

    Args:
        n: number of scenes (``>= 1``).
        size: side in pixels (``>= 32``).
        seed: the seed (``None``: OS entropy); the same seed and arguments give the same scenes.
        split: ``"train"`` or ``"test"``: disjoint source items and texture crops.
        private_classes: names in :data:`SCENE_CLASSES` (not ``"background"``) to treat as private.
        max_objects: most objects per scene (``>= 1``).

    Returns:
        :class:`Scenes`; ``class_names`` is :data:`SCENE_CLASSES`, or its first three when Fashion-MNIST is
        missing.

    Raises:
        InvalidInputError: a bad count, size or split, or an unknown or absent private class.
        DatasetError: a scikit-image or scikit-learn sample is unavailable.

    Examples:
        >>> scenes = make_scenes(2, size=48, seed=0)
        >>> scenes.images.shape, scenes.class_names[:3], scenes.private_classes
        (torch.Size([2, 3, 48, 48]), ('background', 'face', 'digit'), (1,))
    """
    n = check_int(n, "n")
    size = check_int(size, "size", minimum=32)
    max_objects = check_int(max_objects, "max_objects")
    if split not in ("train", "test"):
        raise InvalidInputError(f"split must be 'train' or 'test', got {split!r}")
    items, have_fashion = _sources(split)
    class_names = SCENE_CLASSES if have_fashion else SCENE_CLASSES[:3]
    unknown = sorted(set(private_classes) - set(class_names[1:]))
    if unknown:
        raise InvalidInputError(f"private classes must be among {', '.join(class_names[1:])}, got "
                                f"{', '.join(map(repr, unknown))}")
    notes = [] if have_fashion else ["Fashion-MNIST is not installed: scenes hold faces and digits only"]
    textures = _textures(split)
    g = torch_generator(seed)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=g))

    def randint(high: int) -> int:
        return int(torch.randint(high, (), generator=g))

    images = torch.empty(n, 3, size, size)
    objects = []
    for i in range(n):
        tex = textures[randint(len(textures))]
        side = randint(min(tex.shape[-2:]) - size // 2) + size // 2
        y, x = randint(tex.shape[-2] - side + 1), randint(tex.shape[-1] - side + 1)
        crop = tex[:, y:y + side, x:x + side]
        scene = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)[0].clamp(0, 1)
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(1 + randint(max_objects)):
            label = 1 + randint(len(class_names) - 1)
            pool = items[class_names[label]]
            item = pool[randint(pool.shape[0])]
            h = max(4, round(size * uniform(0.25, 0.5)))
            w = h if label == 1 else max(4, round(h * uniform(0.8, 1.25)))
            w = min(w, size)
            top, left = randint(size - h + 1), randint(size - w + 1)
            grey = _resize(item, h, w)
            if label == 1:  # a face crop: opaque, its own grey levels
                mask = torch.ones_like(grey)
                colour = torch.ones(3, 1, 1)
            else:  # ink or an item on black: the intensity is the mask, the object is tinted
                mask = (grey * 2.5).clamp(0, 1)
                colour = torch.rand(3, 1, 1, generator=g) * 0.7 + 0.3
            rows, cols = torch.nonzero(mask > 0.5, as_tuple=True)
            if rows.numel() == 0:
                continue
            box = [left + float(cols.min()), top + float(rows.min()), left + float(cols.max()) + 1,
                   top + float(rows.max()) + 1]
            if boxes and float(box_iou(torch.tensor([box]), torch.tensor(boxes)).max()) > 0.1:
                continue
            region = scene[:, top:top + h, left:left + w]
            scene[:, top:top + h, left:left + w] = region * (1 - mask) + (grey * colour) * mask
            boxes.append(box)
            labels.append(label)
        images[i] = scene
        objects.append(Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  torch.tensor(labels, dtype=torch.long), torch.ones(len(labels))))
    private = tuple(sorted(class_names.index(name) for name in set(private_classes)))
    return Scenes(images, objects, class_names, private, notes)
