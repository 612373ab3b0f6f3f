"""A timm-style registry of model builders, so every layer names architectures by string.

Experiments, the CLI (``privis train --model NAME``) and checkpoints refer to a network by a name such
as ``"lenet5"``; this module maps the name to a builder and records how the model was built
(``model.arch`` and ``model.arch_kwargs``), so :func:`privis.models.load_checkpoint` can rebuild the same
network from a state dict without pickling Python objects.

A builder is a callable ``fn(num_classes, in_channels, image_size, **options) -> nn.Module`` where
``image_size`` is always an ``(H, W)`` tuple of ints. Register one with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.registry import Registry

Builder = Callable[..., nn.Module]

#: What a model does: ``"classifier"`` (images -> logits ``(N, num_classes)``) or ``"generator"``
#: (images -> images of the same shape, e.g. the protective perturbation U-Net).
KINDS = ("classifier", "generator")

#: The registry of model builders (:class:`privis.registry.Registry`); each entry's ``kind`` is in :data:`KINDS`.
REGISTRY: Registry[Builder] = Registry("model", ("privis.models.zoo", "privis.models.unet"))


def register_model(name: str, *, kind: str = "classifier") -> Callable[[Builder], Builder]:
    """Decorator registering ``fn`` as the builder of architecture ``name``, a model of ``kind`` (one of
    :data:`KINDS`; checkpoints are checked against it where a command expects one kind).

    Names are case-sensitive, lower-case by convention. Registering a name twice is an error, so a
    typo in one module cannot silently replace another architecture.

    Raises:
        InvalidInputError: an empty name or an unknown kind; :class:`~privis.registry.DuplicateNameError` (one)
            when the decorator meets a name another builder has.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"model name must be a non-empty string, got {name!r}")
    if kind not in KINDS:
        raise InvalidInputError(f"model kind must be one of {KINDS}, got {kind!r}")
    return REGISTRY.register(name, kind=kind)


def kind_of(name: str | None) -> str | None:
    """The kind (:data:`KINDS`) of registered architecture ``name``; None for an unknown or missing name."""
    if not isinstance(name, str) or name not in REGISTRY:
        return None
    kind: str = REGISTRY.entry(name).meta["kind"]
    return kind


def available() -> list[str]:
    """Names of every registered architecture, sorted."""
    return REGISTRY.list()


def normalize_image_size(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Return ``image_size`` as an ``(H, W)`` tuple of positive ints.

    Raises:
        InvalidInputError: not a positive int or a pair of positive ints.
    """
    if isinstance(image_size, bool):
        raise InvalidInputError(f"image_size must be an int or (H, W), got {image_size!r}")
    if isinstance(image_size, int):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = (image_size[0], image_size[1])
    else:
        raise InvalidInputError(f"image_size must be an int or (H, W), got {image_size!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise InvalidInputError(f"image_size must hold positive ints, got {image_size!r}")
    return (int(size[0]), int(size[1]))


def create(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int | tuple[int, int] = 28,
    **options: Any,
) -> nn.Module:
    """Build a fresh, randomly initialised model of architecture ``name``.

    The model takes canonical images (``(N, C, H, W)`` float32 in ``[0, 1]``) and returns logits
    ``(N, num_classes)``. Initialisation draws from torch's global RNG: call ``torch.manual_seed`` first
    for reproducible weights.

    Args:
        name: a registered architecture (see :func:`available`).
        num_classes: number of output logits.
        in_channels: 1 for grey, 3 for RGB.
        image_size: input size the model is built for, an int or ``(H, W)``.
        **options: architecture-specific keyword options (e.g. ``width`` or ``dim``), passed to the builder
            and recorded in ``arch_kwargs``.

    Returns:
        The model, with attributes ``arch`` (the name) and ``arch_kwargs`` (the keyword arguments that
        rebuild it with ``create(arch, **arch_kwargs)``).

    Raises:
        InvalidInputError: unknown name (the message lists the available names), bad sizes or options.
    """
    REGISTRY.get(name)  # an unknown name first
    num_classes = check_int(num_classes, "num_classes")
    in_channels = check_int(in_channels, "in_channels")
    size = normalize_image_size(image_size)
    model: nn.Module = REGISTRY.create(name, num_classes, in_channels, size, **options)
    model.arch = name  # type: ignore[assignment]  # nn.Module's __setattr__ is typed for tensors and modules
    model.arch_kwargs = {  # type: ignore[assignment]
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": size,
        **options,
    }
    return model
