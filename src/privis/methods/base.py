"""The ``Protector`` contract every protection method keeps (``docs/architecture.md``, "Protector").

Modelled on scikit-learn's estimators: ``__init__`` stores its arguments verbatim and does no work,
fitted state lives in attributes ending in ``_``, ``fit`` returns ``self``; ``transform`` maps the canonical
image form (``(N, C, H, W)`` float32 in ``[0, 1]``) to the same form.
"""

from __future__ import annotations

import ast
import copy
import inspect
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

# The canonical image and label checks live in the lowest layer; re-exported here, where methods and
# attacks have always imported them from.
from privis.data.checks import CHANNELS as CHANNELS
from privis.data.checks import check_images as check_images
from privis.data.checks import check_labels as check_labels
from privis.errors import InvalidInputError
from privis.sysinfo import available_memory_bytes


def to_signed(images: Tensor) -> Tensor:
    """Map canonical ``[0, 1]`` images to the ``[-1, 1]`` domain where sign-flipping methods work (Veil's
    Algorithm 1 "Normalize", InstaHide) and where attacks undo them."""
    return images * 2.0 - 1.0


def to_canonical(images: Tensor) -> Tensor:
    """Map ``[-1, 1]`` images back to canonical ``[0, 1]``, clipped (Veil's Algorithm 1 "Renormalize")."""
    return ((images + 1.0) * 0.5).clamp_(0.0, 1.0)


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(needed_bytes: float, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse an allocation of about ``needed_bytes`` that cannot fit before it is attempted.

    Args:
        needed_bytes: the estimate (bytes).
        what: what needs it, for the message (e.g. ``"instahide k=1000000 on 256 images of 1x28x28"``).
        device: where it would be allocated: free CUDA memory on a CUDA device, else available RAM.

    Raises:
        InvalidInputError: the estimate exceeds the memory available now; the message gives both.
    """
    limit = available_memory_bytes(device)
    if needed_bytes > limit:
        raise InvalidInputError(f"{what} needs about {_format_bytes(needed_bytes)} of memory, more than the "
                                f"{_format_bytes(limit)} available on {torch.device(device).type}")


def fitted_models_on(protector: object, device: torch.device) -> Any:
    """A protector's fitted models (its ``models_`` module) on ``device``: the fitted module itself where it
    already lives there, else a copy moved to ``device``, kept in the protector's ``_device_models`` (not fitted
    state: a cache of the last device) for the next call."""
    fitted: nn.Module = protector.models_  # type: ignore[attr-defined]
    if next(fitted.parameters()).device == device:
        return fitted
    cached = getattr(protector, "_device_models", None)
    if cached is None or next(cached.parameters()).device != device:
        cached = copy.deepcopy(fitted).to(device)
        protector._device_models = cached  # type: ignore[attr-defined]
    return cached


#: Kinds of :class:`Param`.
PARAM_KINDS = ("int", "float", "bool", "str", "choice", "path", "model", "literal")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_NONE = ("none", "null")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ts")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Param:
    """The declaration of one constructor parameter: its type, bounds, choices and a one-line doc.

    Declared once per class in ``param_specs`` (see :class:`ParamsMixin`) and used to parse command-line
    ``KEY=VALUE`` strings (:meth:`parse`), to validate values before work (:meth:`check`) and to document
    the parameter (:meth:`describe`, ``privis methods NAME``). Build them with :func:`int_param`,
    :func:`float_param`, :func:`bool_param`, :func:`choice_param`, :func:`str_param`, :func:`path_param`,
    :func:`model_param` and :func:`seed_param`.

    Attributes:
        kind: one of :data:`PARAM_KINDS`. ``int``: an integer (not a bool); ``float``: a finite real number;
            ``bool``; ``str``; ``choice``: one of ``choices``; ``path``: a file path (``str`` or
            ``os.PathLike``); ``model``: a ``torch.nn.Module`` (a checkpoint path on the command line);
            ``literal``: a structured value (a Python literal on the command line, e.g. a list of pairs),
            whose content the class checks in ``_check_params``.
        doc: one line: meaning, units, paper default where it differs.
        ge, gt, le, lt: inclusive/exclusive lower and upper bounds (numbers; None: unbounded).
        choices: the allowed strings of a ``choice`` (a tuple, or a function returning them, for names
            looked up in another registry when checked).
        optional: None is allowed (written ``none`` on the command line).
    """

    kind: str
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | Callable[[], Iterable[str]] = ()
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}; kinds: {', '.join(PARAM_KINDS)}")

    def allowed(self) -> tuple[str, ...]:
        """The choices of a ``choice`` parameter (resolved now when given as a function)."""
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def bounds_text(self) -> str:
        """The bounds as text: ``"in (0, 1]"``, ``">= 1"``, or ``""`` when unbounded."""
        low = (f"[{_number(self.ge)}" if self.ge is not None else f"({_number(self.gt)}" if self.gt is not None
               else None)
        high = (f"{_number(self.le)}]" if self.le is not None else f"{_number(self.lt)})" if self.lt is not None
                else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return ""

    def describe(self) -> str:
        """What a valid value is, in words: ``"a finite number in (0, 1000]"``, ``"one of sgd, adam"``."""
        text = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                "path": "a file path", "model": "a model (a checkpoint .pt/.pth/.ts on the command line)",
                "literal": "a Python literal", "choice": "one of " + ", ".join(self.allowed())}[self.kind]
        bounds = self.bounds_text()
        if bounds:
            text += f" {bounds}"
        return text + (", or none" if self.optional else "")

    def _in_bounds(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` (a Python object, as stored on the instance) satisfies the declaration."""
        if value is None:
            return self.optional
        if self.kind == "int":
            return (isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
                    and self._in_bounds(int(value)))
        if self.kind == "float":
            return (isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
                    and math.isfinite(float(value)) and self._in_bounds(float(value)))
        if self.kind == "bool":
            return isinstance(value, bool | np.bool_)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.allowed()
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "path":
            return isinstance(value, str | os.PathLike) and str(value) != ""
        if self.kind == "literal":
            return True
        return isinstance(value, nn.Module)  # model

    def check(self, value: Any, name: str, owner: str) -> None:
        """Raise :class:`InvalidInputError` naming ``owner`` (the method or attack) and ``name`` unless valid."""
        if not self.is_valid(value):
            shown = type(value).__name__ if isinstance(value, nn.Module) else repr(value)
            raise InvalidInputError(f"{owner}: parameter {name} must be {self.describe()}, got {shown}")

    def parse(self, raw: str, name: str, owner: str) -> Any:
        """The value a command-line string stands for, checked; strict (no guessing).

        ``int``: decimal digits, or a number written in float notation whose value is integral (``1e3``);
        ``float``: any finite float literal (``nan``, ``inf`` and overflowing literals are refused);
        ``bool``: ``true/false/1/0/yes/no`` (any case); ``none``/``null`` for an optional parameter;
        ``model``: a checkpoint path (``.pt``, ``.pth``, ``.ts``) that exists, returned as the path;
        ``literal``: :func:`parse_literal`.

        Raises:
            InvalidInputError: the string is not such a value or lies outside the bounds.
        """
        text = raw.strip()
        if self.optional and text.lower() in _NONE:
            return None
        bad = InvalidInputError(f"{owner}: parameter {name} must be {self.describe()}, got {raw!r}")
        value: Any
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise bad from None
                if not (math.isfinite(number) and number.is_integer()):
                    raise bad from None
                value = int(number)
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise bad from None
        elif self.kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise bad
            value = text.lower() in _TRUE
        elif self.kind == "model":
            if not text.endswith(_CHECKPOINT_SUFFIXES):
                raise bad
            if not os.path.isfile(os.path.expanduser(text)):
                raise InvalidInputError(f"{owner}: parameter {name}: model checkpoint not found: {text}")
            return text
        elif self.kind == "literal":
            value = parse_literal(text, f"{owner}: parameter {name}")
        else:
            value = raw if self.kind == "str" else text
        if not self.is_valid(value):
            raise bad
        return value


