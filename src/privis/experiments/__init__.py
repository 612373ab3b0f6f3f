"""Named, reproducible experiments; each returns a :class:`privis.results.Result`.

``privis experiment NAME`` looks experiments up here. An experiment is a function taking keyword
options (at least ``data``, ``seed`` and ``quick``) and returning a ``Result``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from privis.registry import Registry
from privis.results import Result

ExperimentFn = Callable[..., Result]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, one-line description and function."""

    name: str
    description: str
    run: ExperimentFn


#: The registry of experiment functions (:class:`privis.registry.Registry`), each with a ``description``.
REGISTRY: Registry[ExperimentFn] = Registry("experiment", tuple(
    f"privis.experiments.{m}" for m in ("veil_tables", "veil_frontier", "demo", "visualmixer_tables",
                                        "perturbation_tables", "leaderboard", "dp_image_tables", "fsap_tables",
                                        "object_hiding_tables", "anonymizer_tables")))


def register_experiment(name: str, description: str) -> Callable[[ExperimentFn], ExperimentFn]:
    """Decorator registering ``fn`` as experiment ``name``.

    Raises:
        DuplicateNameError: (from the decorator) ``name`` is another experiment's.
    """
    return REGISTRY.register(name, description=description)


def get(name: str) -> Experiment:
    """The experiment registered as ``name``.

    Raises:
        InvalidInputError: unknown name; the message lists the available ones.
    """
    entry = REGISTRY.entry(name)
    return Experiment(entry.name, entry.description, entry.obj)


def available() -> dict[str, Experiment]:
    """Every registered experiment by name, sorted."""
    return {name: get(name) for name in REGISTRY.list()}


__all__ = ["REGISTRY", "Experiment", "available", "get", "register_experiment"]
