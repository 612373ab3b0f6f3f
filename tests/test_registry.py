"""ClassRegistry: the one registry behind ``privis.methods`` and ``privis.attacks``."""

from __future__ import annotations

import pytest

from privis import attacks, methods
from privis.errors import InvalidInputError
from privis.methods.base import ParamsMixin
from privis.registry import ClassRegistry


class _Thing(ParamsMixin):
    name = "thing"

    def __init__(self, size: int = 1) -> None:
        self.size = size


def test_register_create_and_errors() -> None:
    reg: ClassRegistry[_Thing] = ClassRegistry("thing", ())
    assert reg.register(_Thing) is _Thing and list(reg.available()) == ["thing"]
    assert reg.create("thing", size=3).size == 3
    with pytest.raises(InvalidInputError, match="unknown thing 'other'; available: thing"):
        reg.create("other")
    with pytest.raises(InvalidInputError, match="has no parameter colour"):
        reg.create("thing", colour=2)

    class Nameless(_Thing):
        name = ""

    with pytest.raises(TypeError, match="non-empty class attribute 'name'"):
        reg.register(Nameless)


def test_methods_and_attacks_reject_unknown_parameters_by_name() -> None:
    with pytest.raises(InvalidInputError, match="method 'blur' has no parameter radius"):
        methods.create("blur", radius=2)
    with pytest.raises(InvalidInputError, match="attack 'filters' has no parameter depth"):
        attacks.create("filters", depth=2)