def parse_literal(text: str, what: str) -> Any:
    """A Python literal (numbers, strings, tuples, lists, dicts, True/False/None) from ``text``; a string that
    is no literal is returned as is.

    Raises:
        InvalidInputError: the literal holds a NaN or an infinite number (``1e400``), naming ``what``.
    """
    try:
        value: Any = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text

    def finite(v: Any) -> bool:
        if isinstance(v, float | complex):
            return math.isfinite(abs(v))
        if isinstance(v, tuple | list | set | frozenset):
            return all(finite(x) for x in v)
        if isinstance(v, dict):
            return all(finite(k) and finite(x) for k, x in v.items())
        return True

    if not finite(value):
        raise InvalidInputError(f"{what} must hold finite numbers, got {text!r}")
    return value


def int_param(doc: str, *, ge: int | None = None, gt: int | None = None, le: int | None = None,
              lt: int | None = None, optional: bool = False) -> Param:
    """An integer parameter (bools are refused) with optional bounds."""
    return Param("int", doc, ge=ge, gt=gt, le=le, lt=lt, optional=optional)


def float_param(doc: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
                lt: float | None = None, optional: bool = False) -> Param:
    """A finite real parameter (ints accepted, NaN and infinities refused) with optional bounds."""
    return Param("float", doc, ge=ge, gt=gt, le=le, lt=lt, optional=optional)


