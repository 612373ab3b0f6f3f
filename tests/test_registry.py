"""The one registry (:class:`privis.registry.Registry`) behind methods, attacks, models, optimizers, experiments
and datasets: the same register/list/get/create, errors and duplicate rule for every kind."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

from privis import attacks, data, experiments, methods, models
from privis.data.registry import REGISTRY as DATASETS
from privis.errors import InvalidInputError
from privis.methods.base import ParamsMixin, Protector
from privis.models.optim import REGISTRY as OPTIMIZERS
from privis.registry import DuplicateNameError, Registry


class _Thing(ParamsMixin):
    name = "thing"

    def __init__(self, size: int = 1) -> None:
        self.size = size


def _reg() -> Registry[Any]:
    reg: Registry[Any] = Registry("thing")
    reg.register(_Thing)

    @reg.register("make-pair", description="a pair", kind="tuple")
    def make_pair(a: int, b: int = 0) -> tuple[int, int]:
        return (a, b)

    @reg.register("make-list", kind="list")
    def make_list(a: int) -> list[int]:
        """A one-element list."""
        return [a]

    return reg


def test_register_list_get_create() -> None:
    reg = _reg()
    assert reg.list() == ["make-list", "make-pair", "thing"]
    assert reg.list("make-*") == ["make-list", "make-pair"] and reg.list("*ing") == ["thing"]
    assert reg.list("?hing") == ["thing"] and reg.list("nothing*") == []
    assert reg.list(kind="tuple") == ["make-pair"] and reg.list("make-*", kind="list") == ["make-list"]
    assert reg.get("thing") is _Thing and list(reg.items()) == reg.list()
    assert reg.create("thing", size=3).size == 3
    assert reg.create("make-pair", 2, b=5) == (2, 5)
    assert reg.entry("make-pair").description == "a pair"
    assert reg.entry("make-list").description == "A one-element list."  # the docstring when none is given
    assert "thing" in reg and "other" not in reg


def test_errors_name_the_kind_the_name_and_the_choices() -> None:
    reg = _reg()
    for lookup in (reg.get, reg.create, reg.entry):
        with pytest.raises(InvalidInputError, match="unknown thing 'other'; available: make-list, make-pair, thing"):
            lookup("other")
    with pytest.raises(InvalidInputError, match="thing 'thing' has no parameter colour; valid: size"):
        reg.create("thing", colour=2)
    with pytest.raises(InvalidInputError, match="bad arguments for thing 'make-pair'"):
        reg.create("make-pair")  # a required argument missing
    with pytest.raises(InvalidInputError, match=r"unknown thing 'x'; available: \(none\)"):
        Registry("thing").get("x")

    class Nameless(_Thing):
        name = ""

    with pytest.raises(TypeError, match="non-empty class attribute 'name'"):
        reg.register(Nameless)


def test_create_checks_declared_parameter_values() -> None:
    with pytest.raises(InvalidInputError, match="sigma"):
        methods.create("blur", sigma=-1.0)


def _duplicate_registrations() -> dict[str, Callable[[], Any]]:
    """One attempt per kind to register a second object under a taken name."""

    def fn(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("never called")

    class Blur(Protector):
        name = "blur"

    class Filters(attacks.Attack):
        name = "filters"

    return {
        "method": lambda: methods.register(Blur),
        "attack": lambda: attacks.register_attack(Filters),
        "model": lambda: models.register_model("lenet5")(fn),
        "optimizer": lambda: models.register_optimizer("adam")(fn),
        "experiment": lambda: experiments.register_experiment("demo", "again")(fn),
        "dataset": lambda: DATASETS.register("digits")(fn),
    }


@pytest.mark.parametrize("kind", sorted(_duplicate_registrations()))
def test_duplicates_are_refused_for_every_kind_naming_both_places(kind: str) -> None:
    registry = {"method": methods.REGISTRY, "attack": attacks.REGISTRY, "model": models.registry.REGISTRY,
                "optimizer": OPTIMIZERS, "experiment": experiments.REGISTRY, "dataset": DATASETS}[kind]
    registry.list()  # the built-in entries are registered
    before = registry.items()
    with pytest.raises(DuplicateNameError, match=rf"^{kind} '[a-z0-9-]+' is already registered by privis\.\S+; "
                                                 rf"{re.escape(__name__)}\.\S+ registers it again") as info:
        _duplicate_registrations()[kind]()
    assert isinstance(info.value, InvalidInputError)
    assert registry.items() == before, "the first registration must stay"


def test_registering_the_same_object_again_is_harmless() -> None:
    reg = _reg()
    assert reg.register(_Thing) is _Thing and reg.list("thing") == ["thing"]


def test_every_kind_is_served_by_the_one_registry() -> None:
    assert methods.available() == methods.REGISTRY.items() and list(methods.available()) == methods.REGISTRY.list()
    assert attacks.available() == attacks.REGISTRY.items()
    assert models.available() == models.registry.REGISTRY.list()
    assert models.registry.REGISTRY.list(kind="generator") == ["unet-perturbation"]
    assert models.kind_of("lenet5") == "classifier" and models.kind_of("no-such-model") is None
    assert models.available_optimizers() == OPTIMIZERS.list() and "st-adam" in OPTIMIZERS.list()
    assert list(experiments.available()) == experiments.REGISTRY.list()
    assert experiments.get("demo").description == experiments.REGISTRY.entry("demo").description
    assert set(DATASETS.list(spec=None)) | {"folder:PATH", "npz:PATH"} == set(data.available())
    for kind, lookup in (("method", methods.get), ("attack", attacks.get), ("model", models.create),
                         ("optimizer", lambda n: models.make_optimizer(n, [], lr=0.1)),
                         ("experiment", experiments.get)):
        with pytest.raises(InvalidInputError, match=f"unknown {kind} 'nope'; available: "):
            lookup("nope")


def test_methods_and_attacks_reject_unknown_parameters_by_name() -> None:
    with pytest.raises(InvalidInputError, match="method 'blur' has no parameter radius"):
        methods.create("blur", radius=2)
    with pytest.raises(InvalidInputError, match="attack 'filters' has no parameter depth"):
        attacks.create("filters", depth=2)
    with pytest.raises(InvalidInputError, match="model 'lenet5' has no parameter depth"):
        models.create("lenet5", depth=2)


@pytest.mark.parametrize("name", methods.REGISTRY.list())
def test_methods_create_seeds_exactly_the_stochastic_methods(name: str) -> None:
    cls = methods.get(name)
    protector = methods.create(name, random_state=7)
    assert type(protector) is cls
    if cls.stochastic:
        assert protector.get_params()["random_state"] == 7
        assert methods.create(name).get_params()["random_state"] is None
    else:
        assert "random_state" not in protector.get_params()
    assert methods.create(name, random_state=None).get_params() == cls().get_params()


def test_the_optimizer_view_builds_a_registered_optimizer() -> None:
    weights = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZERS.list():
        optimizer = models.make_optimizer(name, weights, lr=0.01)
        assert isinstance(optimizer, torch.optim.Optimizer) and optimizer.param_groups[0]["lr"] == 0.01
