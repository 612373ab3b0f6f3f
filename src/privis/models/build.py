"""Model set-up done the same way everywhere: seeded creation and freezing.

- :func:`create_seeded`: a registered architecture whose initial weights depend only on ``seed`` (the same
  seed gives the same weights as ``torch.manual_seed(seed)`` followed by :func:`privis.models.create`), drawn
  on a forked RNG so the caller's global RNG is left as it was.
- :func:`freeze`: eval mode and no gradient to any weight, for models that are used but not trained (a
  method's local or target classifier, a served model, a trained zoo of classifiers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

from privis.models.registry import create

__all__ = ["create_seeded", "freeze", "seeded_rng"]

M = TypeVar("M", bound=nn.Module)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Draw from torch's CPU RNG seeded with ``seed`` inside the block; the caller's RNG state is restored after.

    Examples:
        >>> import torch
        >>> with seeded_rng(3):
        ...     a = torch.rand(2)
        >>> with seeded_rng(3):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b)
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def create_seeded(name: str, seed: int, **kwargs: Any) -> nn.Module:
    """:func:`privis.models.create` with initial weights fixed by ``seed``, leaving the global RNG untouched.

    Args:
        name: a registered architecture (``privis models`` lists them).
        seed: the seed of the CPU RNG the weights are drawn from (any int ``torch.manual_seed`` takes).
        **kwargs: passed to :func:`privis.models.create` (``num_classes``, ``in_channels``, ``image_size``
            and the architecture's options).

    Returns:
        The new model, on the CPU, in train mode; equal weight for weight to the model made by
        ``torch.manual_seed(seed); create(name, **kwargs)``.

    Raises:
        InvalidInputError: an unknown architecture or bad options (from :func:`privis.models.create`).

    Examples:
        >>> import torch
        >>> before = torch.random.get_rng_state()
        >>> a = create_seeded("lenet5", 3, num_classes=2, in_channels=1, image_size=12)
        >>> b = create_seeded("lenet5", 3, num_classes=2, in_channels=1, image_size=12)
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
        >>> torch.equal(before, torch.random.get_rng_state())
        True
    """
    with seeded_rng(seed):
        return create(name, **kwargs)


def freeze(model: M) -> M:
    """Put ``model`` in eval mode and stop gradients to all its parameters; returns the same object.

    Examples:
        >>> from torch import nn
        >>> frozen = freeze(nn.Linear(2, 2))
        >>> frozen.training, any(p.requires_grad for p in frozen.parameters())
        (False, False)
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
