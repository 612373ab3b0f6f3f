"""Veil Privacy: random pixel flipping followed by the gradient iteration algorithm.

Pang, Ma, Li, Zhou & Yao, "Veil Privacy on Visual Data: Concealing Privacy for Humans, Unveiling for DNNs",
ECCV 2024: Algorithm 1 and Sections 3.2-3.3.

1. Normalise to ``[-1, 1]`` (Algorithm 1 line 2: ``(x/255 - 0.5) / 0.5``).
2. Random pixel flipping, Eq. (1): a mask ``m`` with ``m = +1`` where ``U(0,1) - p >= 0`` and ``-1``
   otherwise; ``x~ = x * m`` element-wise, with an independent mask per image.
3. Gradient iteration, Eq. (2)-(3): for at most ``T`` steps minimise
   ``L(x~) = alpha * ||F(x~) - F(x)||_1 - beta * ||x~ - x||_2`` per sample, stopping a sample as soon as
   ``L(x~) < xi``.  ``F`` is a layer of the data owner's local model (the logits by default, Sec. 3.3).
4. Renormalise to the canonical ``[0, 1]`` form.

Choices the paper leaves open, and ours:

* Step rule and size (Eq. 3 writes plain gradient descent with an unspecified ``lr``). The default is a
  per-pixel Adam step (``optimizer="adam"``) because plain SGD on the L1 feature loss needs a step size
  tuned per dataset to reach ``xi``; ``optimizer="sgd"`` gives Eq. (3) literally. Both are batched but
  exactly per-sample: Adam's moments are element-wise and a stopped sample is never updated again, so a
  sample's trajectory does not depend on the rest of its batch.
* Box constraint: each iterate is projected onto ``[-1, 1]`` so the image that is checked against ``xi``
  is the image that is released (the paper's Renormalize step would otherwise have to clip afterwards and
  silently move the features).
* The stop test uses the loss of the current iterate before it is updated; a stopped sample keeps that
  iterate, so every sample counted in ``stop_reached_fraction`` (:meth:`Veil.diagnostics`) really satisfies
  ``L < xi``.

Masks come from OS entropy unless ``random_state`` is set, and are never stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from privis import references
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Protector,
    bool_param,
    check_images,
    check_labels,
    choice_param,
    float_param,
    int_param,
    model_param,
    seed_param,
    str_param,
    to_canonical,
    to_signed,
)
from privis.models import FeatureExtractor, available, create_seeded, freeze, model_device, train
from privis.models.optim import adam_update
from privis.progress import progress
from privis.random import default_device, resolve_seed, torch_generator

Init = Literal["flip", "noise", "none"]
Precision = Literal["fp32", "bf16", "fp16"]
#: autocast dtype of each ``precision`` (fp32: autocast off).
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Steps between two host checks of the stop mask on CUDA (each check waits for the device).
CUDA_CHECK_EVERY = 25
#: On the CPU the batch is iterated in chunks of at most this many elements (four 224x224 RGB images): at
#: 224x224 chunks of 3-4 images ran 1.2x faster than one of 12 (cache), at 32x32 and below it changes nothing.
CPU_CHUNK_ELEMENTS = 4 * 3 * 224 * 224
#: The working batch is compacted (stopped samples dropped, one gather) once this share of it has stopped.
COMPACT_SHARE = 0.25


def flip_mask(shape: torch.Size | tuple[int, ...], flip_ratio: float, generator: torch.Generator,
              device: torch.device | str = "cpu") -> Tensor:
    """Random flipping mask of Eq. (1): ``+1`` where ``u - p >= 0``, ``-1`` where ``u - p < 0``.

    Args:
        shape: ``(N, C, H, W)``; every element gets its own uniform draw ``u ~ U(0, 1)``.
        flip_ratio: ``p``; the expected fraction of ``-1`` entries.
        generator: source of the uniform draws.

    Returns:
        float32 tensor of ``shape`` with values in ``{-1, +1}``.
    """
    u = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return torch.where(u - flip_ratio >= 0, 1.0, -1.0)


def random_pixel_flip(signed: Tensor, flip_ratio: float, generator: torch.Generator) -> Tensor:
    """RPF(.) of Sec. 3.2 on ``[-1, 1]`` images ``(N, C, H, W)``: element-wise product with Eq. (1)'s mask."""
    return signed * flip_mask(signed.shape, flip_ratio, generator, signed.device)


