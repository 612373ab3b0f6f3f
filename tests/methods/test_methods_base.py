"""The shared checks of ``privis.methods.base``: typed, bounded parameter declarations (``Param``) used by
every method and attack, and the canonical-layout check of ``check_images``."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from privis import attacks, methods
from privis.errors import InvalidInputError
from privis.methods.base import Param, check_images, check_memory, float_param, int_param

METHODS = methods.available()
ATTACKS = attacks.available()
CLASSES = {**METHODS, **ATTACKS}
#: (class name, parameter, declaration) for every declared parameter of every registered method and attack
DECLARED = [(owner, key, spec) for owner, cls in CLASSES.items() for key, spec in cls.param_specs.items()]
NUMERIC = [(owner, key, spec) for owner, key, spec in DECLARED if spec.kind in ("int", "float")]


def _bad_values(spec: Param) -> list[str]:
    """Command-line strings no declaration of this kind may accept."""
    if spec.kind in ("int", "float"):
        bad = ["abc", "nan", "inf", "-inf", "1e400", "", "1,5"]
        if spec.le is not None or spec.lt is not None:
            bad.append("1e308")
        if spec.kind == "int":
            bad += ["2.5", "true", "0x10"]
            if (spec.le or spec.lt or math.inf) < 1e11:
                bad.append("1e11")
        low = spec.ge if spec.ge is not None else spec.gt
        if low is not None:
            bad.append(str(low - 1) if spec.kind == "int" or spec.ge is None else repr(low - 1e-3 - abs(low) * 1e-3))
            if spec.gt is not None:
                bad.append(str(spec.gt))
        if spec.lt is not None:
            bad.append(str(spec.lt))
        return bad
    if spec.kind == "bool":
        return ["maybe", "2", "tru", "", "none"]
    if spec.kind == "choice":
        return ["maybe", "", "ADAM-not-a-choice"]
    if spec.kind == "model":
        return ["weights.txt", "/nonexistent/privis/model.pt"]
    return []


BAD_CASES = [(owner, key, raw) for owner, key, spec in DECLARED for raw in _bad_values(spec)]


@pytest.mark.parametrize("owner", sorted(CLASSES))
def test_every_parameter_is_declared_and_the_defaults_are_valid(owner: str) -> None:
    cls = CLASSES[owner]
    assert set(cls.param_specs) == set(cls._param_names()), "declare every __init__ parameter, nothing else"
    for spec in cls.param_specs.values():
        assert spec.doc and "\n" not in spec.doc
    cls().validate_params()  # the defaults satisfy their own declarations


@pytest.mark.parametrize(("owner", "key", "raw"), BAD_CASES)
def test_bad_command_line_values_are_refused_in_one_line_naming_the_parameter(owner: str, key: str, raw: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        CLASSES[owner].parse_param(key, raw)
    message = str(info.value)
    assert owner in message and key in message and "\n" not in message


@pytest.mark.parametrize("owner", sorted(CLASSES))
def test_unknown_parameter_names_list_the_valid_ones(owner: str) -> None:
    cls = CLASSES[owner]
    with pytest.raises(InvalidInputError, match=f"{owner} has no parameter 'no_such_knob'") as info:
        cls.parse_param("no_such_knob", "1")
    for key in cls._param_names():
        assert key in str(info.value)


@pytest.mark.parametrize(("owner", "key"), [(o, k) for o, k, s in DECLARED if s.kind in ("int", "float", "bool",
                                                                                           "choice")])
def test_bad_python_values_are_refused_before_work(owner: str, key: str) -> None:
    """The same declarations guard the Python API: ``validate_params`` (run by ``fit``, by ``transform`` of
    methods without a fit, by ``Attack.run`` and by the registries' ``create``) names the parameter."""
    spec = CLASSES[owner].param_specs[key]
    bad = {"int": [2.5, True, "3", float("nan")], "float": [float("nan"), float("inf"), "0.5", True],
           "bool": ["maybe", "true", 1], "choice": ["maybe", 3]}[spec.kind]
    for value in bad:
        instance = CLASSES[owner]()
        instance.set_params(**{key: value})
        with pytest.raises(InvalidInputError, match=f"{owner}: parameter {key} must be"):
            instance.validate_params()
        registry = methods if owner in METHODS else attacks
        with pytest.raises(InvalidInputError, match=f"parameter {key}"):
            registry.create(owner, **{key: value})


@pytest.mark.parametrize("raw", ["true", "True", "1", "yes", "YES", "false", "0", "no", "No"])
def test_bools_take_only_the_six_spellings(raw: str) -> None:
    assert METHODS["visualmixer"].parse_param("channel_shuffle", raw) is (raw.lower() in ("true", "1", "yes"))


def test_ints_written_in_float_notation_must_be_integral_and_in_range() -> None:
    assert METHODS["pixelate"].parse_param("block", "1e3") == 1000
    assert METHODS["pixelate"].parse_param("block", " 12 ") == 12
    for raw in ("2.5", "1e11", "0"):
        with pytest.raises(InvalidInputError, match="pixelate: parameter block must be an integer in \\[1, 65536\\]"):
            METHODS["pixelate"].parse_param("block", raw)


def test_optional_parameters_take_none() -> None:
    assert METHODS["visualmixer"].parse_param("window", "none") is None
    assert METHODS["noise"].parse_param("random_state", "None") is None
    with pytest.raises(InvalidInputError):
        METHODS["blur"].parse_param("sigma", "none")  # not optional


def _inside(spec: Param) -> st.SearchStrategy:
    if spec.kind == "int":
        lo = spec.ge if spec.ge is not None else (spec.gt + 1 if spec.gt is not None else -(10**12))
        hi = spec.le if spec.le is not None else (spec.lt - 1 if spec.lt is not None else 10**12)
        return st.integers(int(lo), int(hi))
    lo = spec.ge if spec.ge is not None else spec.gt
    hi = spec.le if spec.le is not None else spec.lt
    return st.floats(min_value=-1e300 if lo is None else lo, max_value=1e300 if hi is None else hi,
                     exclude_min=spec.ge is None and spec.gt is not None,
                     exclude_max=spec.le is None and spec.lt is not None, allow_nan=False)


def _outside(spec: Param) -> st.SearchStrategy:
    options = []
    lo, hi = (spec.ge if spec.ge is not None else spec.gt), (spec.le if spec.le is not None else spec.lt)
    if spec.kind == "int":
        if lo is not None:
            options.append(st.integers(max_value=int(math.ceil(lo)) - (1 if spec.ge is not None else 0)))
        if hi is not None:
            options.append(st.integers(min_value=int(math.floor(hi)) + (1 if spec.le is not None else 0)))
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not v.is_integer()))
    else:
        if lo is not None:
            options.append(st.floats(max_value=lo, exclude_max=spec.ge is not None, allow_nan=False,
                                     allow_infinity=False))
        if hi is not None:
            options.append(st.floats(min_value=hi, exclude_min=spec.le is not None, allow_nan=False,
                                     allow_infinity=False))
        options.append(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return st.one_of(options)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_values_inside_the_bounds_parse_and_validate_outside_are_refused(data: st.DataObject) -> None:
    owner, key, spec = data.draw(st.sampled_from(NUMERIC), label="parameter")
    cls = CLASSES[owner]
    value = data.draw(_inside(spec), label="inside")
    parsed = cls.parse_param(key, repr(value) if spec.kind == "float" else str(value))
    assert parsed == value and spec.is_valid(value)
    instance = cls().set_params(**{key: value})
    try:
        instance.validate_params()
    except InvalidInputError as exc:  # only a check of several parameters together may refuse it
        assert "at least 1/k" in str(exc) or "use_aux" in str(exc), exc
    outside = data.draw(_outside(spec), label="outside")
    assert not spec.is_valid(outside)
    with pytest.raises(InvalidInputError, match=f"{owner}: parameter {key}"):
        cls.parse_param(key, repr(outside))


def test_declaration_text_gives_type_range_and_default() -> None:
    rows = {r["name"]: r for r in METHODS["blur"].param_table()}
    assert rows["sigma"]["type"] == "a finite number in (0, 1000]" and rows["sigma"]["default"] == "2.0"
    assert "pixels" in rows["sigma"]["doc"]
    assert int_param("x", ge=1).describe() == "an integer >= 1"
    assert float_param("x", gt=0, lt=1, optional=True).describe() == "a finite number in (0, 1), or none"


def test_instahide_checks_upper_against_k_before_work() -> None:
    with pytest.raises(InvalidInputError, match="upper must be at least 1/k"):
        methods.create("instahide", k=4, upper=0.2)


# ------------------------------------------------------------------------------------------- check_images
@pytest.mark.parametrize("shape", [(2, 8, 9, 3), (2, 8, 9, 1), (4, 28, 28, 1), (1, 32, 5, 3)])
def test_channels_last_images_are_named_with_the_fix(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        check_images(torch.rand(shape))
    fixed = check_images(torch.rand(shape).permute(0, 3, 1, 2))
    assert fixed.shape == (shape[0], shape[3], shape[1], shape[2])


def test_other_channel_counts_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="1 or 3 channels"):
        check_images(torch.rand(2, 4, 8, 8))
    assert check_images(torch.rand(2, 4, 8, 8), channels=None).shape == (2, 4, 8, 8)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_refuses_channels_last_input(name: str) -> None:
    """Blur, noise, pixelate and InstaHide used to return garbage for ``(N, H, W, C)``; every method now
    refuses it before any work, with the hint."""
    images = torch.rand(6, 8, 8, 1)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    protector = methods.create(name, **({"steps": 1, "local_epochs": 1} if name == "veil" else {}))
    with pytest.raises(InvalidInputError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        protector.fit(images, labels).transform(images, labels)


def test_check_memory_refuses_with_the_estimate_and_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("privis.methods.base.available_memory_bytes", lambda device="cpu": 2 * 1024**3)
    check_memory(1024**3, "something")
    with pytest.raises(InvalidInputError, match=r"something needs about 3\.0 GiB of memory, more than the 2\.0 GiB"):
        check_memory(3 * 1024**3, "something")


def test_structured_literal_parameters_are_parsed_and_their_content_checked() -> None:
    bank = ATTACKS["filters"].parse_param("bank", "[('tv', 0.1), ('median', 3)]")
    assert bank == [("tv", 0.1), ("median", 3)]
    attacks.create("filters", bank=bank)
    for raw in ("[('tv', 1e999)]", "[('zzz', 1)]", "[('tv', -1)]", "[('tv',)]"):
        with pytest.raises(InvalidInputError, match="filters: parameter bank"):
            attacks.create("filters", bank=ATTACKS["filters"].parse_param("bank", raw))
