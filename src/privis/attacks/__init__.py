"""Attacks that try to undo or see through a protection, found by name in a registry (DESIGN.md, "Attacks").

``privis.attacks.create("filters").run(originals, protected, context=AttackContext(method="blur", ...))``
returns an :class:`AttackOutcome` whose leakage figures (|SSIM|, PSNR, auxiliary-classifier accuracy) are
measured against the originals with :mod:`privis.metrics`, the same way for every attack and method.
"""

from __future__ import annotations

from typing import Any

from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.errors import InvalidInputError

_REGISTRY: dict[str, type[Attack]] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator adding an attack to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set a non-empty class attribute 'name'")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    from privis.attacks import (  # noqa: F401
        auxiliary_recognition,
        filters,
        invariants,
        keyspace,
        learned_inversion,
        membership_inference,
        model_inversion,
        shredder,
    )


def available() -> dict[str, type[Attack]]:
    """Registered attacks by name."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def create(name: str, **params: Any) -> Attack:
    """Instantiate the attack registered under ``name`` with ``params``."""
    registry = available()
    if name not in registry:
        raise InvalidInputError(f"unknown attack {name!r}; available: {', '.join(registry)}")
    cls = registry[name]
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise InvalidInputError(f"attack {name!r} has no parameter {', '.join(unknown)}; valid: {cls._param_names()}")
    return cls(**params)


__all__ = ["Attack", "AttackContext", "AttackOutcome", "NotApplicableError", "available", "create",
           "register_attack"]
