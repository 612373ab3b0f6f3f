"""Built-in scenes: boxes, labels, reproducibility, held-out sources, private classes, the digits-only fallback."""

from __future__ import annotations

import pytest
import torch

from privis.detectors import box_iou
from privis.detectors import scenes as scenes_module
from privis.detectors.scenes import SCENE_CLASSES, make_scenes
from privis.errors import InvalidInputError


def test_scenes_are_canonical_reproducible_and_their_boxes_hold_the_objects() -> None:
    s = make_scenes(24, size=64, seed=3)
    assert s.images.shape == (24, 3, 64, 64) and s.images.dtype == torch.float32
    assert float(s.images.min()) >= 0 and float(s.images.max()) <= 1
    assert torch.equal(s.images, make_scenes(24, size=64, seed=3).images)
    assert not torch.equal(s.images, make_scenes(24, size=64, seed=4).images)
    assert s.class_names[0] == "background" and s.private_classes == (s.class_names.index("face"),)
    faces = 0
    for image, objs in zip(s.images, s.objects, strict=True):
        assert 1 <= len(objs) <= 3 and bool((objs.scores == 1).all())
        b = objs.boxes
        assert bool((b[:, :2] >= 0).all() and (b[:, 2:] <= 64).all() and (b[:, 2:] - b[:, :2] >= 4).all())
        assert bool((objs.labels >= 1).all() and (objs.labels < len(s.class_names)).all())
        iou = box_iou(b, b) - torch.eye(len(objs))
        assert float(iou.max()) <= 0.1 + 1e-6  # objects barely overlap
        for box, label in zip(b.long().tolist(), objs.labels.tolist(), strict=True):
            if label == 1:  # an opaque grey LFW face: the box's pixels have R = G = B (unless a later object covers)
                patch = image[:, box[1]:box[3], box[0]:box[2]]
                grey = ((patch[0] - patch[1]).abs() < 1e-6) & ((patch[1] - patch[2]).abs() < 1e-6)
                assert grey.float().mean() > 0.85
                faces += 1
    assert faces > 0


def test_private_classes_are_configurable_and_checked() -> None:
    s = make_scenes(2, size=32, seed=0, private_classes=("face", "digit"))
    assert s.private_classes == (1, 2)
    with pytest.raises(InvalidInputError, match="private classes"):
        make_scenes(2, seed=0, private_classes=("licence-plate",))
    with pytest.raises(InvalidInputError, match="split"):
        make_scenes(2, seed=0, split="val")
    with pytest.raises(InvalidInputError, match="size"):
        make_scenes(2, size=16, seed=0)


def test_test_scenes_use_other_faces_than_train_scenes() -> None:
    train, test = scenes_module._sources("train")[0]["face"], scenes_module._sources("test")[0]["face"]
    assert train.shape[0] + test.shape[0] == 100
    assert float(torch.cdist(train.flatten(1), test.flatten(1)).min()) > 0  # no face in both


def test_without_fashion_mnist_scenes_hold_faces_and_digits_and_say_so(monkeypatch) -> None:
    import privis.data.idx

    scenes_module._sources.cache_clear()
    monkeypatch.setattr(privis.data.idx, "fashion_mnist_available", lambda root=None: False)
    try:
        s = make_scenes(8, size=32, seed=0)
        assert s.class_names == SCENE_CLASSES[:3] and "Fashion-MNIST" in s.notes[0]
        assert set(torch.cat([o.labels for o in s.objects]).tolist()) <= {1, 2}
        with pytest.raises(InvalidInputError, match="face, digit"):
            make_scenes(2, seed=0, private_classes=("bag",))
    finally:
        scenes_module._sources.cache_clear()
