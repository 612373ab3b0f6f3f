"""Protective perturbation: a U-Net adds a perturbation that hides the image from people, not from the model.

Ye, Tang, Phan, Xie, Yuan & Wei, "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189: Sections 3-4 (Algorithm 1, Eq. 1-5).

The data owner runs a generator ``U(.)`` (:class:`privis.models.unet.UNetPerturbation`) on each image
and sends only ``x' = clamp(x + U(x))`` (Sec. 3.2, Fig. 3) to a service whose classifier ``F_target``
is left unchanged. ``U`` is trained by Algorithm 1 with both classifiers frozen:

* Eq. (1): ``Loss_target = CE(F_target(x'), y)``: the target must still see the true class;
* Eq. (2): ``Loss_aux = -CE(F_aux(x'), y)``: an auxiliary classifier, the stand-in for a person looking
  at ``x'``, must not;
* Eq. (3): ``Loss_SI = SSIM(x, x')``: the protected image must not look like the original;
* Eq. (4): ``Loss = w_target * Loss_target + w_aux * Loss_aux + w_SI * Loss_SI``, minimised with AdamW
  (Sec. 4.1.3: ``w = 1.0 / 1.0 / 0.5``, lr 5e-3, weight decay 5e-4, batch 256); after the last epoch the
  generator with the lowest validation loss is kept (Fig. 4, Sec. 4.1.3).

The sign of the SSIM term, exactly as the paper states it. Eq. (3) and (4) add ``+ w_SI * SSIM(x, x')``
(signed SSIM, not its absolute value) to a loss that is minimised, so training lowers the similarity:
this is the intended direction (Sec. 3.3, requirement (3): "the similarity level between x_i and x'_i
should be as low as possible"). Checked: the gradient of ``+SSIM`` pushes SSIM down, and a generator
trained with only this term drives SSIM from 1 towards 0 and below (``tests/methods``). The catch is the
"and below": signed SSIM keeps falling past 0 towards -1, an *inverted* image (Sec. 4.2.1 itself notes
"a negative SSIM value means an inverted structure of the image" and therefore reports ``|SSIM|``), and
an inverted image is still recognisable to a person.

Two deviations from Eq. (2)-(3) are the defaults, because the literal loss failed here (Fashion-MNIST,
LeNet-5 target at 79.25 %, VGG auxiliary, 4,500 training images, ``width=16``; the ablation table of
``privis experiment perturbation-matrix`` repeats the comparison):

* ``aux_loss="complement"`` (default) replaces Eq. (2)'s ``-CE(F_aux(x'), y)``, which is unbounded below,
  by the bounded ``-log(1 - p_aux(y | x'))`` (:func:`aux_loss_term`). With Eq. (2) as written the
  auxiliary term dominated from the first epoch (it fell to -25 while the target's CE rose) and the target's
  accuracy on protected images collapsed to 13.3 % after 3 epochs; with the complement it was 49.7 % after
  3 epochs and 79.0 % after 12 (auxiliary 0.7 %). ``aux_loss="ce"`` is the paper's term.
* ``ssim_term="abs"`` (default) minimises ``|SSIM(x, x')|``, the quantity the paper reports, instead of
  signed SSIM. With signed SSIM (and the complement) the generator went on to inverted images: SSIM
  -0.213 (|SSIM| 0.213) at 79.0 % target accuracy; with ``"abs"``: |SSIM| 0.045 at 77.65 % (auxiliary
  0.75 %). ``ssim_term="signed"`` is the paper's Eq. (3).

Choices the paper leaves open, and ours:

* Classifiers: ``F_target`` and ``F_aux`` are user-supplied (``target_model``/``aux_model``) or trained
  here on the fitting data with :func:`privis.models.train`. The default target (LeNet-5, Adam at 1e-3,
  batch 128, :func:`classifier_epochs_for` epochs, seeded by ``random_state``) is trained exactly as
  ``privis evaluate`` trains its baseline model, so with the same seed that baseline *is* the unchanged
  target (the evaluation's ``baseline_acc_protected`` is then the target's accuracy on protected images;
  ``diagnostics`` reports ``target_acc_protected`` from the protector's own target as a cross-check).
* Validation data (the paper uses half of CIFAR-10's test split): ``val_fraction`` of the fitting data,
  a seeded split; the generator trains on the rest. The classifiers are trained on all of it.
* Augmentation (Sec. 3.2 "random cropping, random horizontal flipping"): per-image random crops after
  ``H // 8`` px of edge padding and random horizontal flips, vectorised over the batch.
* Budget: the paper trains 100 epochs of a ``width=32`` U-Net on a GPU. The defaults here are 10 epochs
  and ``width=16`` (a quarter of the work) because this project runs on 2 shared CPU cores; both are
  parameters.
* "No auxiliary model" (Table 2, last column): ``use_aux=False`` drops Eq. (2) from the loss. The
  auxiliary model is still built (unless ``aux_arch=None``) to *measure* ``aux_acc_protected``: it is then
  a classifier the generator never saw.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from privis import data as pdata
from privis import models, references
from privis.data.checks import check_two_classes
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
)
from privis.methods.perturbation_training import (
    AuxLoss,
    GeneratorHistory,
    SsimTerm,
    classifier_epochs_for,
    train_generator,
)
from privis.models.unet import SIZE_MULTIPLE, UNetPerturbation
from privis.random import default_device, resolve_seed
from privis.sysinfo import available_memory_bytes

#: Pixels (images x height x width) the generator runs on at once in ``transform`` on the CPU: 256 images
#: of 64 x 64.
_CHUNK_PIXELS = 256 * 64 * 64
#: Bytes of U-Net activations held per padded pixel, per unit of ``width`` and per byte of the compute dtype
#: during inference: an upper bound (the skip connections hold about ``2 * width`` channels per pixel, the
#: decoder's widest step about ``4 * width`` more), so a CUDA chunk sized by it fits in the free memory.
_ACTIVATION_CHANNELS_PER_WIDTH = 16
#: Share of the device's free memory a CUDA chunk may fill (the rest: the allocator's rounding, cuDNN's
#: workspace, the output).
_CUDA_MEMORY_SHARE = 0.5
#: The most images in one CUDA chunk (bounds the index arithmetic and the host copy of a chunk).
_MAX_CUDA_CHUNK = 65_536
Precision = Literal["fp32", "fp16", "bf16"]
#: The compute dtype of each ``precision`` (None: plain float32, no autocast).
_PRECISION_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Largest ``|transform(precision="bf16") - transform(precision="fp32")|`` accepted (pixels in [0, 1], about
#: 5/255): bfloat16 keeps 8 significant bits, so each layer rounds ``U(x)`` by up to 2^-8 of its size while
#: ``x + U(x)`` stays float32. Measured: 0.0011 (3x32x32) and 0.0013 (3x224x224) for a width-16 U-Net
#: with random weights, 0.0029 for one trained on digits (float16 keeps 11 bits: smaller still).
BF16_TOLERANCE = 0.02





def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` for a generator on ``device`` (None: plain float32).

    Raises:
        InvalidInputError: an unknown precision, or ``"fp16"`` on a device other than CUDA (CPU float16
            convolutions are slow or missing).
    """
    if precision not in _PRECISION_DTYPES:
        raise InvalidInputError(f"perturbation: unknown precision {precision!r} (use one of "
                                f"{', '.join(_PRECISION_DTYPES)})")
    dtype = _PRECISION_DTYPES[precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise InvalidInputError(f"perturbation: precision='fp16' needs the generator on a CUDA device, not "
                                f"{device.type}; use precision='bf16' or 'fp32'")
    return dtype


def transform_chunk_size(shape: torch.Size | tuple[int, ...], device: torch.device, *, width: int, batch_size: int,
                         dtype: torch.dtype | None = None) -> int:
    """Images the generator protects at once in :meth:`ProtectivePerturbation.transform`.

    Args:
        shape: the input's ``(N, C, H, W)``.
        device: the generator's device.
        width: the U-Net's base width (its activations grow linearly with it).
        batch_size: the protector's ``batch_size``.
        dtype: the autocast dtype (None: float32).

    Returns:
        On CUDA: as many images (at most ``N``) as :data:`_CUDA_MEMORY_SHARE` of the device's free memory
        holds at :data:`_ACTIVATION_CHANNELS_PER_WIDTH` ``* width`` activation channels per pixel of the
        input padded to a multiple of ``SIZE_MULTIPLE``, so one launch fills the device. Elsewhere: at most
        ``max(batch_size, 256)`` images and :data:`_CHUNK_PIXELS` pixels (a 224 x 224 batch of 256 would
        hold several GiB of activations in host memory). At least 1.
    """
    n, _c, h, w = shape
    if device.type != "cuda":
        return max(1, min(max(batch_size, 256), _CHUNK_PIXELS // (h * w)))
    m = SIZE_MULTIPLE
    padded = (-(-h // m) * m) * (-(-w // m) * m)
    element = (torch.finfo(dtype).bits if dtype is not None else 32) // 8
    per_image = padded * width * _ACTIVATION_CHANNELS_PER_WIDTH * element
    fits = int(_CUDA_MEMORY_SHARE * available_memory_bytes(device)) // per_image
    return max(1, min(n, _MAX_CUDA_CHUNK, fits))


# ------------------------------------------------------------------------------------------------ protector


@register
class ProtectivePerturbation(Protector):
    """Protective perturbation (Ye et al., MMSys 2022, Algorithm 1): hide from people, keep the target model.

    Args:
        target_weight, aux_weight, ssim_weight: ``w_target``, ``w_aux``, ``w_SI`` of Eq. (4); paper
            defaults 1.0, 1.0, 0.5.
        use_aux: include Eq. (2) in the loss; False is the paper's "no auxiliary model" variant.
        ssim_term: ``"abs"`` (minimise ``|SSIM|``, default) or ``"signed"`` (Eq. 3 as written); see the
            module docstring for why the default deviates.
        aux_loss: ``"complement"`` (bounded, default) or ``"ce"`` (Eq. 2 as written); see
            :func:`aux_loss_term` and the module docstring.
        target_model: the service's frozen classifier ``F_target``; None trains ``target_arch`` on the
            fitting data.
        aux_model: the frozen auxiliary classifier ``F_aux``; None trains ``aux_arch`` (None: no auxiliary
            model at all, which requires ``use_aux=False``).
        target_arch, aux_arch: zoo architectures trained when no model is given.
        classifier_epochs, classifier_lr, classifier_batch_size: their training (Adam; the defaults are
            ``privis evaluate``'s, so the default target equals that protocol's baseline model;
            ``classifier_epochs=None`` is :func:`classifier_epochs_for` the data size).
        generator_model: a generator to start from (e.g. a loaded checkpoint); None builds a fresh
            ``UNetPerturbation(width=width)``. With ``epochs=0`` it is used as is.
        width: base width of a fresh generator (the paper's is 32; 16 by default, see the module docstring).
        epochs: ``max_epochs`` of Algorithm 1 (paper: 100; 10 by default here).
        lr, weight_decay, batch_size: AdamW settings; paper defaults 5e-3, 5e-4, 256.
        val_fraction: share of the fitting data held out to pick the best epoch.
        augment: random crop and flip of training batches (Sec. 3.2).
        ssim_win_size: SSIM window of the loss (shrunk to fit small images).
        precision: compute precision of :meth:`transform` (training is always float32): ``"fp32"`` (default),
            or ``"bf16"``/``"fp16"``: the generator's convolutions run under ``torch.autocast`` in bfloat16 /
            float16 while ``x + U(x)`` and the clamp stay float32, so outputs are float32 within
            :data:`BF16_TOLERANCE` of fp32 (max abs difference). ``"fp16"`` needs the generator on a CUDA
            device; bf16 runs on CPUs too (fast where the CPU has bfloat16 instructions, e.g. AVX512-BF16).
        random_state: seeds classifier training, initialisation, split, shuffling and augmentation; None
            draws a seed from OS entropy.

    Examples:
        A tiny run (one epoch each; the defaults train for minutes):

        >>> from privis import data
        >>> from privis.methods.perturbation import ProtectivePerturbation
        >>> train = data.load("digits:train[:64]")
        >>> pp = ProtectivePerturbation(epochs=1, classifier_epochs=1, width=4, random_state=8_271_532_904)
        >>> protected = pp.fit(train.images, train.labels).transform(train.images[:8])
        >>> protected.shape, bool(protected.min() >= 0 and protected.max() <= 1)
        (torch.Size([8, 1, 8, 8]), True)
    """

    name = "perturbation"
    citation = references.PROTECTIVE_PERTURBATION
    param_specs = {
        "target_weight": float_param("w_target of Eq. (4)", ge=0, le=1e6),
        "aux_weight": float_param("w_aux of Eq. (4)", ge=0, le=1e6),
        "ssim_weight": float_param("w_SI of Eq. (4)", ge=0, le=1e6),
        "use_aux": bool_param("include Eq. (2) in the loss (false: the no-auxiliary-model variant)"),
        "ssim_term": choice_param("abs: minimise |SSIM|; signed: Eq. (3) as written", ("signed", "abs")),
        "aux_loss": choice_param("complement: bounded -log(1 - p); ce: Eq. (2) as written", ("ce", "complement")),
        "target_model": model_param("the service's frozen classifier (none: train target_arch)"),
        "aux_model": model_param("the frozen auxiliary classifier (none: train aux_arch)"),
        "target_arch": choice_param("architecture trained as the target when none is given", models.available),
        "aux_arch": choice_param("architecture trained as the auxiliary model (none: no auxiliary model)",
                                 models.available, optional=True),
        "classifier_epochs": int_param("epochs of those classifiers (none: by data size)", ge=1, le=100_000,
                                       optional=True),
        "classifier_lr": float_param("their Adam learning rate", ge=0, le=100),
        "classifier_batch_size": int_param("their batch size", ge=1, le=65_536),
        "generator_model": model_param("a generator to start from (none: a fresh U-Net of this width)"),
        "width": int_param("base width of a fresh U-Net (paper: 32); memory grows as its square", ge=1, le=1024),
        "epochs": int_param("max_epochs of Algorithm 1 (paper: 100)", ge=0, le=100_000),
        "lr": float_param("AdamW learning rate", ge=0, le=100),
        "weight_decay": float_param("AdamW weight decay", ge=0, le=100),
        "batch_size": int_param("generator batch size (memory grows with it)", ge=1, le=65_536),
        "val_fraction": float_param("share of the fitting data held out to pick the best epoch", gt=0, lt=1),
        "augment": bool_param("random crop and horizontal flip of training batches"),
        "ssim_win_size": int_param("SSIM window of the loss, pixels (shrunk to fit)", ge=1, le=1024),
        "precision": choice_param("transform's compute precision: fp32, or bf16/fp16 autocast (fp16: CUDA only)",
                                  ("fp32", "fp16", "bf16")),
        "random_state": seed_param(),
    }
    stochastic = True  # the generator's training draws from random_state

    def __init__(
        self,
        target_weight: float = 1.0,
        aux_weight: float = 1.0,
        ssim_weight: float = 0.5,
        use_aux: bool = True,
        ssim_term: SsimTerm = "abs",
        aux_loss: AuxLoss = "complement",
        target_model: nn.Module | None = None,
        aux_model: nn.Module | None = None,
        target_arch: str = "lenet5",
        aux_arch: str | None = "vgg",
        classifier_epochs: int | None = None,
        classifier_lr: float = 1e-3,
        classifier_batch_size: int = 128,
        generator_model: nn.Module | None = None,
        width: int = 16,
        epochs: int = 10,
        lr: float = 5e-3,
        weight_decay: float = 5e-4,
        batch_size: int = 256,
        val_fraction: float = 0.1,
        augment: bool = True,
        ssim_win_size: int = 7,
        precision: Precision = "fp32",
        random_state: int | None = None,
    ) -> None:
        self.target_weight = target_weight
        self.aux_weight = aux_weight
        self.ssim_weight = ssim_weight
        self.use_aux = use_aux
        self.ssim_term = ssim_term
        self.aux_loss = aux_loss
        self.target_model = target_model
        self.aux_model = aux_model
        self.target_arch = target_arch
        self.aux_arch = aux_arch
        self.classifier_epochs = classifier_epochs
        self.classifier_lr = classifier_lr
        self.classifier_batch_size = classifier_batch_size
        self.generator_model = generator_model
        self.width = width
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.augment = augment
        self.ssim_win_size = ssim_win_size
        self.precision = precision
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        compute_dtype(self.precision, default_device())  # fp16 without CUDA: refused before fitting
        if self.use_aux and self.aux_model is None and self.aux_arch is None:
            raise InvalidInputError("perturbation: use_aux=True needs an auxiliary model: pass aux_model= or "
                                    "aux_arch=, or set use_aux=False for the no-auxiliary variant")

    def _classifier(self, given: nn.Module | None, arch: str, images: Tensor, labels: Tensor | None,
                    num_classes: int, seed: int, role: str, device: torch.device) -> nn.Module:
        """``given`` (frozen, copied) or ``arch`` trained on the fitting data exactly like ``privis evaluate``'s
        baseline (:func:`privis.models.create_seeded` with ``seed``, then ``train(..., seed=seed)``; the caller's
        global RNG is left alone), on ``device``. Algorithm 1 keeps the classifiers fixed: they are frozen."""
        if given is not None:
            return models.freeze(copy.deepcopy(given)).to(device)
        if labels is None:
            raise InvalidInputError(f"ProtectivePerturbation.fit needs labels to train the {role} model "
                                    f"(or pass {role}_model=)")
        model = models.create_seeded(arch, seed, num_classes=num_classes, in_channels=images.shape[1],
                                     image_size=(images.shape[-2], images.shape[-1]))
        epochs = self.classifier_epochs or classifier_epochs_for(images.shape[0])
        models.train(model, images, labels, epochs=epochs, batch_size=self.classifier_batch_size,
                     optimizer="adam", lr=self.classifier_lr, seed=seed, device=device,
                     desc=f"perturbation: {role} model ({arch})")
        return models.freeze(model)

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, images: Tensor, labels: Tensor | None = None) -> ProtectivePerturbation:
        """Obtain the frozen classifiers and train the generator by Algorithm 1 on ``(images, labels)``.

        Args:
            images: ``(N, C, H, W)`` canonical fitting images (at least 3).
            labels: ``(N,)`` class labels (Algorithm 1 needs ``Y``; required unless ``epochs=0`` and both
                classifiers and the generator are given).

        Sets ``target_model_``, ``aux_model_`` (None without auxiliary model), ``generator_`` and
        ``history_`` (a :class:`GeneratorHistory`). The three models live on
        :func:`privis.random.default_device` (CUDA when present), where the generator trains; given models
        are copied there, the caller's objects are left as they are.
        """
        self.validate_params()
        images = check_images(images)
        labels = check_labels(labels, images.shape[0])
        if labels is None and self.epochs > 0:
            raise InvalidInputError("ProtectivePerturbation.fit needs labels: Algorithm 1 trains on (X, Y)")
        if self.epochs > 0 and images.shape[0] < 3:  # BatchNorm trains on batches of 2 or more; one is held out
            raise InvalidInputError(f"ProtectivePerturbation.fit needs at least 3 images (2 to train the generator, "
                                    f"1 to validate it), got {images.shape[0]}")
        seed = resolve_seed(self.random_state)
        device = default_device()
        num_classes = int(labels.max()) + 1 if labels is not None else 0
        self.target_model_ = self._classifier(self.target_model, self.target_arch, images, labels,
                                              num_classes, seed, "target", device)
        has_aux = self.aux_model is not None or self.aux_arch is not None
        self.aux_model_ = (self._classifier(self.aux_model, self.aux_arch or "", images, labels, num_classes,
                                            seed + 1, "aux", device) if has_aux else None)
        if self.generator_model is not None:
            generator = copy.deepcopy(self.generator_model)
        else:
            generator = models.create_seeded("unet-perturbation", seed, num_classes=1, in_channels=images.shape[1],
                                             image_size=(images.shape[-2], images.shape[-1]), width=self.width)
        generator.to(device)
        self.history_ = GeneratorHistory()
        if self.epochs > 0:
            assert labels is not None  # refused above: training needs labels
            n = images.shape[0]
            n_val = min(n - 1, max(1, round(self.val_fraction * n)))
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            tr, va = order[n_val:], order[:n_val]
            for p in generator.parameters():
                p.requires_grad_(True)
            self.history_ = train_generator(
                generator, images[tr], labels[tr], self.target_model_,
                self.aux_model_ if self.use_aux else None,
                val=(images[va], labels[va]), epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                batch_size=self.batch_size, target_weight=self.target_weight, aux_weight=self.aux_weight,
                ssim_weight=self.ssim_weight, ssim_term=self.ssim_term, ssim_win_size=self.ssim_win_size,
                aux_loss=self.aux_loss, augment=self.augment, seed=seed,
            )
        # channels-last weights: about 1.7x faster convolutions on CPU for the same outputs (measured in
        # benchmarks/bench_perturbation.py); the state dict and exports are unchanged.
        # torch's stub of Module.to omits memory_format, which Module.to accepts (torch docs)
        self.generator_ = models.freeze(generator).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._last_eval: tuple[Tensor, Tensor, Tensor] | None = None
        self._last_diag: dict[str, float] = {}
        return self

    # ----------------------------------------------------------------------------------- transform
    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Protect ``images`` ``(N, C, H, W)`` in ``[0, 1]``: ``x' = clamp(x + U(x))``, same shape and range.

        The output is float32 on the input's device; the generator runs on its own device (where it was
        fitted) in ``precision``, in chunks of :func:`transform_chunk_size` images (on CUDA as many as
        half the free device memory holds, so one call fills the device). When ``labels`` are given,
        :meth:`diagnostics` reports the target's and the auxiliary model's accuracy on these images and
        their protected versions (computed lazily, outside this call's time).

        Raises:
            NotFittedError: before :meth:`fit`.
            InvalidInputError: images that are not canonical or have another channel count than the
                generator's, or ``precision="fp16"`` with the generator off CUDA.
        """
        if not hasattr(self, "generator_"):
            raise NotFittedError("ProtectivePerturbation is not fitted: call fit() first")
        images = check_images(images)
        labels = check_labels(labels, images.shape[0])
        if images.shape[1] != self.generator_.in_channels:
            raise InvalidInputError(f"the generator was built for {self.generator_.in_channels}-channel images, "
                                    f"got {images.shape[1]} channels")
        device = models.model_device(self.generator_)
        dtype = compute_dtype(self.precision, device)
        out = torch.empty_like(images)
        # a generator given as generator_model may not be a UNetPerturbation: size its chunks as the paper's
        step = transform_chunk_size(images.shape, device, width=getattr(self.generator_, "width", 32),
                                    batch_size=self.batch_size, dtype=dtype)
        # one autocast region for all chunks: the weights are cast to the compute dtype once per call
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            for start in range(0, images.shape[0], step):
                batch = images[start:start + step].to(device).contiguous(memory_format=torch.channels_last)
                out[start:start + step] = self.generator_(batch).to(out.device)
        self._last_eval = (images, out, labels) if labels is not None else None
        self._last_diag = {}
        return out

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform`` with labels, and of training.

        Keys: ``target_acc_original``, ``target_acc_protected`` (the protector's own frozen target),
        ``aux_acc_original``, ``aux_acc_protected`` (its auxiliary model, when it has one),
        ``generator_best_epoch``, ``generator_best_val_loss``.
        """
        if not hasattr(self, "generator_"):
            return {}
        if self._last_eval is not None:
            images, protected, labels = self._last_eval
            diag = {"target_acc_original": models.evaluate(self.target_model_, images, labels),
                    "target_acc_protected": models.evaluate(self.target_model_, protected, labels)}
            if self.aux_model_ is not None:
                diag["aux_acc_original"] = models.evaluate(self.aux_model_, images, labels)
                diag["aux_acc_protected"] = models.evaluate(self.aux_model_, protected, labels)
            self._last_diag = diag
            self._last_eval = None  # computed once; do not keep the caller's images alive
        out = dict(self._last_diag)
        if self.history_.val:
            out["generator_best_epoch"] = float(self.history_.best_epoch)
            out["generator_best_val_loss"] = float(self.history_.best_val_loss)
        return out

    def invariants(self) -> dict[str, Any]:
        """``{"public_generator": generator_}`` (None before ``fit``): ``y = clamp(x + U(x))`` with the public
        generator ``U`` (see :meth:`Protector.invariants`)."""
        return {"public_generator": getattr(self, "generator_", None)}

    def save_generator(self, path: Any, *, extra: dict[str, Any] | None = None) -> Any:
        """Write the fitted generator as a privis checkpoint (readable by :func:`privis.models.load_checkpoint`).

        ``extra`` is stored with the training history and the target/auxiliary architectures.
        """
        if not hasattr(self, "generator_"):
            raise NotFittedError("ProtectivePerturbation is not fitted: call fit() first")
        generator = self.generator_
        if getattr(generator, "arch", None) is None and isinstance(generator, UNetPerturbation):
            # torch types Module.__setattr__'s value as Tensor | Module; plain attributes are allowed at run time
            # (not declared on the class: TorchScript would then require them)
            generator.arch = "unet-perturbation"  # type: ignore[assignment]
            generator.arch_kwargs = {"num_classes": 1, "in_channels": generator.in_channels,  # type: ignore[assignment]
                                     "image_size": (16, 16), "width": generator.width}
        info = {"target_arch": getattr(self.target_model_, "arch", None),
                "aux_arch": getattr(self.aux_model_, "arch", None) if self.aux_model_ is not None else None,
                "use_aux": self.use_aux, "ssim_term": self.ssim_term, "aux_loss": self.aux_loss,
                "history": self.history_.to_dict(),
                **(extra or {})}
        return models.save_checkpoint(generator, path, extra=info)


def train_generator_from_spec(data: str, out: str | Path, *, target: str | Path | None = None,
                              aux: str | Path | None = None, target_out: str | Path | None = None,
                              params: dict[str, Any] | None = None,
                              seed: int | None = None) -> tuple[ProtectivePerturbation, int]:
    """Fit a :class:`ProtectivePerturbation` on a dataset spec and write its generator (``privis train-generator``).

    Args:
        data: training dataset spec, e.g. ``"fashion-mnist:train[:10000]"`` (see :func:`privis.data.load`).
        out: generator checkpoint to write (``.pt``; ``extra`` records the data spec).
        target, aux: classifier checkpoints used as the frozen target / auxiliary models (default: trained
            here, see ``target_arch``/``aux_arch``).
        target_out: also write the target classifier here (to serve it), with the data's class names.
        params: further :class:`ProtectivePerturbation` parameters (validated by the class).
        seed: ``random_state`` unless ``params`` sets it (None: OS entropy).

    Returns:
        The fitted protector (``history_`` holds the best epoch and its validation loss) and the number of
        images it was fitted on.

    Raises:
        DatasetError, ImageFileError: an unusable dataset spec or file.
        InvalidInputError: bad parameters, or a checkpoint that is not a classifier.
        FloatingPointError: training diverged (nothing is written).
    """
    params = dict(params or {})
    for key, path in (("target_model", target), ("aux_model", aux)):
        if path is not None:
            params[key], info = models.load_checkpoint(path)
            models.require_kind(info, "classifier", path)
    params.setdefault("random_state", seed)
    protector = ProtectivePerturbation(**params)
    protector.validate_params()
    dataset = pdata.load(data)
    check_two_classes(dataset.labels, source=data)  # the generator learns to fool a classifier: it needs classes
    protector.fit(dataset.images, dataset.labels)
    protector.save_generator(out, extra={"data": data})
    if target_out is not None:
        models.save_checkpoint(protector.target_model_, target_out,
                               extra={"data": data, "class_names": dataset.class_names})
    return protector, len(dataset)
