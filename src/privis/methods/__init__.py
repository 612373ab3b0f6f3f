"""Protection methods, found by name in a registry (``privis.methods.create("veil", ...)``)."""

from __future__ import annotations

from typing import Any

from privis.methods.base import Protector, check_images, check_labels
from privis.registry import Registry

#: The registry of protection methods: classes keyed by their ``name`` (:class:`privis.registry.Registry`).
REGISTRY: Registry[type[Protector]] = Registry("method", tuple(
    f"privis.methods.{m}" for m in ("baselines", "dp_image", "fsap", "instahide", "latent_anonymizer",
                                    "object_hiding", "perturbation", "region_baselines", "veil", "visualmixer")))

#: Class decorator adding a protector to the registry under ``cls.name``.
register = REGISTRY.register
#: The protector class registered under a name (an unknown name raises ``InvalidInputError``).
get = REGISTRY.get


def available() -> dict[str, type[Protector]]:
    """Registered protector classes by name, sorted."""
    return REGISTRY.items()


def create(name: str, /, *, random_state: int | None = None, **params: Any) -> Protector:
    """A protector of the method registered as ``name``, its parameters checked before any work.

    Args:
        name: a registered method (:func:`available`).
        random_state: the seed (``None``: OS entropy). Passed only to methods that declare themselves
            ``stochastic`` (the tag every method with a ``random_state`` parameter sets); dropped for the
            others, so callers seed any method the same way.
        **params: the method's other parameters.

    Raises:
        InvalidInputError: unknown name, a parameter the method does not take, or a value outside its
            declaration.
    """
    if get(name).stochastic:
        params["random_state"] = random_state
    protector: Protector = REGISTRY.create(name, **params)
    return protector


__all__ = ["REGISTRY", "Protector", "available", "check_images", "check_labels", "create", "get", "register"]