@dataclass
class GIAStats:
    """Per-sample outcome of the gradient iteration: final loss, steps taken, whether ``L < xi`` was met."""

    final_loss: Tensor
    steps: Tensor
    reached: Tensor


def gradient_iteration(
    start: Tensor,
    target_signed: Tensor,
    features: nn.Module,
    *,
    alpha: float,
    beta: float,
    steps: int,
    stop_loss: float,
    step_size: float,
    optimizer: str = "adam",
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    precision: str = "fp32",
    compile: bool = False,
    check_every: int | None = None,
) -> tuple[Tensor, GIAStats]:
    """GIA(.) of Sec. 3.3, batched: minimise Eq. (2) per sample with per-sample early stopping.

    Runs on the device of ``features`` (inputs are moved there); the iterates come back on the device of
    ``start``, the statistics on the device of ``features``.

    Every step runs on the whole working batch with no host synchronisation: the stop test ``L < xi`` is a
    device-side mask, and a stopped sample's iterate is masked out of every later update (``torch.where``,
    so even a non-finite gradient of a stopped sample cannot reach it). Every ``check_every`` steps the
    host looks at the mask once: it ends the loop when no sample is left and, unless ``F`` is compiled
    (fixed shapes), drops the stopped samples from the working batch once a quarter of it has stopped.
    On the CPU the batch runs in chunks of ``CPU_CHUNK_ELEMENTS``. In fp32 each sample's result is the one
    a loop over that sample alone gives (tested on 8x8 images), whatever ``check_every``; convolutions may
    round differently at other batch sizes, and Adam's normalised step can amplify that (largest element
    difference 0.013 after 10 steps at 224x224 RGB between chunks of 8 and of 2 images).

    Args:
        start: ``(N, C, H, W)`` initial iterate in ``[-1, 1]`` (the flipped images).
        target_signed: ``(N, C, H, W)`` originals in ``[-1, 1]``.
        features: ``F``; maps canonical ``[0, 1]`` images ``(N, C, H, W)`` to ``(N, D)`` features.
        alpha, beta: Eq. (2) weights of the feature L1 term and the (negated) pixel L2 term.
        steps: ``T``, the maximum number of updates per sample.
        stop_loss: ``xi``; a sample stops as soon as its loss is below it.
        step_size: ``lr`` of Eq. (3).
        optimizer: ``"sgd"`` (Eq. 3 as written) or ``"adam"`` (element-wise Adam moments).
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"``: ``F``'s forward and backward passes under
            ``torch.autocast`` with that dtype (the loss, the iterates and the optimizer state stay float32).
            Tolerance of bf16 against fp32 (CPU autocast, tested on 8x8 digits with LeNet-5, ``T = 100``,
            Adam 0.05, ``xi = 0.3``): mean absolute output difference below 0.1 in ``[-1, 1]`` units
            (measured 0.074), 99 % of elements within 1.0 (measured 0.69), share reaching ``xi`` within
            0.05 (measured 0.031 against 0.016) and mean final loss within 2 % (measured 0.15 %). No
            tighter per-element bound holds than the box: Adam moves a pixel whose gradient is near zero by
            about ``step_size`` per step whichever way rounding tips it (largest measured: 1.31). The gap
            grows with the image and the steps run: at 3x224x224 with all 300 steps the mean absolute
            difference was 0.30, so check bf16 on your data before relying on it. fp16 is meant for CUDA.
        compile: on CUDA, run ``F`` through ``torch.compile`` with CUDA graphs (``mode="reduce-overhead"``);
            ignored elsewhere (on the CPU it compiled for 90 s and then ran slower than eager).
        check_every: steps between host checks of the stop mask; None: every step on the CPU (free
            there), ``CUDA_CHECK_EVERY`` elsewhere. Outputs do not depend on it.

    Returns:
        The final iterates ``(N, C, H, W)`` in ``[-1, 1]`` and a :class:`GIAStats`.

    Raises:
        InvalidInputError: unknown ``optimizer`` or ``precision``.
    """
    if optimizer not in ("sgd", "adam"):
        raise InvalidInputError(f"Veil optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if precision not in ("fp32", *AUTOCAST_DTYPES):
        raise InvalidInputError(f"Veil precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
    n = start.shape[0]
    device = model_device(features)
    chunk = max(1, CPU_CHUNK_ELEMENTS // start[0].numel()) if device.type == "cpu" else n
    if n > chunk:  # samples are independent: each chunk runs all its steps while its tensors stay in cache
        options: dict[str, Any] = dict(alpha=alpha, beta=beta, steps=steps, stop_loss=stop_loss, step_size=step_size,
                                       optimizer=optimizer, betas=betas, eps=eps, precision=precision,
                                       compile=compile, check_every=check_every)
        parts = [gradient_iteration(start[i:i + chunk], target_signed[i:i + chunk], features, **options)
                 for i in range(0, n, chunk)]
        return torch.cat([out for out, _ in parts]), GIAStats(
            final_loss=torch.cat([s.final_loss for _, s in parts]), steps=torch.cat([s.steps for _, s in parts]),
            reached=torch.cat([s.reached for _, s in parts]))
    x = start.detach().to(device, copy=True)
    target = target_signed.detach().to(device)
    autocast = torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision), enabled=precision != "fp32")
    net: Callable[[Tensor], Tensor] = features
    compiled = compile and device.type == "cuda"
    if compiled:
        net = torch.compile(features, mode="reduce-overhead")
    if check_every is None:
        check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY

    def loss_and_grad(xw: Tensor, tw: Tensor, fw: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
        """Eq. (2) per sample and, when ``grad``, its gradient with respect to ``xw``."""
        xg = xw.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            with autocast:
                feat = net(((xg + 1.0) * 0.5).contiguous(memory_format=torch.channels_last))
            feat_term = (feat.float() - fw).abs().flatten(1).sum(1)
            # sqrt with a tiny floor: the gradient of ||d||_2 is undefined at d = 0 (the init="none" start)
            pixel_term = ((xg - tw).flatten(1).square().sum(1) + 1e-12).sqrt()
            loss = alpha * feat_term - beta * pixel_term
        if not grad:
            return loss, None
        (g,) = torch.autograd.grad(loss.sum(), xg)
        return loss.detach(), g

    with torch.no_grad(), autocast:
        # a copy: under CUDA graphs F's output buffer is reused by the next call
        target_features = net(to_canonical(target.clone())).float().clone()
    final_loss = torch.full((n,), float("nan"), device=device)
    taken = torch.zeros(n, dtype=torch.long, device=device)
    reached = torch.zeros(n, dtype=torch.bool, device=device)
    # the working batch is rows `rows` of the full batch; compaction writes its iterates back to `x` first
    rows = torch.arange(n, device=device)
    xw, tw, fw = x, target, target_features
    active = torch.ones(n, dtype=torch.bool, device=device)
    m = torch.zeros_like(x) if optimizer == "adam" else None
    v = torch.zeros_like(x) if optimizer == "adam" else None
    for t in range(1, steps + 1):
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()
        loss, grad = loss_and_grad(xw, tw, fw, True)
        assert grad is not None  # asked for
        done = active & (loss < stop_loss)
        final_loss[rows] = torch.where(active, loss, final_loss[rows])
        reached[rows] |= done
        active &= ~done
        taken[rows] += active
        if optimizer == "adam":
            assert m is not None and v is not None  # allocated above for adam
            update = adam_update(m, v, grad, t, step_size, betas=betas, eps=eps)
        else:
            update = step_size * grad
        # stopped samples keep their iterate (a where, not a product: a non-finite update cannot leak in)
        xw = torch.where(active.view(-1, 1, 1, 1), (xw - update).clamp_(-1.0, 1.0), xw)
        if t % check_every and t < steps:
            continue
        left = int(active.sum())
        if left == 0:
            break
        if not compiled and t < steps and left <= (1 - COMPACT_SHARE) * active.numel():
            x[rows] = xw
            keep = active.nonzero().squeeze(1)
            rows, xw, tw, fw, active = rows[keep], xw[keep], tw[keep], fw[keep], active[keep]
            if m is not None and v is not None:
                m, v = m[keep], v[keep]
    if xw.shape[0] == n:
        x = xw
    else:
        x[rows] = xw
    if bool(active.any()):
        last, _ = loss_and_grad(xw, tw, fw, False)
        final_loss[rows] = torch.where(active, last, final_loss[rows])
        reached[rows] = torch.where(active, last < stop_loss, reached[rows])
    return x.to(start.device), GIAStats(final_loss=final_loss, steps=taken, reached=reached)


@register
class Veil(Protector):
    """Veil Privacy (Pang et al., ECCV 2024, Algorithm 1): hide what a person sees, keep what ``F`` sees.

    Args:
        flip_ratio: ``p`` of Eq. (1), in ``(0, 1)``; paper default 0.5.
        alpha, beta: Eq. (2) weights; paper defaults 0.999 and 0.001.
        steps: ``T``, maximum gradient iterations per image; paper default 300. ``0`` disables GIA
            (the "RPF without GIA" ablation).
        stop_loss: ``xi``; paper default 0.3.
        local_model: the owner's local model whose layer is ``F``. When None, ``fit`` trains
            ``local_arch`` on the owner's data.
        feature_layer: which layer of the local model is ``F``: ``"logits"`` (the paper's choice) or any
            name from :func:`privis.models.layer_names` (Table 5: ``fc2``, ``fc1``, ``conv2`` ...).
        init: ``"flip"`` (RPF, the paper), ``"noise"`` (Gaussian noise start, Table 5 "Noise") or
            ``"none"`` (start from ``x`` itself: GIA without RPF).
        optimizer, step_size: the GIA update rule and ``lr`` of Eq. (3) (left open by the paper).
        local_arch, local_epochs, local_lr: how ``fit`` trains the local model when none is given.
        batch_size: images per GIA batch.
        noise_std: standard deviation (in ``[-1, 1]`` units) of the ``init="noise"`` start.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: ``F``'s passes under ``torch.autocast``
            (see :func:`gradient_iteration` for the tolerance against fp32; fp16 is meant for CUDA).
        compile: on CUDA, run ``F`` through ``torch.compile`` with CUDA graphs (the first batch of each
            shape pays the compilation); ignored on the CPU, where it measured slower.
        random_state: seed for masks and local training; None draws both from OS entropy.

    Examples:
        A small run on 8x8 digits (the paper's settings take longer: ``steps=300`` and a trained local model):

        >>> from privis import data, metrics
        >>> from privis.methods.veil import Veil
        >>> train = data.load("digits:train[:64]")
        >>> veil = Veil(steps=5, local_epochs=1, random_state=8_271_532_904).fit(train.images, train.labels)
        >>> veiled = veil.transform(train.images[:8])
        >>> veiled.shape, bool(veiled.min() >= 0 and veiled.max() <= 1)
        (torch.Size([8, 1, 8, 8]), True)
        >>> sorted(veil.diagnostics())
        ['gia_final_loss_mean', 'gia_steps_mean', 'stop_reached_fraction']
    """

    name = "veil"
    citation = references.VEIL
    deployment = "original"  # Section 5: models trained on veiled data recognise the original data
    param_specs = {
        "flip_ratio": float_param("p of Eq. (1), the expected share of flipped pixels", gt=0, lt=1),
        "alpha": float_param("Eq. (2) weight of the feature L1 term", ge=0, le=1e6),
        "beta": float_param("Eq. (2) weight of the (negated) pixel L2 term", ge=0, le=1e6),
        "steps": int_param("T, most gradient iterations per image (0: RPF alone)", ge=0, le=100_000),
        "stop_loss": float_param("xi: an image stops once its Eq. (2) loss is below it (any finite number)"),
        "local_model": model_param("the owner's local model whose layer is F (none: fit trains local_arch)"),
        "feature_layer": str_param("layer of the local model used as F: logits or a layer name"),
        "init": choice_param("start of the iteration: flip (RPF), noise or none", ("flip", "noise", "none")),
        "optimizer": choice_param("GIA update rule", ("sgd", "adam")),
        "step_size": float_param("lr of Eq. (3), [-1, 1] pixel units per step", gt=0, le=100),
        "local_arch": choice_param("architecture fit trains when no local_model is given", available),
        "local_epochs": int_param("epochs of that training", ge=1, le=10_000),
        "local_lr": float_param("learning rate of that training", gt=0, le=100),
        "batch_size": int_param("images per GIA batch (memory grows with it)", ge=1, le=65_536),
        "noise_std": float_param("standard deviation of the init=noise start, [-1, 1] units", ge=0, le=100),
        "precision": choice_param("autocast dtype of F's passes in the iteration", ("fp32", "bf16", "fp16")),
        "compile": bool_param("CUDA only: torch.compile F with CUDA graphs"),
        "random_state": seed_param(),
    }
    stochastic = True

    def __init__(
        self,
        flip_ratio: float = 0.5,
        alpha: float = 0.999,
        beta: float = 0.001,
        steps: int = 300,
        stop_loss: float = 0.3,
        local_model: nn.Module | None = None,
        feature_layer: str = "logits",
        init: Init = "flip",
        optimizer: str = "adam",
        step_size: float = 0.05,
        local_arch: str = "lenet5",
        local_epochs: int = 8,
        local_lr: float = 1e-3,
        batch_size: int = 512,
        noise_std: float = 1.0,
        precision: Precision = "fp32",
        compile: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.flip_ratio = flip_ratio
        self.alpha = alpha
        self.beta = beta
        self.steps = steps
        self.stop_loss = stop_loss
        self.local_model = local_model
        self.feature_layer = feature_layer
        self.init = init
        self.optimizer = optimizer
        self.step_size = step_size
        self.local_arch = local_arch
        self.local_epochs = local_epochs
        self.local_lr = local_lr
        self.batch_size = batch_size
        self.noise_std = noise_std
        self.precision = precision
        self.compile = compile
        self.random_state = random_state

    def fit(self, images: Tensor, labels: Tensor | None = None) -> Veil:
        """Train the local model on the owner's data (unless one was given) and fix ``F``.

        The local model is a frozen copy on :func:`privis.random.default_device`: a given ``local_model``
        is copied (the caller's object keeps its mode, gradients, weights and device); otherwise
        ``local_arch`` is initialised and trained with ``random_state`` (None: a seed from OS entropy) on a
        forked RNG, so the caller's global torch RNG is left alone.

        Sets ``local_model_`` and ``features_`` (``F``). Returns ``self``.

        Raises:
            InvalidInputError: bad parameters or images, no labels to train the local model with, or an
                unknown ``feature_layer``.
        """
        self.validate_params()
        images = check_images(images)
        labels = check_labels(labels, images.shape[0])
        if self.local_model is not None:
            model = copy.deepcopy(self.local_model)
        else:
            if labels is None:
                raise InvalidInputError("Veil.fit needs labels to train the local model (or pass local_model=)")
            seed = resolve_seed(self.random_state)
            model = create_seeded(self.local_arch, seed, num_classes=int(labels.max()) + 1,
                                  in_channels=images.shape[1], image_size=(images.shape[-2], images.shape[-1]))
            train(model, images, labels, epochs=self.local_epochs, lr=self.local_lr, seed=seed,
                  desc="veil: local model")
        freeze(model)
        # GIA runs F forward and backward T times per image: channels-last weights make the small
        # convolutions of LeNet-style nets about twice as fast on CPU (measured in benchmarks/bench_veil.py).
        # torch's stub of Module.to omits memory_format, which Module.to accepts (torch docs)
        self.local_model_ = model.to(default_device()).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.features_ = FeatureExtractor(self.local_model_, self.feature_layer).eval()
        return self

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Veil ``images`` ``(N, C, H, W)`` in ``[0, 1]``; returns the same shape in ``[0, 1]``, float32, on
        the device of ``images`` (the gradient iteration runs on the local model's device).

        The GIA statistics of the call are reported by :meth:`diagnostics`.

        Raises:
            NotFittedError: ``fit`` was not called.
            InvalidInputError: bad parameters or images.
        """
        if not hasattr(self, "features_"):
            raise NotFittedError("Veil is not fitted: call fit() first (it trains or sets the local model)")
        self.validate_params()
        images = check_images(images)
        check_labels(labels, images.shape[0])
        device = model_device(self.local_model_)
        generator = torch_generator(self.random_state)
        out = torch.empty_like(images)
        losses, taken, reached = [], [], []
        starts = range(0, images.shape[0], self.batch_size)
        for start in progress(starts, total=len(starts), desc="veil", unit="batch"):
            batch = images[start:start + self.batch_size].to(device)
            signed = to_signed(batch)
            if self.init == "flip":
                init = random_pixel_flip(signed, self.flip_ratio, generator)
            elif self.init == "noise":
                noise = torch.randn(signed.shape, generator=generator) * self.noise_std
                init = (signed + noise.to(device)).clamp(-1.0, 1.0)
            else:
                init = signed.clone()
            veiled, stats = gradient_iteration(
                init, signed, self.features_, alpha=self.alpha, beta=self.beta, steps=self.steps,
                stop_loss=self.stop_loss, step_size=self.step_size, optimizer=self.optimizer,
                precision=self.precision, compile=self.compile,
            )
            out[start:start + batch.shape[0]] = to_canonical(veiled).to(out.device)
            losses.append(stats.final_loss.cpu())
            taken.append(stats.steps.cpu())
            reached.append(stats.reached.cpu())
        self._stats = GIAStats(torch.cat(losses), torch.cat(taken), torch.cat(reached))
        return out

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``: ``stop_reached_fraction`` (share of samples with ``L < xi``),
        ``gia_steps_mean`` and ``gia_final_loss_mean``; empty before the first call."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            return {}
        return {
            "stop_reached_fraction": float(stats.reached.float().mean()),
            "gia_steps_mean": float(stats.steps.float().mean()),
            "gia_final_loss_mean": float(stats.final_loss.mean()),
        }

    def invariants(self) -> dict[str, Any]:
        """``{"sign_magnitude": True}``: the flips of Eq. (1) keep ``|2x - 1|`` and the gradient iteration moves
        pixels only as far as the feature loss asks (see :meth:`Protector.invariants`)."""
        return {"sign_magnitude": True}

    def training_augmentation(self, name: str) -> Callable[[Tensor], Tensor] | None:
        """``"sign-flip"``: re-flip each training batch with fresh Eq. (1) masks of ratio ``flip_ratio``.

        Beyond the paper. A model trained on veiled data sees one random sign pattern per pixel;
        re-flipping each batch teaches it that the sign of a ``[-1, 1]`` pixel carries no class
        information, which is what lets it recognise originals (another sign pattern of the same
        magnitudes). The price is stated plainly: such a model relies on ``|x|``, the invariant that
        ``privis attack invariants`` exploits.
        """
        if name == "default":
            name = self.default_augmentation
        if name != "sign-flip":
            return super().training_augmentation(name)
        generator = torch_generator(self.random_state)

        def sign_flip(batch: Tensor) -> Tensor:
            mask = flip_mask(batch.shape, self.flip_ratio, generator, batch.device)
            return to_canonical(to_signed(batch) * mask)

        return sign_flip

