"""Training and evaluation loops for classifiers on canonical image tensors.

One loop serves every experiment (baseline models, models trained on protected data, local models of
methods such as Veil), so utility numbers compare: same data checks, same shuffling, same loss. Runs are
reproducible: a seed fixes the shuffling and the RNG used by dropout/augmentation (on a forked RNG, so
the caller's global RNG is left alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.models.optim import make_optimizer
from privis.progress import progress
from privis.random import default_device, resolve_seed


@dataclass
class TrainHistory:
    """What :func:`train` observed, one entry per epoch.

    Attributes:
        loss: mean cross-entropy over the epoch's training samples.
        train_acc: accuracy on the training batches as they were seen (train mode, after augmentation).
        val_acc: accuracy on ``val`` after each epoch (empty when no ``val`` was given).
        lr: learning rate used during each epoch.
        seconds: wall-clock time of the whole run.
        seed: the seed actually used (drawn from OS entropy when ``seed=None``).
    """

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, for JSON results and checkpoint ``extra``."""
        return asdict(self)


# ------------------------------------------------------------------------------------------ validation


def _check_images(images: Any, name: str) -> Tensor:
    if not isinstance(images, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise InvalidInputError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (N = 0)")
    if not images.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point in [0, 1], got dtype {images.dtype}")
    if torch.isnan(images).any():
        raise InvalidInputError(f"{name} contains NaN values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InvalidInputError(f"{name} must lie in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
    return images.float()


def _check_labels(labels: Any, n: int, num_classes: int | None, name: str) -> Tensor:
    if not isinstance(labels, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor (N,), got {type(labels).__name__}")
    if labels.ndim != 1:
        raise InvalidInputError(f"{name} must have shape (N,), got {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise InvalidInputError(f"{name} has {labels.shape[0]} entries but there are {n} images")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidInputError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.long()
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        bound = f"[0, {num_classes - 1}]" if num_classes is not None else ">= 0"
        raise InvalidInputError(f"{name} must be class indices in {bound}, found values in [{lo}, {hi}]")
    return labels


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without either."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def num_classes_of(model: nn.Module, example: Tensor | None = None) -> int | None:
    """The number of logits ``model`` produces.

    Read from ``model.arch_kwargs`` / ``model.num_classes`` when present, else found by running one
    ``example`` image through the model (eval mode, no gradient); None when neither is possible.
    """
    kwargs = getattr(model, "arch_kwargs", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("num_classes"), int):
        return kwargs["num_classes"]
    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    if example is None:
        return None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(example[:1].to(model_device(model)))
    finally:
        model.train(was_training)
    return int(out.shape[-1])


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
    """Index batches over ``range(n)``, shuffled when a generator is given.

    A trailing batch of one sample is merged into the previous batch: BatchNorm cannot train on one
    sample.
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


# ------------------------------------------------------------------------------------------------ loops


def train(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: str | torch.optim.Optimizer = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    cosine: bool = False,
    seed: int | None = 0,
    augment: Callable[[Tensor], Tensor] | None = None,
    val: tuple[Tensor, Tensor] | None = None,
    device: torch.device | str | None = None,
    desc: str = "train",
) -> TrainHistory:
    """Train ``model`` in place with cross-entropy on canonical ``images`` and ``labels``.

    The model is moved to ``device`` (default :func:`privis.random.default_device`) and stays there; it
    trains in train mode and gets its previous train/eval mode back at the end. Data stays where it is
    and moves to the device one batch at a time.

    Args:
        model: a classifier returning logits ``(N, num_classes)``.
        images: ``(N, C, H, W)`` float in ``[0, 1]``.
        labels: ``(N,)`` integer class indices in ``[0, num_classes)``.
        epochs: passes over the data (0 trains nothing).
        batch_size: samples per step; the data is reshuffled every epoch.
        optimizer: a name for :func:`privis.models.make_optimizer` (``"sgd"``, ``"adam"``, ``"adamw"``,
            ...) or a ready ``torch.optim.Optimizer`` over the model's parameters (then ``lr``,
            ``weight_decay`` and ``momentum`` are ignored).
        lr, weight_decay, momentum: optimizer settings (``momentum`` is beta1 for the Adam family).
        cosine: anneal the learning rate to 0 over ``epochs`` with a cosine schedule, stepped per epoch.
        seed: fixes shuffling and the RNG used by dropout and ``augment`` (None: OS entropy). With the same
            seed, initial weights and device, CPU runs give bit-identical weights.
        augment: optional callable mapping an image batch (on the device) to an image batch of the same
            shape, applied to every training batch.
        val: optional ``(images, labels)`` evaluated after every epoch.
        device: where to train.
        desc: label of the progress bar.

    Returns:
        A :class:`TrainHistory`.

    Raises:
        InvalidInputError: bad tensors (shape, NaN, range, label out of range, length mismatch) or settings.
        FloatingPointError: the loss became NaN or infinite (lower ``lr``).

    Examples:
        >>> from privis import data, models
        >>> digits = data.load("digits:train[:64]")
        >>> model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
        >>> history = models.train(model, digits.images, digits.labels, epochs=2, seed=0)
        >>> len(history.loss), 0.0 <= history.train_acc[-1] <= 1.0
        (2, True)
    """
    start = time.perf_counter()
    images = _check_images(images, "images")
    n_classes = num_classes_of(model, images)
    labels = _check_labels(labels, images.shape[0], n_classes, "labels")
    if val is not None:
        if not isinstance(val, (tuple, list)) or len(val) != 2:
            raise InvalidInputError("val must be an (images, labels) tuple")
        val_images = _check_images(val[0], "val images")
        val_labels = _check_labels(val[1], val_images.shape[0], n_classes, "val labels")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise InvalidInputError(f"epochs must be an int >= 0, got {epochs!r}")
    batch_size = _check_batch_size(batch_size)
    if augment is not None and not callable(augment):
        raise InvalidInputError(f"augment must be callable, got {type(augment).__name__}")
    seed = resolve_seed(seed)
    device = torch.device(device) if device is not None else default_device()

    model.to(device)
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    elif isinstance(optimizer, str):
        opt = make_optimizer(
            optimizer, model.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum
        )
    else:
        raise InvalidInputError(f"optimizer must be a name or a torch.optim.Optimizer, got {optimizer!r}")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1)) if cosine else None

    history = TrainHistory(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    fork_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
            torch.manual_seed(seed)
            for epoch in range(epochs):
                model.train()
                history.lr.append(float(opt.param_groups[0]["lr"]))
                total_loss, correct, seen = 0.0, 0, 0
                batches = _batches(images.shape[0], batch_size, generator)
                for index in progress(batches, total=len(batches), desc=f"{desc} {epoch + 1}/{epochs}"):
                    x = images[index].to(device, non_blocking=True)
                    y = labels[index].to(device, non_blocking=True)
                    if augment is not None:
                        x = augment(x)
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"training diverged: loss is {float(loss.detach())} at epoch {epoch + 1}; lower lr"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total_loss += float(loss.detach()) * y.shape[0]
                    correct += int((logits.detach().argmax(1) == y).sum())
                    seen += y.shape[0]
                history.loss.append(total_loss / seen)
                history.train_acc.append(correct / seen)
                if scheduler is not None:
                    scheduler.step()
                if val is not None:
                    val_logits = _predict_checked(model, val_images, max(batch_size, 512), None)
                    history.val_acc.append(_accuracy(val_logits, val_labels))
    finally:
        model.train(was_training)
    history.seconds = time.perf_counter() - start
    return history


def _predict_checked(model: nn.Module, images: Tensor, batch_size: int, device: Any) -> Tensor:
    """:func:`predict` on already validated images."""
    if device is not None:
        model.to(device)
    target = model_device(model)
    was_training = model.training
    model.eval()
    outputs: list[Tensor] = []
    try:
        with torch.no_grad():
            for index in _batches(images.shape[0], batch_size, None):
                outputs.append(model(images[index].to(target)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(1) == labels.cpu()).float().mean())


def predict(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> Tensor:
    """Logits ``(N, num_classes)`` (float32, on the CPU) of ``model`` for canonical ``images``.

    Runs in eval mode without gradients, batch by batch, on ``device`` (default: where the model's
    parameters are; a given device moves the model there), and restores the model's previous mode.

    Examples:
        >>> import torch
        >>> from privis import models
        >>> model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
        >>> models.predict(model, torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3, 10])
    """
    images = _check_images(images, "images")
    return _predict_checked(model, images, _check_batch_size(batch_size), device)


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> float:
    """Top-1 accuracy of ``model`` on ``(images, labels)`` as a fraction in ``[0, 1]``.

    Eval mode, no gradients; the model's previous mode is restored (see :func:`predict`).

    Raises:
        InvalidInputError: bad images, labels of the wrong length or out of the model's class range.

    Examples:
        >>> from privis import data, models
        >>> digits = data.load("digits:test[:32]")
        >>> model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
        >>> 0.0 <= models.evaluate(model, digits.images, digits.labels) <= 1.0
        True
    """
    images = _check_images(images, "images")
    labels = _check_labels(labels, images.shape[0], num_classes_of(model, images), "labels")
    return _accuracy(_predict_checked(model, images, _check_batch_size(batch_size), device), labels)
