"""A registry of classes found by their ``name`` attribute (timm-style: register, list, create by name).

Protection methods and attacks each keep one (:mod:`privis.methods`, :mod:`privis.attacks`). Built-in
modules are imported on the first lookup, so registering is all a new class needs to be found.
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from privis.errors import InvalidInputError

T = TypeVar("T")


class ClassRegistry(Generic[T]):
    """Classes by ``cls.name``; ``create`` checks the name and the constructor parameters.

    Args:
        kind: what the classes are, for messages (``"method"``, ``"attack"``).
        builtin_modules: modules whose import registers the built-in classes.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...]) -> None:
        self.kind = kind
        self.builtin_modules = builtin_modules
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator adding ``cls`` under ``cls.name``."""
        name = getattr(cls, "name", "")
        if not name:
            raise TypeError(f"{cls.__name__} must set a non-empty class attribute 'name'")
        self._classes[name] = cls
        return cls

    def available(self) -> dict[str, type[T]]:
        """Registered classes by name, sorted."""
        for module in self.builtin_modules:
            importlib.import_module(module)
        return dict(sorted(self._classes.items()))

    def create(self, name: str, **params: Any) -> T:
        """Instantiate the class registered under ``name`` with ``params``.

        The instance's ``validate_params`` (when it has one) checks the values before any work.

        Raises:
            InvalidInputError: unknown name, a parameter the class's ``__init__`` does not take, or a value
                outside its declaration.
        """
        classes = self.available()
        if name not in classes:
            raise InvalidInputError(f"unknown {self.kind} {name!r}; available: {', '.join(classes)}")
        cls = classes[name]
        valid = cls._param_names()  # type: ignore[attr-defined]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise InvalidInputError(f"{self.kind} {name!r} has no parameter {', '.join(unknown)}; valid: {valid}")
        instance = cls(**params)
        validate = getattr(instance, "validate_params", None)
        if validate is not None:
            validate()
        return instance
