"""Attacks that try to undo or see through a protection, found by name in a registry (``docs/architecture.md``).

``privis.attacks.create("filters").run(originals, protected, context=AttackContext(method="blur", ...))``
returns an :class:`AttackOutcome` whose leakage figures (|SSIM|, PSNR, auxiliary-classifier accuracy) are
measured against the originals with :mod:`privis.metrics`, the same way for every attack and method.
"""

from __future__ import annotations

from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.registry import ClassRegistry

_REGISTRY: ClassRegistry[Attack] = ClassRegistry("attack", tuple(
    f"privis.attacks.{m}" for m in ("auxiliary_recognition", "filters", "invariants", "learned_inversion",
                                    "membership_inference", "model_inversion", "shredder")))

#: Class decorator adding an attack to the registry under ``cls.name``.
register_attack = _REGISTRY.register
#: Registered attacks by name.
available = _REGISTRY.available
#: Instantiate the attack registered under a name with keyword parameters.
create = _REGISTRY.create


__all__ = ["Attack", "AttackContext", "AttackOutcome", "NotApplicableError", "available", "create",
           "register_attack"]