def bool_param(doc: str) -> Param:
    """A boolean parameter (``true/false/1/0/yes/no`` on the command line)."""
    return Param("bool", doc)


def choice_param(doc: str, choices: tuple[str, ...] | Callable[[], Iterable[str]], *,
                 optional: bool = False) -> Param:
    """A string that must be one of ``choices`` (or of the names a function returns when checked)."""
    return Param("choice", doc, choices=choices, optional=optional)


def str_param(doc: str, *, optional: bool = False) -> Param:
    """A free string parameter (checked elsewhere, e.g. a layer name that depends on a model)."""
    return Param("str", doc, optional=optional)


def path_param(doc: str, *, optional: bool = False) -> Param:
    """A file path parameter (``str`` or ``os.PathLike``)."""
    return Param("path", doc, optional=optional)


@dataclass(frozen=True)
class _CodecParam(Param):
    """A codec file or folder path, or (from Python) a :class:`~privis.latent.LatentCodec` object."""

    def is_valid(self, value: Any) -> bool:
        from privis.latent.base import LatentCodec

        return isinstance(value, LatentCodec) or super().is_valid(value)


def codec_param(doc: str) -> Param:
    """A latent codec: a codec file or folder path (:func:`privis.latent.save_codec`), a
    :class:`~privis.latent.LatentCodec` from Python, or None."""
    return _CodecParam("path", doc, optional=True)


def model_param(doc: str) -> Param:
    """A ``torch.nn.Module`` parameter, None allowed (a checkpoint path on the command line)."""
    return Param("model", doc, optional=True)


def seed_param() -> Param:
    """``random_state``: a seed in ``[0, 2**63 - 1]``, or None for OS entropy."""
    return int_param("seed; none draws from OS entropy", ge=0, le=2**63 - 1, optional=True)


