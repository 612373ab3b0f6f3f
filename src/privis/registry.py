"""One registry for every kind of named thing, in the style of timm's model registry (docs/architecture.md).

Methods, attacks, models, optimizers, experiments and datasets each keep one :class:`Registry`
(:mod:`privis.methods`, :mod:`privis.attacks`, :mod:`privis.models`, :mod:`privis.experiments`,
:mod:`privis.data`), and every one behaves the same way:

- ``register``: a decorator adding a class (found under its ``name`` attribute) or a factory function (under
  the name given), with metadata such as ``description`` or ``kind``. A name registered twice is refused,
  and the message names both places that register it.
- ``list(filter)``: the sorted names, optionally those matching an ``fnmatch`` pattern (``"visual*"``) and
  metadata values (``kind="generator"``).
- ``get(name)``: the class or function; an unknown name is an error that lists the available names.
- ``create(name, *args, **kwargs)``: call it, after checking the keyword arguments against its signature.

Built-in modules are imported on the first lookup, so registering is all a new entry needs to be found.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from privis.errors import InvalidInputError

T = TypeVar("T", bound=Callable[..., Any])

#: The sorted names :meth:`Registry.list` returns (an alias: inside the class ``list`` names the method).
Names = list[str]


class DuplicateNameError(InvalidInputError):
    """A name was registered twice in one registry (raised when the second registration runs)."""


def _where(obj: Any) -> str:
    """``module.qualname`` of a class or function, for messages."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the class or factory function and its metadata.

    Attributes:
        name: the registry key.
        obj: the class or factory function.
        meta: free metadata given at registration (e.g. ``description``, ``kind``).
    """

    name: str
    obj: T
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """``meta["description"]`` (called when it is a function, for text that depends on the machine), else
        the first line of the object's docstring."""
        text = self.meta.get("description")
        if callable(text):
            text = text()
        if text is None:
            text = (getattr(self.obj, "__doc__", None) or "").strip().splitlines()[:1]
            text = text[0] if text else ""
        return str(text)


class Registry(Generic[T]):
    """Names -> classes or factory functions of one kind, with metadata.

    Args:
        what: what the entries are, for messages (``"method"``, ``"model"``, ...).
        builtin_modules: modules whose import registers the built-in entries; imported on the first lookup.

    Examples:
        >>> reg: Registry = Registry("colour")
        >>> @reg.register("red", description="a warm colour")
        ... def red(level: int = 255) -> tuple[int, int, int]:
        ...     return (level, 0, 0)
        >>> reg.list(), reg.create("red", level=9)
        (['red'], (9, 0, 0))
        >>> reg.get("blue")
        Traceback (most recent call last):
        ...
        privis.errors.InvalidInputError: unknown colour 'blue'; available: red
    """

    def __init__(self, what: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.what = what
        self.builtin_modules = builtin_modules
        self._entries: dict[str, Entry[T]] = {}

    @overload
    def register(self, obj: T, /) -> T: ...

    @overload
    def register(self, name: str, /, **meta: Any) -> Callable[[T], T]: ...

    def register(self, obj: T | str, /, **meta: Any) -> T | Callable[[T], T]:
        """Add an entry: ``@reg.register`` on a class with a ``name`` attribute, or
        ``@reg.register("name", description=..., kind=...)`` on a class or function.

        Raises:
            TypeError: a class without a non-empty ``name``, or a name that is not a non-empty string.
            DuplicateNameError: the name is taken by another object (the message names both).
        """
        if isinstance(obj, str):
            name = obj

            def decorator(target: T) -> T:
                self._add(name, target, meta)
                return target

            if not name:
                raise TypeError(f"a {self.what} name must be a non-empty string")
            return decorator
        name = getattr(obj, "name", "")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{_where(obj)} must set a non-empty class attribute 'name' to be registered as a "
                            f"{self.what}")
        self._add(name, obj, meta)
        return obj

    def _add(self, name: str, obj: T, meta: Mapping[str, Any]) -> None:
        old = self._entries.get(name)
        if old is not None and old.obj is not obj:
            raise DuplicateNameError(f"{self.what} {name!r} is already registered by {_where(old.obj)}; "
                                     f"{_where(obj)} registers it again: choose another name")
        self._entries[name] = Entry(name, obj, dict(meta))

    def _load(self) -> dict[str, Entry[T]]:
        for module in self.builtin_modules:
            importlib.import_module(module)
        return self._entries

    def list(self, filter: str | None = None, **meta: Any) -> Names:  # noqa: A002 - timm's name
        """Registered names, sorted; with ``filter``, those matching the ``fnmatch`` pattern (``*``, ``?``,
        ``[seq]``, case-sensitive); with ``meta``, those whose metadata has these values."""
        return sorted(name for name, entry in self._load().items()
                      if (filter is None or fnmatch.fnmatchcase(name, filter))
                      and all(entry.meta.get(k) == v for k, v in meta.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def entry(self, name: str) -> Entry[T]:
        """The entry (object and metadata) registered under ``name``.

        Raises:
            InvalidInputError: unknown name; the message lists the available ones.
        """
        entries = self._load()
        if name not in entries:
            available = ", ".join(sorted(entries)) or "(none)"
            raise InvalidInputError(f"unknown {self.what} {name!r}; available: {available}")
        return entries[name]

    def get(self, name: str) -> T:
        """The class or function registered under ``name``.

        Raises:
            InvalidInputError: unknown name; the message lists the available ones.
        """
        return self.entry(name).obj

    def items(self) -> dict[str, T]:
        """Every registered object by name, sorted."""
        entries = self._load()
        return {name: entries[name].obj for name in sorted(entries)}

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the class or function registered under ``name`` with the arguments; an instance's
        ``validate_params`` (when it has one) then checks the values before any work.

        Raises:
            InvalidInputError: unknown name, a keyword the signature does not take (the message lists the
                valid ones), arguments that do not bind, or (from ``validate_params``) a value outside its
                declaration.
        """
        obj = self.get(name)
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature are called as they are
            signature = None
        if signature is not None:
            params = signature.parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                valid = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
                unknown = sorted(set(kwargs) - set(valid))
                if unknown:
                    raise InvalidInputError(f"{self.what} {name!r} has no parameter {', '.join(unknown)}; "
                                            f"valid: {', '.join(valid) or '(none)'}")
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidInputError(f"bad arguments for {self.what} {name!r}: {exc}") from exc
        instance = obj(*args, **kwargs)
        validate = getattr(instance, "validate_params", None)
        if callable(validate):
            validate()
        return instance


__all__ = ["DuplicateNameError", "Entry", "Names", "Registry"]
