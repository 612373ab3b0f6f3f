"""Named, reproducible experiments; each returns a :class:`privis.results.Result`.

``privis experiment NAME`` looks experiments up here. An experiment is a function taking keyword
options (at least ``data``, ``seed`` and ``quick``) and returning a ``Result``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from privis.errors import InvalidInputError
from privis.results import Result


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    run: Callable[..., Result]


_REGISTRY: dict[str, Experiment] = {}
_MODULES = ("privis.experiments.veil_tables", "privis.experiments.demo",
            "privis.experiments.visualmixer_tables", "privis.experiments.perturbation_tables",
            "privis.experiments.leaderboard")


def register_experiment(name: str, description: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator registering ``fn`` as experiment ``name``."""

    def wrap(fn: Callable[..., Result]) -> Callable[..., Result]:
        _REGISTRY[name] = Experiment(name, description, fn)
        return fn

    return wrap


def available() -> dict[str, Experiment]:
    for module in _MODULES:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    registry = available()
    if name not in registry:
        raise InvalidInputError(f"unknown experiment {name!r}; available: {', '.join(registry)}")
    return registry[name]