class ParamsMixin:
    """scikit-learn's parameter protocol for classes whose ``__init__`` stores its arguments verbatim
    (protectors and attacks): ``get_params``, ``set_params``, a ``repr`` that shows them, and the typed,
    bounded declarations of ``param_specs`` behind :meth:`validate_params`, :meth:`parse_param` and
    :meth:`param_table`.

    Subclasses declare every ``__init__`` parameter once::

        param_specs = {"sigma": float_param("standard deviation, pixels", gt=0, le=1000)}

    and call :meth:`validate_params` before work (``fit``, or ``transform`` for protectors without a fit).
    Checks that involve several parameters go in :meth:`_check_params`.
    """

    name: ClassVar[str] = ""
    #: The paper(s) the class implements: authors, title, venue, year and DOI or arXiv id (one string, from
    #: :mod:`privis.references`); ``privis methods`` / ``privis attacks`` print it. Empty when there is none.
    citation: ClassVar[str] = ""
    #: Parameter name -> its declaration.
    param_specs: ClassVar[Mapping[str, Param]] = {}

    @classmethod
    def _owner(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def parse_param(cls, key: str, raw: str) -> Any:
        """The value of a command-line ``KEY=VALUE`` pair for this class, parsed by its declaration.

        Raises:
            InvalidInputError: an unknown parameter (the message lists the valid ones) or a bad value.
        """
        names = cls._param_names()
        if key not in names:
            raise InvalidInputError(f"{cls._owner()} has no parameter {key!r}; parameters: {', '.join(names)}")
        spec = cls.param_specs.get(key)
        if spec is None:  # an undeclared parameter (a class outside privis): a literal, refused when not finite
            return parse_literal(raw.strip(), f"{cls._owner()}: parameter {key}")
        return spec.parse(raw, key, cls._owner())

    @classmethod
    def param_table(cls) -> list[dict[str, str]]:
        """One row per parameter for help texts: ``name``, ``type`` (with bounds), ``default``, ``doc``."""
        signature = inspect.signature(cls.__init__).parameters
        rows = []
        for key in cls._param_names():
            spec = cls.param_specs.get(key)
            default = signature[key].default
            rows.append({"name": key, "type": spec.describe() if spec else "any",
                         "default": "none" if default is None else str(default),
                         "doc": spec.doc if spec else ""})
        return rows

    def validate_params(self) -> None:
        """Check every declared parameter's current value, then :meth:`_check_params`.

        Raises:
            InvalidInputError: one line naming the class's registry name and the parameter.
        """
        for key in self._param_names():
            spec = self.param_specs.get(key)
            if spec is not None:
                spec.check(getattr(self, key), key, self._owner())
        self._check_params()

    def _check_params(self) -> None:
        """Checks that involve several parameters; none by default."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [name for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as scikit-learn's ``get_params`` (not deep)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> ParamsMixin:
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise InvalidInputError(f"{type(self).__name__} has no parameter {key!r}; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:  # models among the parameters would print pages: they are left out
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not isinstance(v, torch.nn.Module))
        return f"{type(self).__name__}({args})"


class NotFittedError(InvalidInputError):
    """``transform`` was called before ``fit`` on a protector that needs fitting."""


class Protector(ParamsMixin):
    """Base class of every protection method.

    Subclasses set ``name`` (the registry key), store their ``__init__`` arguments verbatim, and implement
    ``fit`` and ``transform``. ``fit_transform`` is provided.

    Capabilities are declared as class-level tags (as scikit-learn's estimator tags), which the engine, the
    bench and the leaderboard read instead of inspecting methods: ``requires_fit``, ``stochastic``,
    ``accepts_ids`` and ``deployment``. The contract test (``tests/methods/test_contract.py``) checks that
    each registered method's tags agree with its behaviour.
    """

    #: The augmentation ``training_augmentation("default")`` resolves to.
    default_augmentation: ClassVar[str] = "none"
    #: Test data a model trained on this method's output serves in the method's intended use: ``"protected"``
    #: (inputs are protected the same way, the common case) or ``"original"`` (Veil: train on veiled data,
    #: recognise original data). Utility figures (``protected_acc_<deployment>``) follow it.
    deployment: ClassVar[str] = "protected"
    #: Parameters never recorded next to the outputs (e.g. the path of a key file): the run's manifest
    #: lists every other parameter (and never ``random_state``).
    private_params: ClassVar[frozenset[str]] = frozenset()
    #: ``transform`` needs a ``fit`` first (else it raises :class:`NotFittedError`); the engine and the bench
    #: fit exactly the protectors that declare it.
    requires_fit: ClassVar[bool] = True
    #: The output is random: without ``random_state`` it is drawn from OS entropy (two protectors give
    #: different outputs); with the same ``random_state`` it is the same. Exactly the stochastic methods take
    #: a ``random_state`` parameter (``privis.methods.create`` passes a seed to them alone).
    stochastic: ClassVar[bool] = False
    #: ``transform(images, labels=None, *, ids=None)`` takes ``ids``: ``(B,)`` int64 item ids, from which (with
    #: ``random_state``) it derives each item's randomness, so the engine's batching cannot change an output.
    accepts_ids: ClassVar[bool] = False
    #: What the method protects against: ``"classification"`` (a model trained on or applied to the output
    #: classifies; the shared evaluation protocol, the leaderboard, the demo and the bench run these) or
    #: ``"detection"`` (it hides objects from a detector: evaluated on detection scenes instead).
    task: ClassVar[str] = "classification"

    def fit(self, images: Tensor, labels: Tensor | None = None) -> Protector:
        """Nothing to learn by default; the parameters, images and labels are checked (as ``transform``
        checks them), so a tensor in the wrong layout is refused here too.

        Raises:
            InvalidInputError: bad parameters, images (:func:`check_images`, any channel count) or labels
                (:func:`check_labels`).
        """
        self.validate_params()
        check_labels(labels, check_images(images, channels=None).shape[0])
        return self

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def diagnostics(self) -> dict[str, float]:
        """Method-specific figures of the last ``transform`` (e.g. Veil's stop-criterion fraction)."""
        return {}

    def identity_objective(self) -> Any:
        """The :class:`~privis.identity.IdentityModel` the method pushes images away from (FSAP's ``f_I``),
        after ``fit``; None for methods without an identity objective (the default). ``privis evaluate``
        reports ``spr`` against it."""
        return None

    def training_augmentation(self, name: str) -> Callable[[Tensor], Tensor] | None:
        """A named augmentation for models trained on this method's output; ``"none"`` gives None.

        Methods that offer augmentations override this; an unknown name is an error.
        """
        if name == "default":
            name = self.default_augmentation
        if name in ("none", "", None):
            return None
        raise InvalidInputError(f"method {self.name!r} offers no training augmentation {name!r}")

    def service_input_layer(self) -> nn.Module | None:
        """A fixed, parameter-free layer a server may put in front of a model that serves this method's
        output, computed from protected images and public parameters alone (so it reveals nothing more);
        None when the method offers none. Called after ``fit``.
        """
        return None

    def needs_exact_output(self) -> bool:
        """True when the owner must be able to invert the stored outputs exactly (a keyed mode): the engine
        then refuses lossy output formats (JPEG) before any work. Depends on parameters only (no fit needed).
        """
        return False

    def item_tags(self, images: Tensor, ids: Sequence[str]) -> list[str] | None:
        """Per-item public verification tags for the batch the engine is about to protect, or None.

        The engine calls this (after ``fit``) with the canonical ``(B, C, H, W)`` float32 images in ``[0, 1]``
        it passes to ``transform`` and the ``B`` item ids of the run (strings), and records each tag with its
        item in ``OUT/manifest.json`` (``items[i]["tag"]``, beside ``items[i]["id"]``). A tag must reveal
        nothing that helps undo the protection (a keyed MAC of the original, for instance); whoever holds
        the key checks restored images against it. Default: None (no tags).
        """
        return None

    def public_record(self) -> dict[str, Any]:
        """Run-level public values recorded in ``OUT/manifest.json`` (``extra["public"]``), after ``fit``.

        JSON-serialisable, and of no help to anyone undoing the protection. A keyed method records its key
        check value under ``"key_check"`` (a MAC of a fixed constant under the key), so that a restore can
        tell a wrong key from a right one, and may record under ``"restore_params"`` the parameter values its
        inverse needs that depend on where the run happened (a keyed restore applies them). Default: ``{}``.
        """
        return {}

    @classmethod
    def legacy_restore_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters a keyed restore must set for outputs whose manifest predates ``"restore_params"`` in
        :meth:`public_record` (given the recorded public ``params``). Default: ``{}``."""
        return {}

    def invariants(self) -> dict[str, Any]:
        """What the output keeps of the input, declared for attacks that exploit it (Kerckhoffs: public).

        Each key names a kind of invariant; its value is the public data the kind needs, or None where that
        data is fitted state not there yet (before ``fit``). Kinds the ``invariants`` attack knows:

        * ``"sign_magnitude"`` (value True): ``|2y - 1|`` stays (close to) ``|2x - 1|``; sign flips in
          ``[-1, 1]`` keep it.
        * ``"region_multisets"`` (windows, a tuple of ints): for each window, every region of the grid of
          :func:`privis.metrics.regions.region_grid` keeps its per-channel pixel multiset, hence its mean.
        * ``"public_generator"`` (an ``nn.Module`` ``U``): ``y = clamp(x + U(x), 0, 1)``; ``U`` has a
          ``perturbation(x)`` method giving ``U(x)``.
        * ``"point_spread"`` (a ``(k, k)`` float tensor): ``y`` is ``x`` convolved with this kernel per plane.
        * ``"cell_means"`` (an int ``b``): ``y`` holds the mean of every ``b x b`` cell.

        Default: ``{}`` (no known invariant). Depends on parameters and public fitted state only.
        """
        return {}

    def dp_parameters(self) -> dict[str, Any] | None:
        """The public inputs of a differential-privacy accountant for this mechanism, or None (no DP claim).

        The mechanism never computes its own epsilon (the split of Opacus: a mechanism declares what it did,
        an accountant in :mod:`privis.privacy` says what that proves). Keys, after ``fit``:

        * ``"mechanism"``: the accountant that applies (``"dp-image"``).
        * ``"sensitivity"``: L2 sensitivity of the noised query (latent units).
        * ``"sigma"``: standard deviation of the Gaussian noise per coordinate (latent units).
        * ``"steps"``: iterations ``T``.
        * ``"clip"``, ``"clip_kind"`` (``"box"`` or ``"l2"``), ``"latent_dim"``: how the sensitivity arose.
        * ``"groups"``: latent groups ``G``; ``"perturbed_groups"``: the indices noised (all when equal).
        * ``"lipschitz_bound"``: a certified Lipschitz bound of the iterated latent map, or None.

        Default: None.
        """
        return None

    def fit_transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.fit(images, labels).transform(images, labels)
