"""Randomness: OS entropy unless a seed is given (``docs/architecture.md``, "Randomness")."""

from __future__ import annotations

import secrets

import numpy as np
import torch


def resolve_seed(random_state: int | None) -> int:
    """Return ``random_state`` or, when None, a fresh 63-bit seed drawn from OS entropy."""
    if random_state is None:
        return secrets.randbits(63)
    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool):
        raise TypeError(f"random_state must be an int or None, got {type(random_state).__name__}")
    return int(random_state)


def torch_generator(random_state: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``random_state`` (OS entropy when None)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(resolve_seed(random_state))
    return gen


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
