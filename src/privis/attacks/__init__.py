"""Attacks that try to undo or see through a protection, found by name in a registry (``docs/architecture.md``).

``privis.attacks.create("filters").run(originals, protected, context=AttackContext(method="blur", ...))``
returns an :class:`AttackOutcome` whose leakage figures (|SSIM|, PSNR, auxiliary-classifier accuracy) are
measured against the originals with :mod:`privis.metrics`, the same way for every attack and method.
"""

from __future__ import annotations

from typing import Any

from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.registry import Registry

#: The registry of attacks: classes keyed by their ``name`` (:class:`privis.registry.Registry`).
REGISTRY: Registry[type[Attack]] = Registry("attack", tuple(
    f"privis.attacks.{m}" for m in ("auxiliary_recognition", "filters", "invariants", "learned_inversion",
                                    "membership_inference", "model_inversion", "shredder")))

#: Class decorator adding an attack to the registry under ``cls.name``.
register_attack = REGISTRY.register
#: The attack class registered under a name (an unknown name raises ``InvalidInputError``).
get = REGISTRY.get


def available() -> dict[str, type[Attack]]:
    """Registered attack classes by name, sorted."""
    return REGISTRY.items()


def create(name: str, /, **params: Any) -> Attack:
    """An attack registered as ``name`` with ``params``, checked before any work.

    Raises:
        InvalidInputError: unknown name, a parameter the attack does not take, or a value outside its
            declaration.
    """
    attack: Attack = REGISTRY.create(name, **params)
    return attack


__all__ = ["REGISTRY", "Attack", "AttackContext", "AttackOutcome", "NotApplicableError", "available", "create",
           "get", "register_attack"]
