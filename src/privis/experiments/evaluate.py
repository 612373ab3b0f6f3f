"""``privis evaluate METHOD``: the same utility/privacy protocol for every method (one set of summary keys).

Protocol:

1. The data owner's training slice and the test split are loaded (a range in the data spec selects the
   training slice; ``train_size``/``test_size`` cap the two). Fewer than two classes, or classes present
   in one split and not the other, are refused: no accuracy could mean anything.
2. The protector is fitted on the owner's training slice (e.g. Veil trains its local model there) and
   protects the training slice and the test split; throughput and peak memory are measured here.
3. A baseline model is trained on the original training slice.
4. A service model of the same architecture is trained on the protected training slice.
5. Both models are tested on original and on protected test data; |SSIM|, PSNR and VFE compare
   protected test images with their originals.
6. Identity privacy (H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence
   Technology", PhD thesis, University of Technology Sydney, 2023, Section 4.5.1.2), with the class as the
   identity: the baseline's penultimate layer, centred on the original test images' mean, is the identity
   embedding (:class:`~privis.identity.ClassifierIdentity`), its cosine threshold calibrated at the equal
   error rate on the original test images; ``iss_mean`` is the mean identity similarity of each protected
   test image to its original, ``fppsr`` the share judged a different identity, and ``fd_privis`` the
   Frechet distance between original and protected test images on the same features
   (:func:`privis.metrics.fd_privis`, not FID).
7. A method that declares differential-privacy parameters
   (:meth:`~privis.methods.base.Protector.dp_parameters`) gets ``epsilon_claimed`` and
   ``epsilon_post_processing`` from :func:`privis.privacy.dp_image_bounds` at ``delta = cfg.dp_delta``
   (default 1e-5; ``dp_delta`` is recorded too): Theorem 4.4.1's claimed bound and the post-processing
   bound that holds for any codec, classic RDP conversion each. The keys are absent for every other method.
8. A method that declares an identity objective (:meth:`~privis.methods.base.Protector.identity_objective`,
   FSAP's ``f_I``) gets ``spr``, the protection success rate (Eq. 5.9-5.11 of the thesis' Chapter 5) of the
   protected test images against that identity model, ``spr_heldout``, the same against a classifier of
   another architecture (:data:`HELDOUT_ARCH`, or LeNet-5 when ``cfg.model`` is it) trained on the original
   training slice and calibrated like step 6, and ``mse_mean``, the mean pixel MSE of protected vs original
   test images. When the objective is an *exemplar* identity model (the individual image is the identity,
   :func:`privis.identity.exemplar.train_exemplar_identity`, the latent anonymiser's), the held-out model is
   an exemplar model of the other architecture too (another seed), calibrated on augmented copies of the
   original test images. Such a method also gets ``attribute_acc``, the thesis' attribute preservation
   (Chapter 6, Table 6.1): the accuracy on original test data of the model trained on the protected training
   slice (``protected_acc_original``, whatever the method's deployment). The keys are absent for every other
   method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from privis import data as pdata
from privis import methods, metrics, models
from privis.data.checks import check_classes, check_int, check_same_layout
from privis.data.spec import BUILTIN_DATASETS, SPLIT_SIZES, DatasetSpec, parse_spec
from privis.errors import InvalidInputError
from privis.identity import ClassifierIdentity, IdentityModel, iss_and_fppsr, protection_success_rate
from privis.methods.base import Protector
from privis.methods.object_hiding import DetectorProtector
from privis.privacy import DPImageBounds
from privis.report import image_grid_png
from privis.results import Figure, Result
from privis.sysinfo import peak_rss_mb


@dataclass
class EvalConfig:
    """Knobs of the evaluation protocol.

    Attributes:
        data: a built-in dataset, optionally with a range of its train split (``fashion-mnist``,
            ``digits:train[:500]``), or ``folder:PATH`` / ``npz:PATH`` (divided 80/20, seeded).
        train_size: the most images of the owner's training slice used (``None``: all of it); an int >= 1.
        test_size: the most images of the test split used (``None``: all of it); an int >= 1.
        model: architecture of the baseline and service models.
        epochs: training epochs of both models; ``None`` picks :func:`auto_epochs` from the data size.
        lr, batch_size, optimizer: their training.
        augment: name of a training augmentation for the service model (``none`` or one the method
            offers, e.g. Veil's ``sign-flip``); the baseline is trained without it. A comma-separated
            list trains one more service model per further name on the same protected data (table
            ``service models by augmentation``); the summary keys describe the first.
        service_layer: put the method's :meth:`~privis.methods.base.Protector.service_input_layer` (if it
            offers one, e.g. VisualMixer's cell sort) in front of every service model; False: bare models.
        seed: seeds model training and the protector when it takes ``random_state``.
        dp_delta: the ``delta`` of the ``(epsilon, delta)`` statements of methods that make a DP claim, in
            ``(0, 1)`` (default 1e-5).
    """

    data: str = "fashion-mnist"
    train_size: int | None = 10000
    test_size: int | None = None
    model: str = "lenet5"
    epochs: int | None = None
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    augment: str = "default"
    service_layer: bool = True
    seed: int = 0
    dp_delta: float = 1e-5
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("train_size", "test_size", "epochs"):
            value = getattr(self, key)
            if value is not None:
                check_int(value, f"--{key.replace('_', '-')}", hint=" (leave it out for the default)")
        if isinstance(self.dp_delta, bool) or not isinstance(self.dp_delta, float | int) or not 0 < self.dp_delta < 1:
            raise InvalidInputError(f"dp_delta must be a number in (0, 1), got {self.dp_delta!r}")


def auto_epochs(n: int) -> int:
    """Epochs giving small training sets enough optimizer steps: ``clip(60000 / n, 10, 60)``."""
    return int(min(60, max(10, math.ceil(60000 / max(n, 1)))))


def _cap(dataset: pdata.Dataset, size: int | None) -> pdata.Dataset:
    return dataset if size is None or size >= len(dataset) else dataset.subset(slice(0, size))


def load_train_test(cfg: EvalConfig) -> tuple[pdata.Dataset, pdata.Dataset]:
    """The owner's training slice and the test slice, each at most ``cfg.train_size``/``cfg.test_size`` images.

    A built-in dataset gives its ``train`` split (the range of ``cfg.data``, if any) and its ``test`` split.
    A ``folder:``/``npz:`` source has no split: it is divided 80/20 by a seeded permutation.

    Raises:
        InvalidInputError: ``cfg.data`` names a split other than ``train``, or a dataset without train and
            test splits.
        DatasetError: a bad spec or range (see :func:`privis.data.parse_spec`), or splits whose classes cannot
            give meaningful accuracies (:func:`privis.data.checks.check_classes`).
    """
    spec = parse_spec(cfg.data)
    if spec.kind != "builtin":
        full = pdata.load(cfg.data)
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(full), generator=gen)
        cut = int(0.8 * len(full))
        train, test = _cap(full.subset(order[:cut]), cfg.train_size), _cap(full.subset(order[cut:]), cfg.test_size)
    else:
        splits = BUILTIN_DATASETS[spec.name][0]
        if "train" not in splits or "test" not in splits:
            raise InvalidInputError(f"--data {cfg.data!r}: evaluation needs train and test splits; {spec.name} has "
                                    f"{', '.join(splits)}")
        if spec.split not in (None, "train"):
            raise InvalidInputError(f"--data {cfg.data!r}: evaluation trains on the train split and tests on the "
                                    f"test split; give the dataset, optionally with a range of its train split "
                                    f"(e.g. {spec.name}:train[:2000])")
        stop, test_stop = spec.stop, None
        if cfg.train_size is not None and cfg.train_size < (spec.stop or SPLIT_SIZES[spec.name]["train"]) - (
                spec.start or 0):
            stop = (spec.start or 0) + cfg.train_size
        if cfg.test_size is not None and cfg.test_size < SPLIT_SIZES[spec.name]["test"]:
            test_stop = cfg.test_size
        train = pdata.load(str(DatasetSpec("builtin", spec.name, split="train", start=spec.start, stop=stop)))
        test = pdata.load(str(DatasetSpec("builtin", spec.name, split="test", stop=test_stop)))
    check_classes(train.labels, test.labels, class_names=train.class_names, source=cfg.data)
    return train, test


def build_classifier(arch: str, images: Tensor, num_classes: int, *, seed: int,
                     options: dict[str, Any] | None = None,
                     input_layer: torch.nn.Module | None = None) -> torch.nn.Module:
    """A seeded zoo ``arch`` (with ``options``) sized for ``images`` ``(N, C, H, W)``, behind ``input_layer``
    (e.g. :meth:`~privis.methods.base.Protector.service_input_layer`) when one is given."""
    model = models.create_seeded(arch, seed, num_classes=num_classes, in_channels=images.shape[1],
                                 image_size=(images.shape[-2], images.shape[-1]), **(options or {}))
    return model if input_layer is None else torch.nn.Sequential(input_layer, model)


def train_classifier(images: Tensor, labels: Tensor, num_classes: int, cfg: EvalConfig, *,
                     arch: str | None = None, augment: Callable[[Tensor], Tensor] | None = None,
                     input_layer: torch.nn.Module | None = None, desc: str = "train") -> torch.nn.Module:
    """Create ``arch`` (default ``cfg.model``) with :func:`build_classifier` and train it with ``cfg``'s
    settings, seeded."""
    model = build_classifier(arch or cfg.model, images, num_classes, seed=cfg.seed, input_layer=input_layer)
    models.train(model, images, labels, epochs=cfg.epochs or auto_epochs(len(labels)), batch_size=cfg.batch_size,
                 optimizer=cfg.optimizer,
                 lr=cfg.lr, seed=cfg.seed, augment=augment, desc=desc)
    return model


def timed_protect(protector: Protector, train: pdata.Dataset, test: pdata.Dataset,
                  ) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Fit on the training slice, protect both slices; returns throughput figures of ``transform``."""
    t0 = time.perf_counter()
    protector.fit(train.images, train.labels)
    fit_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    protected_train = protector.transform(train.images, train.labels)
    protected_test = protector.transform(test.images, test.labels)
    protect_seconds = time.perf_counter() - t1
    n = len(train) + len(test)
    return protected_train, protected_test, {
        "fit_seconds": fit_seconds,
        "protect_seconds": protect_seconds,
        "images_per_second": n / max(protect_seconds, 1e-9),
        "peak_rss_mb": peak_rss_mb(),
    }


def image_similarity(original: Tensor, protected: Tensor) -> dict[str, float]:
    """Mean |SSIM|, PSNR and VFE of protected vs original images (``(N, C, H, W)`` each)."""
    win = metrics.ssim_window(*original.shape[-2:])
    return {
        "ssim_mean": float(cast(Tensor, metrics.ssim(protected, original, win_size=win)).abs().mean()),
        "psnr_mean": float(cast(Tensor, metrics.psnr(protected, original)).clamp(max=100).mean()),
        "vfe_original_mean": float(metrics.vfe(original).mean()),
        "vfe_protected_mean": float(metrics.vfe(protected).mean()),
    }


def utility_summary(baseline: torch.nn.Module, service: torch.nn.Module, test: pdata.Dataset,
                    protected_test: Tensor) -> dict[str, float]:
    """The four accuracies of the summary keys: baseline / service model on original / protected test data."""
    return {
        "baseline_acc_original": models.evaluate(baseline, test.images, test.labels),
        "baseline_acc_protected": models.evaluate(baseline, protected_test, test.labels),
        "protected_acc_original": models.evaluate(service, test.images, test.labels),
        "protected_acc_protected": models.evaluate(service, protected_test, test.labels),
    }


def identity_summary(baseline: torch.nn.Module, test: pdata.Dataset, protected_test: Tensor) -> dict[str, float]:
    """``iss_mean``, ``fppsr`` and ``fd_privis`` of protected vs original test images on ``baseline``'s
    penultimate features, the identity threshold calibrated on the original test images (step 6 above)."""
    identity = ClassifierIdentity(baseline)
    identity.calibrate(test.images, test.labels)
    iss_mean, fppsr = iss_and_fppsr(identity, test.images, protected_test)
    return {
        "iss_mean": iss_mean,
        "fppsr": fppsr,
        "identity_threshold": identity.threshold,
        "fd_privis": metrics.fd_privis(baseline, test.images, protected_test),
    }


#: Architecture of the held-out identity model of ``spr_heldout`` (another than the methods' default LeNet-5).
HELDOUT_ARCH = "vgg"


def spr_summary(protector: Protector, cfg: EvalConfig, train: pdata.Dataset, test: pdata.Dataset,
                protected_test: Tensor) -> dict[str, float]:
    """``spr``, ``spr_heldout`` and ``mse_mean`` of a fitted protector with an identity objective (step 8 above);
    empty for every other method."""
    objective = protector.identity_objective()
    if objective is None:
        return {}
    heldout = heldout_identity(objective, cfg, train, test)
    return {"spr": protection_success_rate(objective, test.images, protected_test),
            "spr_heldout": protection_success_rate(heldout, test.images, protected_test),
            "mse_mean": float(cast(Tensor, metrics.mse(protected_test, test.images)).mean())}


def heldout_identity(objective: IdentityModel, cfg: EvalConfig, train: pdata.Dataset,
                     test: pdata.Dataset) -> IdentityModel:
    """The held-out identity model of ``spr_heldout`` (step 8 above): of :data:`HELDOUT_ARCH` (LeNet-5 when
    ``cfg.model`` is it), trained on the original training slice and calibrated on the test images; an exemplar
    model (:func:`privis.identity.exemplar.train_exemplar_identity`, seed ``cfg.seed + 1``, ``cfg.epochs`` epochs
    when set) when ``objective`` is one (:func:`is_exemplar`), else a classifier of the labels."""
    arch = HELDOUT_ARCH if cfg.model != HELDOUT_ARCH else "lenet5"
    if is_exemplar(objective):
        from privis.identity.exemplar import train_exemplar_identity  # deferred: only this objective needs it

        return train_exemplar_identity(train.images, arch=arch, random_state=cfg.seed + 1, calibrate_on=test.images,
                                       **({"epochs": cfg.epochs} if cfg.epochs is not None else {}))
    k = max(train.num_classes, int(train.labels.max()) + 1)
    heldout = ClassifierIdentity(train_classifier(train.images, train.labels, k, cfg, arch=arch,
                                                  desc=f"held-out identity model ({arch})").eval())
    heldout.calibrate(test.images, test.labels)
    return heldout


def is_exemplar(identity: IdentityModel) -> bool:
    """Whether ``identity`` tells individual images apart (an exemplar model, named ``<arch>-exemplar``) rather
    than classes."""
    return str(getattr(identity, "name", "")).endswith("-exemplar")


def dp_summary(protector: Protector, delta: float) -> dict[str, float]:
    """``epsilon_claimed`` and ``epsilon_post_processing`` of a fitted protector's DP claim at ``delta``
    (:meth:`privis.privacy.DPImageBounds.from_dp_parameters`); empty when
    :meth:`~privis.methods.base.Protector.dp_parameters` is None."""
    params = protector.dp_parameters()
    if params is None:
        return {}
    bounds = DPImageBounds.from_dp_parameters(params, delta)
    return {"epsilon_claimed": bounds.claimed.epsilon, "epsilon_post_processing": bounds.post_processing.epsilon,
            "dp_delta": delta}


def evaluate_protector(protector: Protector, cfg: EvalConfig, *,
                       augment: Callable[[Tensor], Tensor] | None = None,
                       data: tuple[pdata.Dataset, pdata.Dataset] | None = None,
                       baseline: torch.nn.Module | None = None,
                       extra_augments: dict[str, Callable[[Tensor], Tensor] | None] | None = None) -> Result:
    """Run the protocol of this module and return a ``Result`` with the shared summary keys.

    Args:
        protector: an unfitted protector.
        cfg: protocol settings.
        augment: training augmentation for the service model.
        data: pre-loaded (train, test) datasets; loaded from ``cfg`` when None.
        baseline: a baseline model already trained on the original training slice (reused by sweeps).
        extra_augments: more service models to train on the same protected data, one per named
            augmentation; their accuracies land in the table ``service models by augmentation``.

    The summary's ``train_size``, ``test_size`` and ``fit_size`` (images the protector was fitted on) are the
    numbers used, and so are the protocol's ``train_size``/``test_size`` in ``config``.

    Raises:
        DatasetError: fewer than two classes, or a split lacking classes of the other
            (:func:`privis.data.checks.check_classes`), before any work.
        InvalidInputError: training and test images of different sizes or channel counts.
    """
    t_start = time.perf_counter()
    if data is None:
        train, test = load_train_test(cfg)  # checks the classes
    else:
        train, test = data
        check_classes(train.labels, test.labels, class_names=train.class_names, source=cfg.data)
    check_same_layout(train.images.shape, test.images.shape, fit_name=train.name, data_name=test.name)
    k = max(train.num_classes, int(train.labels.max()) + 1)
    protected_train, protected_test, speed = timed_protect(protector, train, test)
    if baseline is None:
        baseline = train_classifier(train.images, train.labels, k, cfg, desc="baseline model")
    layer = protector.service_input_layer() if cfg.service_layer else None
    service = train_classifier(protected_train, train.labels, k, cfg, augment=augment, input_layer=layer,
                               desc="protected model")
    summary = utility_summary(baseline, service, test, protected_test)
    summary.update(image_similarity(test.images, protected_test))
    summary.update(identity_summary(baseline, test, protected_test))
    summary.update(dp_summary(protector, cfg.dp_delta))
    spr = spr_summary(protector, cfg, train, test, protected_test)
    summary.update(spr)
    if spr and is_exemplar(protector.identity_objective()):
        summary["attribute_acc"] = summary["protected_acc_original"]
    summary.update(protector.diagnostics())
    summary.update(speed)
    summary["train_size"] = len(train)
    summary["test_size"] = len(test)
    summary["fit_size"] = len(train)
    tables = {}
    if extra_augments:
        rows = []
        for name, aug in extra_augments.items():
            other = train_classifier(protected_train, train.labels, k, cfg, augment=aug, input_layer=layer,
                                     desc=f"protected ({name})")
            rows.append({"augment": name, **utility_summary(baseline, other, test, protected_test)})
        tables["service models by augmentation"] = rows
    result = Result(
        name=f"evaluate-{protector.name}",
        summary=summary,
        tables=tables,
        config={"protocol": {**cfg.__dict__, "train_size": len(train), "test_size": len(test), "num_classes": k},
                "method": protector.name,
                "params": {k: v for k, v in protector.get_params().items()
                           if not isinstance(v, torch.nn.Module)},
                "train": train.name, "test": test.name,
                "service_input_layer": repr(layer) if layer is not None else None},
    )
    result.figures.append(Figure(
        "original | protected (test images)",
        image_grid_png({"original": test.images, "protected": protected_test}),
        "left: original test images; right: the same images protected",
    ))
    result.seconds = time.perf_counter() - t_start
    return result


def evaluate(method: str, cfg: EvalConfig) -> Result:
    """``privis evaluate METHOD``: build the protector from ``cfg.params`` and run the protocol.

    A method that hides objects from a detector (:class:`~privis.methods.object_hiding.DetectorProtector`) is
    evaluated by its own protocol instead (:func:`privis.experiments.object_hiding_tables.evaluate_hiding`:
    hide and keep ratios on held-out built-in scenes, ``cfg.test_size`` of them; ``data``, ``train_size`` and
    the model settings do not apply).
    """
    # checks the parameters before any data is loaded; a random_state among cfg.params wins over cfg.seed
    protector = methods.create(method, **{"random_state": cfg.seed, **cfg.params})
    if isinstance(protector, DetectorProtector):
        from privis.experiments.object_hiding_tables import evaluate_hiding  # deferred: scenes load on use

        return evaluate_hiding(protector, seed=cfg.seed, test_size=cfg.test_size,
                               detector_given="detector" in cfg.params)
    first, *others = [a.strip() for a in cfg.augment.split(",")]
    return evaluate_protector(protector, cfg, augment=protector.training_augmentation(first),
                              extra_augments={a: protector.training_augmentation(a) for a in others})
