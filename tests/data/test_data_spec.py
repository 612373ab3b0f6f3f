"""Dataset spec parsing: the grammar of DESIGN.md, canonical text, and errors that name spec and grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privis.data import GRAMMAR, DatasetSpec, parse_spec
from privis.data.spec import BUILTIN_DATASETS, SPLIT_SIZES
from privis.errors import DatasetError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fashion-mnist", DatasetSpec("builtin", "fashion-mnist")),
        ("fashion-mnist:train", DatasetSpec("builtin", "fashion-mnist", split="train")),
        ("fashion-mnist:train[:2000]", DatasetSpec("builtin", "fashion-mnist", split="train", stop=2000)),
        ("fashion-mnist:test[100:300]", DatasetSpec("builtin", "fashion-mnist", None, "test", 100, 300)),
        ("fashion-mnist[5:]", DatasetSpec("builtin", "fashion-mnist", start=5)),
        ("digits", DatasetSpec("builtin", "digits")),
        ("digits:test", DatasetSpec("builtin", "digits", split="test")),
        ("  Fashion_MNIST:TRAIN ", DatasetSpec("builtin", "fashion-mnist", split="train")),
        ("lfw-subset", DatasetSpec("builtin", "lfw-subset")),
        ("astronaut", DatasetSpec("builtin", "astronaut")),
        ("folder:data/faces", DatasetSpec("folder", "folder", path="data/faces")),
        ("folder:/tmp/a:b/c", DatasetSpec("folder", "folder", path="/tmp/a:b/c")),
        ("npz:x.npz", DatasetSpec("npz", "npz", path="x.npz")),
        ("NPZ:/d/x[1:2].npz", DatasetSpec("npz", "npz", path="/d/x[1:2].npz")),
    ],
)
def test_parse_valid(text: str, expected: DatasetSpec) -> None:
    assert parse_spec(text) == expected


def test_defaults_and_index() -> None:
    assert parse_spec("fashion-mnist").default_split == "train"
    assert parse_spec("digits").default_split == "train"
    assert parse_spec("lfw-subset").default_split == "all"
    assert parse_spec("digits:all").default_split == "all"
    assert parse_spec("folder:x").default_split is None
    assert parse_spec("digits[3:7]").index == slice(3, 7)
    assert parse_spec("digits").index == slice(None, None)


def test_spec_is_frozen() -> None:
    spec = parse_spec("digits")
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mnist", "unknown dataset 'mnist'"),
        ("fashion-mnist:valid", "no split 'valid'"),
        ("astronaut:train", "no split 'train'"),
        ("digits[5:2]", "empty range"),
        ("digits[3:3]", "empty range"),
        ("digits[a:b]", "not of the form"),
        ("digits[-1:]", "not of the form"),
        ("digits:train[1:2", "not of the form"),
        ("digits:train:test", "not of the form"),
        ("folder:", "needs a path"),
        ("npz:   ", "needs a path"),
        ("./images/cats", "folder:./images/cats"),
    ],
)
def test_parse_errors_name_spec_and_grammar(text: str, fragment: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_spec(text)
    message = str(info.value)
    assert repr(text) in message
    assert fragment in message
    assert GRAMMAR in message


def test_non_string_rejected() -> None:
    with pytest.raises(DatasetError):
        parse_spec(None)  # type: ignore[arg-type]


_names = st.sampled_from(sorted(BUILTIN_DATASETS))


@st.composite
def _builtin_specs(draw: st.DrawFn) -> DatasetSpec:
    name = draw(_names)
    split = draw(st.none() | st.sampled_from(BUILTIN_DATASETS[name][0]))
    total = SPLIT_SIZES[name][split or BUILTIN_DATASETS[name][1]]
    start = draw(st.none() | st.integers(0, total - 1))
    stop = draw(st.none() | st.integers((start or 0) + 1, total))
    return DatasetSpec("builtin", name, None, split, start, stop)


@given(_builtin_specs())
def test_str_round_trips(spec: DatasetSpec) -> None:
    parsed = parse_spec(str(spec))
    assert parsed == spec
    assert parsed.size == (spec.stop or parsed.split_size) - (spec.start or 0) >= 1


@given(_builtin_specs(), st.integers(1, 100_000))
def test_range_past_the_split_is_refused_by_name(spec: DatasetSpec, beyond: int) -> None:
    """A range reaching past the split's last item is an error naming the spec, never a silent truncation."""
    total = spec.split_size
    for start, stop in (((spec.start or 0), total + beyond), (total + beyond - 1, None)):
        text = str(DatasetSpec("builtin", spec.name, None, spec.split, start, stop))
        with pytest.raises(DatasetError, match="runs past the end") as info:
            parse_spec(text)
        assert repr(text) in str(info.value) and f"holds {total} items" in str(info.value)


@pytest.mark.parametrize("text", ["digits:train[5:2]", "digits:train[3:3]", "fashion-mnist:test[10:0]"])
def test_empty_or_reversed_range_is_refused(text: str) -> None:
    with pytest.raises(DatasetError, match="empty range"):
        parse_spec(text)


@given(st.text(min_size=1).filter(lambda s: s.strip() == s))
def test_folder_path_is_everything_after_first_colon(path: str) -> None:
    assert parse_spec("folder:" + path).path == path
