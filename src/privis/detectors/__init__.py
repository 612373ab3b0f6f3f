"""Object detectors behind one contract, for hiding private objects and measuring detection rates.

- :class:`Detector`: images ``(N, C, H, W)`` → per image :class:`Detections` (pixel ``xyxy`` boxes, class ids,
  scores; class 0 is background), and for white-box detectors per-region logits (:class:`RegionLogits`) and
  the classification loss of Eq. 3.8 against :func:`region_targets`.
- :data:`REGISTRY`: detectors by name (``privis.registry``).
"""

from privis.detectors.base import BACKGROUND, Detections, Detector, RegionLogits, box_iou, region_targets
from privis.registry import Registry

#: Detectors by name; built-in modules register on first lookup.
REGISTRY: Registry[type[Detector]] = Registry("detector", tuple(
    f"privis.detectors.{m}" for m in ("centerface", "dlib_detectors", "mtcnn", "scene_detector", "torchvision_frcnn")))

#: Class decorator adding a detector to the registry under ``cls.name``.
register = REGISTRY.register

__all__ = ["BACKGROUND", "REGISTRY", "Detections", "Detector", "RegionLogits", "box_iou", "region_targets", "register"]
