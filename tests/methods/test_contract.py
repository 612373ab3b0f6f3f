"""The Protector contract (DESIGN.md, "Protector"), checked for every registered method.

In the spirit of scikit-learn's ``check_estimator``: each test runs over ``privis.methods.available()``, so
a new method is checked by registering it. It only has to add a cheap construction to ``CHEAP`` below
(tiny steps and epochs); a registered method without one fails every test here, by name.

Checked: parameters stored verbatim and no work in ``__init__`` (no attributes beyond the parameters, fast,
no file opened); ``fit`` returns ``self``; ``transform`` before ``fit`` raises ``NotFittedError`` exactly when
the class declares ``requires_fit``; canonical form in and out, on the input's device; OS entropy without
a seed and the same output with the same seed (``stochastic`` methods), the same output every time
(the others); the declared tags (``requires_fit``, ``stochastic``, ``accepts_ids``, ``deployment``) agree with
the behaviour; ``fit`` and ``transform`` refuse channels-last images and labels of another length or a
float dtype (also methods that ignore labels); the caller's images, labels, models and global RNG untouched;
``transform`` leaves the fitted state alone (figures of a call are not ``*_`` attributes); a fitted protector
pickles and gives the same output after loading. Every test that runs a method runs on each device of the
``device`` fixture.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import io
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from privis import data as data_module
from privis import methods, models
from privis.engine.core import fitted_fingerprint
from privis.errors import InvalidInputError
from privis.latent import LatentCodec, train_codec
from privis.methods.base import NotFittedError, Protector
from toy_detector import ToyDetector

N = 24  # digits images per check (8x8 grey)


def _caller_classifier(seed: int) -> nn.Module:
    """A model as a caller would pass it: fresh, in train mode, with gradients on."""
    torch.manual_seed(seed)
    return models.create("lenet5", num_classes=10, in_channels=1, image_size=8)


@functools.cache
def _tiny_diffae() -> LatentCodec:
    """A diffusion autoencoder small enough for these checks, trained a little: an untrained one ignores its
    semantic code (its output convolution starts at zero), and so would the latent anonymiser's output."""
    images = data_module.load("digits:train[:24]").images
    return train_codec(images, "diffae", epochs=2, random_state=0, semantic_dim=8, base=4, timesteps=100, steps=2)


#: Test-friendly parameters per registered method: as little work as the method allows. Models in here are
#: the caller's objects whose state the contract checks.
CHEAP: dict[str, Callable[[], dict[str, Any]]] = {
    "blur": lambda: {"sigma": 1.0},
    "pixelate": lambda: {"block": 2},
    "noise": lambda: {"sigma": 0.2},
    "instahide": lambda: {"k": 2},
    "veil": lambda: {"steps": 3, "batch_size": 16, "local_model": _caller_classifier(0)},
    "perturbation": lambda: {"epochs": 1, "width": 2, "batch_size": 16, "target_model": _caller_classifier(0),
                             "aux_model": _caller_classifier(1)},
    "visualmixer": lambda: {"mc_samples": 200},
    "dp-image": lambda: {"codec_epochs": 1, "steps": 2},
    "fsap": lambda: {"N": 3, "k": 1, "identity_epochs": 1},
    "latent-anonymizer": lambda: {"codec": _tiny_diffae(), "identity_epochs": 1, "attribute_epochs": 1,
                                  "iterations": 2, "pool_ratio": 1.5},
    "object-hiding": lambda: {"detector": ToyDetector(), "eps": 0.05, "iterations": 3},
    "region-blur": lambda: {"detector": ToyDetector(), "strengths": (1.0, 4.0)},
    "region-mosaic": lambda: {"detector": ToyDetector(), "strengths": (2, 4)},
}

NAMES = sorted(methods.available())


def cheap(name: str, **overrides: Any) -> tuple[type[Protector], dict[str, Any]]:
    """The class registered as ``name`` and its cheap parameters (with ``overrides``)."""
    if name not in CHEAP:
        pytest.fail(f"method {name!r} is registered but has no cheap construction in CHEAP "
                    f"({__file__}): add one (tiny steps/epochs) so the Protector contract is checked for it")
    return methods.available()[name], {**CHEAP[name](), **overrides}


