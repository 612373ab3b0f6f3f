"""Protection methods, found by name in a registry (``privis.methods.create("veil", ...)``)."""

from __future__ import annotations

from privis.methods.base import Protector, check_images, check_labels
from privis.registry import ClassRegistry

_REGISTRY: ClassRegistry[Protector] = ClassRegistry("method", tuple(
    f"privis.methods.{m}" for m in ("baselines", "instahide", "perturbation", "veil", "visualmixer")))

#: Class decorator adding a protector to the registry under ``cls.name``.
register = _REGISTRY.register
#: Registered protectors by name.
available = _REGISTRY.available
#: Instantiate the protector registered under a name with keyword parameters.
create = _REGISTRY.create


__all__ = ["Protector", "available", "check_images", "check_labels", "create", "register"]
