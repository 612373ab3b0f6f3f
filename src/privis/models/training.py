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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis import data as pdata
from privis.data.checks import check_images, check_int, check_labels, check_two_classes
from privis.errors import InvalidInputError
from privis.models.build import create_seeded
from privis.models.checkpoint import save_checkpoint
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
    """:func:`privis.data.checks.check_images` for any channel count (the model decides what it takes)."""
    return check_images(images, name=name, channels=None)


def _check_labels(labels: Any, n: int, num_classes: int | None, name: str) -> Tensor:
    """:func:`privis.data.checks.check_labels`, labels required."""
    if labels is None:
        raise InvalidInputError(f"{name} are required: a (N,) tensor of class indices")
    return check_labels(labels, n, num_classes=num_classes, name=name)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without either."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def num_classes_of(model: nn.Module, example: Tensor | None = None) -> int | None:
    """The number of logits ``model`` produces.

    Read from ``model.arch_kwargs`` / ``model.num_classes`` when present, else found by running one
    ``example`` image through the model (eval mode, no gradient); None when neither is possible.
    """
    kwargs = getattr(model, "arch_kwargs", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("num_classes"), int):
        return kwargs["num_classes"]
    declared = getattr(model, "num_classes", None)
    if isinstance(declared, int):
        return declared
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


def index_batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
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
        InvalidInputError: bad tensors (shape, NaN, range, label out of range, length mismatch), settings, or
            one training image for a model with BatchNorm.
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
    batch_size = check_int(batch_size, "batch_size")
    if epochs > 0 and images.shape[0] < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                   for m in model.modules()):
        raise InvalidInputError(f"{type(model).__name__} has BatchNorm layers, which cannot train on "
                                f"{images.shape[0]} image(s): give at least 2")
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
                batches = index_batches(images.shape[0], batch_size, generator)
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
            for index in index_batches(images.shape[0], batch_size, None):
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
    return _predict_checked(model, images, check_int(batch_size, "batch_size"), device)


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
    return _accuracy(_predict_checked(model, images, check_int(batch_size, "batch_size"), device), labels)


# --------------------------------------------------------------------------------------------- recipes


@dataclass
class SpecTraining:
    """What :func:`train_from_spec` made.

    Attributes:
        model: the trained classifier (on the device it trained on).
        history: the :class:`TrainHistory` of the run (``val_acc`` holds the test accuracy per epoch when a
            test spec was given).
        train_size: the number of training images.
        checkpoint: where the checkpoint was written.
    """

    model: nn.Module
    history: TrainHistory
    train_size: int
    checkpoint: Path

    @property
    def train_acc(self) -> float:
        """Accuracy on the training batches of the last epoch, in ``[0, 1]``."""
        return self.history.train_acc[-1]

    @property
    def test_acc(self) -> float | None:
        """Accuracy on the test data after the last epoch, in ``[0, 1]``; None without test data."""
        return self.history.val_acc[-1] if self.history.val_acc else None


def train_from_spec(
    data: str,
    out: str | Path,
    *,
    model: str = "lenet5",
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    optimizer: str = "adam",
    test: str | None = None,
    seed: int = 0,
) -> SpecTraining:
    """Train a zoo classifier on a dataset spec and write its checkpoint (``privis train``).

    The model is :func:`privis.models.create_seeded` with ``seed``, sized for the data (classes, channels,
    image size), trained by :func:`train` with cross-entropy (same ``seed``), and saved with
    :func:`privis.models.save_checkpoint` (``extra``: the data spec, class names and epochs) only when training
    finished.

    Args:
        data: training dataset spec, e.g. ``"fashion-mnist:train[:5000]"`` (see :func:`privis.data.load`).
        out: checkpoint path (``.pt``), written atomically.
        model: architecture (``privis models`` lists them).
        epochs: passes over the data (``>= 1``).
        lr, batch_size, optimizer: training settings of :func:`train`.
        test: optional evaluation dataset spec (images of the training data's size and channels), scored after
            every epoch.
        seed: fixes the initial weights and the training run.

    Returns:
        A :class:`SpecTraining`.

    Raises:
        DatasetError, ImageFileError: an unusable dataset spec or file.
        InvalidInputError: bad settings, an unknown architecture, or test data of another image size or channel
            count.
        FloatingPointError: training diverged (nothing is written; lower ``lr``).

    Examples:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     run = train_from_spec("digits:train[:64]", pathlib.Path(tmp) / "m.pt", epochs=1)
        ...     run.train_size, run.checkpoint.is_file(), 0.0 <= run.train_acc <= 1.0
        (64, True, True)
    """
    epochs = check_int(epochs, "epochs")
    train_data = pdata.load(data)
    check_two_classes(train_data.labels, source=data)
    val = None
    if test:
        test_data = pdata.load(test)
        if test_data.shape != train_data.shape:
            raise InvalidInputError(f"the test data {test} holds {'x'.join(map(str, test_data.shape))} (CxHxW) images "
                                    f"but the training data {data} holds {'x'.join(map(str, train_data.shape))}: "
                                    "test on images of the training size and channels")
        val = (test_data.images, test_data.labels)
    net = create_seeded(model, seed, num_classes=train_data.num_classes, in_channels=train_data.shape[0],
                        image_size=train_data.shape[1:])
    history = train(net, train_data.images, train_data.labels, epochs=epochs, lr=lr, batch_size=batch_size,
                    optimizer=optimizer, seed=seed, val=val, desc=f"train {model}")
    path = save_checkpoint(net, out, extra={"data": data, "class_names": train_data.class_names, "epochs": epochs})
    return SpecTraining(net, history, len(train_data), Path(path))
