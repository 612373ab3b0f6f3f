"""Protection methods, found by name in a registry (``privis.methods.create("veil", ...)``)."""

from __future__ import annotations

from typing import Any

from privis.errors import InvalidInputError
from privis.methods.base import Protector, check_images, check_labels

_REGISTRY: dict[str, type[Protector]] = {}


def register(cls: type[Protector]) -> type[Protector]:
    """Class decorator adding a protector to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set a non-empty class attribute 'name'")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    from privis.methods import baselines, instahide, perturbation, veil, visualmixer  # noqa: F401


def available() -> dict[str, type[Protector]]:
    """Registered protectors by name."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def create(name: str, **params: Any) -> Protector:
    """Instantiate the protector registered under ``name`` with ``params``."""
    registry = available()
    if name not in registry:
        raise InvalidInputError(f"unknown method {name!r}; available: {', '.join(registry)}")
    return registry[name](**params)


__all__ = ["Protector", "available", "check_images", "check_labels", "create", "register"]