@pytest.fixture(scope="module")
def data(digits_train) -> tuple[Tensor, Tensor]:
    return digits_train.images[:N].clone(), digits_train.labels[:N].clone()


def _on(device: torch.device, data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return data[0].to(device), data[1].to(device)


def _fitted_state(protector: Protector) -> set[str]:
    return {k for k in vars(protector) if k.endswith("_") and not k.startswith("_")}


def _assert_same(a: Tensor, b: Tensor, device: torch.device) -> None:
    if device.type == "cpu":
        assert torch.equal(a, b)
    else:  # GPU kernels may sum in another order between runs
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@contextmanager
def _no_file_access() -> Iterator[None]:
    """Make opening or stat-ing any file an error (what ``__init__`` must never do)."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"file access in __init__: {args[:1]}")

    saved = builtins.open, io.open, os.open, os.stat
    builtins.open = io.open = os.open = os.stat = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        builtins.open, io.open, os.open, os.stat = saved


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_stored_verbatim_and_init_does_no_work(name):
    cls, params = cheap(name)
    with _no_file_access():
        t0 = time.perf_counter()
        protector = cls(**params)
        seconds = time.perf_counter() - t0
    assert seconds < 0.5, f"{name}.__init__ took {seconds:.2f} s: it must only store its parameters"
    assert set(vars(protector)) == set(cls._param_names()), "__init__ sets attributes beyond its parameters"
    got = protector.get_params()
    assert list(got) == cls._param_names()
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    for key, value in got.items():  # identity: the very objects passed (or the defaults), never copies
        assert value is (params[key] if key in params else defaults[key]), f"{name}.{key} is not stored verbatim"
    clone = cls(**got)
    assert all(clone.get_params()[k] is v for k, v in got.items())
    # a path parameter is only read by fit: a missing file is an error there, not at construction
    for key in (k for k in cls._param_names() if k.endswith("_file")):
        with _no_file_access():
            missing = cls(**{**params, key: "/nonexistent/privis-contract-key"})
        with pytest.raises(InvalidInputError, match="nonexistent/privis-contract-key"):
            missing.fit(torch.rand(4, 1, 8, 8), torch.arange(4))


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_transform_before_fit_is_the_documented_error(name, device, data):
    images, labels = _on(device, data)
    cls, params = cheap(name)
    protector = cls(**params)
    if cls.requires_fit:
        with pytest.raises(NotFittedError):
            protector.transform(images, labels)
    else:
        out = protector.transform(images, labels)
        assert out.shape == images.shape
    assert protector.fit(images, labels) is protector


@pytest.mark.parametrize("name", NAMES)
def test_fit_and_transform_refuse_channels_last_images_and_labels_that_do_not_fit(name, device, data):
    """A method that ignores labels still checks them (a truncated or shifted batch is the caller's bug), and
    a method with nothing to fit still refuses images in the wrong layout at ``fit``."""
    images, labels = _on(device, data)
    cls, params = cheap(name)
    nhwc = images.repeat(1, 3, 1, 1).permute(0, 2, 3, 1)  # (N, 8, 8, 3)
    with pytest.raises(InvalidInputError, match="channels-last"):
        cls(**cheap(name)[1]).fit(nhwc, labels)
    protector = cls(**params).fit(images, labels)
    for bad, words in ((labels[: N // 2], rf"labels has {N // 2} entries but there are {N} images"),
                       (labels.float(), "labels must be integer class indices"),
                       (labels[:, None], r"labels must have shape \(N,\)")):
        with pytest.raises(InvalidInputError, match=words):
            cls(**cheap(name)[1]).fit(images, bad)
        with pytest.raises(InvalidInputError, match=words):
            protector.transform(images, bad)


@pytest.mark.parametrize("name", NAMES)
def test_canonical_form_and_the_callers_objects_are_untouched(name, device, data):
    images, labels = _on(device, data)
    image_bytes, label_bytes = images.clone(), labels.clone()
    cls, params = cheap(name)
    given = {k: v for k, v in params.items() if isinstance(v, nn.Module)}
    before = {k: (m.training, [p.requires_grad for p in m.parameters()],
                  {n: t.clone() for n, t in m.state_dict().items()}, models.model_device(m)) for k, m in given.items()}
    rng = torch.get_rng_state()
    protector = cls(**params).fit(images, labels)
    state = _fitted_state(protector)
    fingerprint = fitted_fingerprint(protector)
    out = protector.transform(images, labels)
    protector.transform(images[: N // 2], labels[: N // 2])

    assert isinstance(out, Tensor) and out.shape == images.shape and out.dtype == torch.float32
    assert out.device == images.device
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(images, image_bytes) and torch.equal(labels, label_bytes), "the caller's tensors changed"
    for key, model in given.items():
        training, grads, weights, where = before[key]
        assert model.training == training, f"fit changed train/eval mode of the caller's {key}"
        assert [p.requires_grad for p in model.parameters()] == grads, f"fit changed requires_grad of {key}"
        assert models.model_device(model) == where, f"fit moved the caller's {key}"
        for n, t in model.state_dict().items():
            assert torch.equal(t, weights[n]), f"fit changed the caller's {key} ({n})"
    assert torch.equal(torch.get_rng_state(), rng), "the global torch RNG was used"
    # figures of a call live outside the fitted state: transform adds no *_ attribute and changes none
    assert _fitted_state(protector) == state
    assert fitted_fingerprint(protector) == fingerprint


@pytest.mark.parametrize("name", NAMES)
def test_randomness_os_entropy_without_a_seed_and_same_seed_same_output(name, device, data):
    images, labels = _on(device, data)
    cls, _ = cheap(name)

    def output(**overrides: Any) -> Tensor:
        c, params = cheap(name, **overrides)
        return c(**params).fit(images, labels).transform(images, labels)

    if cls.stochastic:
        assert not torch.equal(output(random_state=None), output(random_state=None)), \
            "two unseeded protectors gave the same output: randomness is not drawn from OS entropy"
        _assert_same(output(random_state=0), output(random_state=0), device)
    else:
        _assert_same(output(), output(), device)


@pytest.mark.parametrize("name", NAMES)
def test_a_fitted_protector_pickles_and_gives_the_same_output(name, device, data):
    images, labels = _on(device, data)
    cls, params = cheap(name, **({"random_state": 0} if methods.available()[name].stochastic else {}))
    protector = cls(**params).fit(images, labels)
    out = protector.transform(images, labels)
    loaded = pickle.loads(pickle.dumps(protector))
    assert type(loaded) is cls and _fitted_state(loaded) == _fitted_state(protector)
    assert fitted_fingerprint(loaded) == fitted_fingerprint(protector)
    _assert_same(loaded.transform(images, labels), out, device)


@pytest.mark.parametrize("name", NAMES)
def test_declared_tags_agree_with_the_signature_and_the_ids_contract(name, device, data):
    """The engine, the bench and the leaderboard read the tags instead of inspecting a method: a method takes
    ``random_state`` iff it is ``stochastic`` and ``ids`` iff it ``accepts_ids``; with ids, an item's output
    depends on ``(random_state, its id)`` alone, whatever batch it comes in."""
    images, labels = _on(device, data)
    cls, params = cheap(name)
    assert cls.stochastic == ("random_state" in cls._param_names()), "random_state iff stochastic"
    assert cls.accepts_ids == ("ids" in inspect.signature(cls.transform).parameters), "ids iff accepts_ids"
    assert cls.deployment in ("protected", "original")
    assert isinstance(cls.requires_fit, bool)  # its behaviour: test_fit_returns_self_and_transform_before_fit_...
    if not cls.accepts_ids:
        return
    protector = cls(**{**params, "random_state": 3}).fit(images, labels)
    ids = torch.arange(100, 100 + N, dtype=torch.int64)
    whole = protector.transform(images, labels, ids=ids)
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0))
    h = N // 3
    parts = [protector.transform(images[order[a:b]], labels[order[a:b]], ids=ids[order[a:b]])
             for a, b in ((0, h), (h, N))]
    _assert_same(torch.cat(parts)[torch.argsort(order)], whole, device)
    assert not torch.equal(protector.transform(images, labels, ids=ids + N), whole), "the ids are not used"
