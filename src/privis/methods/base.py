"""The ``Protector`` contract every protection method keeps (DESIGN.md, "Protector").

Modelled on scikit-learn's estimators: ``__init__`` stores its arguments verbatim and does no work,
fitted state lives in attributes ending in ``_``, ``fit`` returns ``self``; ``transform`` maps the canonical
image form (``(N, C, H, W)`` float32 in ``[0, 1]``) to the same form.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from privis.errors import InvalidInputError


def check_images(images: Tensor, *, name: str = "images") -> Tensor:
    """Validate the canonical image form and return it as float32.

    Raises:
        InvalidInputError: not a 4-D tensor, not floating point, NaN/inf present, or values outside [0, 1].
    """
    if not isinstance(images, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise InvalidInputError(f"{name} must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (N = 0)")
    if not images.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point in [0, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InvalidInputError(f"{name} must lie in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
    return images.float()


def check_labels(labels: Tensor | None, n: int) -> Tensor | None:
    """Validate labels: ``torch.long`` of shape ``(n,)`` or None."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise InvalidInputError(f"labels must be integers, got dtype {labels.dtype}")
    return labels.long()


def to_signed(images: Tensor) -> Tensor:
    """Map canonical ``[0, 1]`` images to the ``[-1, 1]`` domain where sign-flipping methods work (Veil's
    Algorithm 1 "Normalize", InstaHide) and where attacks undo them."""
    return images * 2.0 - 1.0


def to_canonical(images: Tensor) -> Tensor:
    """Map ``[-1, 1]`` images back to canonical ``[0, 1]``, clipped (Veil's Algorithm 1 "Renormalize")."""
    return ((images + 1.0) * 0.5).clamp_(0.0, 1.0)


class ParamsMixin:
    """scikit-learn's parameter protocol for classes whose ``__init__`` stores its arguments verbatim
    (protectors and attacks): ``get_params``, ``set_params`` and a ``repr`` that shows them."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

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
    """

    name: ClassVar[str] = ""
    #: The augmentation ``training_augmentation("default")`` resolves to.
    default_augmentation: ClassVar[str] = "none"
    #: Test data a model trained on this method's output serves in the method's intended use: ``"protected"``
    #: (inputs are protected the same way, the common case) or ``"original"`` (Veil: train on veiled data,
    #: recognise original data). Utility figures (``protected_acc_<deployment>``) follow it.
    deployment: ClassVar[str] = "protected"
    #: Parameters never recorded next to the outputs (e.g. the path of a key file): the run's manifest
    #: lists every other parameter (and never ``random_state``).
    private_params: ClassVar[frozenset[str]] = frozenset()
    #: ``transform`` needs a ``fit`` first (else it raises :class:`NotFittedError`).
    requires_fit: ClassVar[bool] = True
    #: The output is random: without ``random_state`` it is drawn from OS entropy (two protectors give
    #: different outputs); with the same ``random_state`` it is the same.
    stochastic: ClassVar[bool] = False

    def fit(self, images: Tensor, labels: Tensor | None = None) -> Protector:
        return self

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def diagnostics(self) -> dict[str, float]:
        """Method-specific figures of the last ``transform`` (e.g. Veil's stop-criterion fraction)."""
        return {}

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
        tell a wrong key from a right one. Default: ``{}``.
        """
        return {}

    def fit_transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.fit(images, labels).transform(images, labels)
