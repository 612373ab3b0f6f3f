"""Veil Privacy experiments reproducing Tables 2-5 of the paper (the frontier: :mod:`.veil_frontier`).

Pang, Ma, Li, Zhou & Yao, "Veil Privacy on Visual Data: Concealing Privacy for Humans, Unveiling for DNNs",
ECCV 2024 (Tables 2-5, Sections 5.2-5.4).

Every experiment runs on Fashion-MNIST (when present) and scikit-learn digits by default, or on the one
dataset ``data`` names. ``quick=True`` shrinks sizes to a smoke run. The options every table takes:

* ``train_size`` / ``test_size``: the training and test slices (default 5,000 / 2,000 images; a size at or
  above a split's length takes all of it, so ``train_size=60000, test_size=10000`` is the paper's scale on
  Fashion-MNIST). Digits is always used whole (1,347 training / 450 test images).
* ``arch``: the backbone, i.e. the owner's local model ``F`` (Veil's ``local_arch``), the baseline and the
  models trained on veiled data: ``lenet5`` (default) or ``alexnet`` (the paper's MNIST backbone, Table 2).
* ``device``: where models train and the gradient iteration runs (default
  :func:`privis.random.default_device`: CUDA when present).
* ``checkpoint_dir``: where the slow steps are saved (see "Checkpoints" below).

Every report puts the paper's figures (:data:`PAPER_VALUES`) beside privis' in one table per paper table.
The paper reports MNIST, CIFAR and face sets, not Fashion-MNIST or digits, so the columns are different
data side by side, not a like-for-like comparison; Tables 4 and 5 report no MNIST figure at all, and are
compared with the paper's ORL column (its LeNet-5 data set).

Checkpoints. The owner's local model, each veiled training/test set (one per Veil setting) and every
trained model are saved as soon as they are made, under ``checkpoint_dir/KEY/`` (default
``$XDG_CACHE_HOME/privis/veil-tables``, else ``~/.cache/privis/veil-tables``), where ``KEY`` is derived from
the data (a SHA-256 of the images and labels, hence the sizes) and the seed; each file's name adds a
digest of the step's own settings (the Veil parameters, the architecture, the training settings and the
inputs). A run killed midway therefore continues from its last finished step, and tables that share a
step (Tables 2-4 veil the same data; Table 5's ``p=0.5`` and ``F = logits`` rows are the default setting)
compute it once. The files hold the owner's original data, its veiled copies and the seed, so they are
private (``0600`` in a ``0700`` folder) and never written beside the JSON or HTML outputs; the reports name
only the key. A file that cannot be read (e.g. truncated) is ignored with a warning and recomputed.
``quick`` runs keep no checkpoints unless ``checkpoint_dir`` is given.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from privis import data as pdata
from privis import metrics, models
from privis.errors import InvalidInputError
from privis.experiments import register_experiment
from privis.experiments.checkpoints import Checkpoints, cache_root, data_fingerprint, digest
from privis.experiments.evaluate import (
    EvalConfig,
    auto_epochs,
    build_classifier,
    identity_summary,
    image_similarity,
    load_train_test,
    utility_summary,
)
from privis.experiments.veil_paper import DIFFERENT_DATA, PAPER_COLUMN, PAPER_NOTES, PAPER_VALUES
from privis.methods.veil import Veil
from privis.random import default_device
from privis.report import image_grid_png
from privis.results import Figure, Result

T = TypeVar("T")

def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device``; None gives :func:`privis.random.default_device`.

    Raises:
        InvalidInputError: not a device name, or CUDA asked for where torch sees none.
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device {device!r} is not a device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but torch sees no CUDA device here")
    return dev


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------- one run
def datasets_for(data: str | None) -> list[str]:
    """The datasets an experiment covers: the one asked for, else Fashion-MNIST (if present) and digits."""
    if data:
        return [data]
    return (["fashion-mnist"] if pdata.fashion_mnist_available() else []) + ["digits"]


def config_for(data: str, *, seed: int, quick: bool, train_size: int = 5000, test_size: int = 2000,
               **overrides: Any) -> EvalConfig:
    """Protocol sizes: digits is used whole (1,347 train / 450 test); other data are sliced.

    ``quick`` shrinks everything to a smoke run (a few hundred images, few epochs).
    """
    digits = data.startswith("digits")
    if quick:
        cfg = EvalConfig(data=data, seed=seed, train_size=400, test_size=150, epochs=15)
    else:
        cfg = EvalConfig(data=data, seed=seed, train_size=None if digits else train_size,
                         test_size=None if digits else test_size)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def veil_params(seed: int, quick: bool, **params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"random_state": seed}
    if quick:
        base.update(steps=20, local_epochs=2)
    base.update(params)
    return base


@dataclass
class Veiled:
    """The veiled copies of a run's training and test images under one Veil setting.

    Attributes:
        key: digest of the Veil setting (names the step in other steps' inputs).
        veiled_train, veiled_test: ``(N, C, H, W)`` float32 in ``[0, 1]``, on the CPU.
        diagnostics: :meth:`Veil.diagnostics` of the test images' call.
        speed: ``fit_seconds``, ``protect_seconds`` and ``images_per_second`` of the run that made them.
    """

    key: str
    veiled_train: Tensor
    veiled_test: Tensor
    diagnostics: dict[str, float]
    speed: dict[str, float]


@dataclass
class Run:
    """One dataset's protocol: its data, settings, device and checkpoints (build with :func:`prepare`)."""

    name: str
    cfg: EvalConfig
    train: pdata.Dataset
    test: pdata.Dataset
    device: torch.device
    store: Checkpoints
    quick: bool
    _baseline: nn.Module | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return max(self.train.num_classes, int(self.train.labels.max()) + 1)

    @property
    def column(self) -> str:
        """How a comparison table names this run: data, backbone and sizes."""
        return f"privis: {self.name} ({self.cfg.model}, {len(self.train)} train / {len(self.test)} test)"

    def trained(self, role: str, build: Callable[[], nn.Module], images: Tensor, labels: Tensor, *,
                inputs: Mapping[str, Any], epochs: int, lr: float,
                augment: tuple[str, Callable[[Tensor], Tensor] | None] = ("none", None)) -> nn.Module:
        """``build()`` trained on ``images``/``labels`` with this run's seed and training settings on its
        device, or loaded from its checkpoint; ``inputs`` describes what ``build`` and the data depend on
        (it is part of the checkpoint's settings)."""
        spec = {"role": role, "inputs": dict(inputs), "epochs": epochs, "lr": lr, "seed": self.cfg.seed,
                "batch_size": self.cfg.batch_size, "optimizer": self.cfg.optimizer, "augment": augment[0],
                "n": len(labels)}

        def make() -> dict[str, Any]:
            model = build()
            models.train(model, images, labels, epochs=epochs, batch_size=self.cfg.batch_size,
                         optimizer=self.cfg.optimizer, lr=lr, seed=self.cfg.seed, augment=augment[1],
                         device=self.device, desc=role)
            return {"state_dict": _cpu_state(model)}

        def use(payload: dict[str, Any]) -> nn.Module:
            model = build()
            model.load_state_dict(payload["state_dict"])
            return model.to(self.device)

        return self.store.step(role.replace(" ", "-"), spec, make, use)

    def classifier(self, role: str, images: Tensor, labels: Tensor, num_classes: int, *,
                   inputs: Mapping[str, Any], arch: str | None = None,
                   augment: tuple[str, Callable[[Tensor], Tensor] | None] = ("none", None)) -> nn.Module:
        """A seeded zoo ``arch`` (default the run's backbone) trained with the protocol's settings
        (:func:`~privis.experiments.evaluate.train_classifier`'s), saved as a step."""
        arch = arch or self.cfg.model
        return self.trained(
            role, lambda: build_classifier(arch, images, num_classes, seed=self.cfg.seed), images, labels,
            inputs={**inputs, "arch": arch, "classes": num_classes},
            epochs=self.cfg.epochs or auto_epochs(len(labels)), lr=self.cfg.lr, augment=augment)

    def baseline(self) -> nn.Module:
        """The baseline model, trained on the original training slice (made once per run)."""
        if self._baseline is None:
            self._baseline = self.classifier("baseline", self.train.images, self.train.labels, self.num_classes,
                                             inputs={"images": "original"})
        return self._baseline

    def local_model(self, veil: Veil) -> nn.Module:
        """The owner's local model ``F`` as :meth:`Veil.fit` trains it (``local_arch`` initialised and trained
        ``local_epochs`` at ``local_lr`` with seed ``random_state``), here on the run's device and saved as a
        step, so every Veil setting with the same local model shares it."""
        seed = int(veil.random_state) if veil.random_state is not None else self.cfg.seed
        images, labels = self.train.images, self.train.labels
        k = int(labels.max()) + 1

        def build() -> nn.Module:
            return models.create_seeded(veil.local_arch, seed, num_classes=k, in_channels=images.shape[1],
                                        image_size=(images.shape[-2], images.shape[-1]))

        spec = {"role": "veil local model", "arch": veil.local_arch, "epochs": veil.local_epochs,
                "lr": veil.local_lr, "seed": seed, "classes": k}

        def make() -> dict[str, Any]:
            model = build()
            models.train(model, images, labels, epochs=veil.local_epochs, lr=veil.local_lr, seed=seed,
                         device=self.device, desc="veil: local model")
            return {"state_dict": _cpu_state(model)}

        def use(payload: dict[str, Any]) -> nn.Module:
            model = build()
            model.load_state_dict(payload["state_dict"])
            return model

        return self.store.step("local-model", spec, make, use)

    def veiled(self, params: Mapping[str, Any]) -> Veiled:
        """The training and test images veiled with ``Veil(**params)`` (fitted on the training slice), made
        on the run's device or loaded from their checkpoint."""
        veil = Veil(**params)
        veil.validate_params()
        if veil.local_model is not None:
            raise InvalidInputError("the Veil tables train the local model themselves; give local_arch, "
                                    "local_epochs and local_lr instead of local_model")
        spec = {"veil": {k: v for k, v in veil.get_params().items() if k != "local_model"}}
        key = digest(spec)[:16]

        def make() -> dict[str, Any]:
            veil.local_model = self.local_model(veil)
            t0 = time.perf_counter()
            veil.fit(self.train.images, self.train.labels)
            veil.local_model_.to(self.device)  # F (and the features read from it) run on the run's device
            t1 = time.perf_counter()
            veiled_train = veil.transform(self.train.images)
            veiled_test = veil.transform(self.test.images)
            t2 = time.perf_counter()
            n = len(self.train) + len(self.test)
            return {"veiled_train": veiled_train.cpu(), "veiled_test": veiled_test.cpu(),
                    "diagnostics": veil.diagnostics(),
                    "speed": {"fit_seconds": t1 - t0, "protect_seconds": t2 - t1,
                              "images_per_second": n / max(t2 - t1, 1e-9)}}

        def use(payload: dict[str, Any]) -> Veiled:
            train, test = payload["veiled_train"], payload["veiled_test"]
            if train.shape != self.train.images.shape or test.shape != self.test.images.shape:
                raise ValueError("its images do not match the run's data")
            return Veiled(key, train, test, dict(payload["diagnostics"]), dict(payload["speed"]))

        return self.store.step("veiled", spec, make, use)

    def protocol(self, params: Mapping[str, Any], augments: Iterable[str] = ("none",)
                 ) -> tuple[dict[str, float], list[dict[str, Any]], Veiled]:
        """:func:`~privis.experiments.evaluate.evaluate_protector`'s protocol for ``Veil(**params)`` with
        every model and veiled set checkpointed: the summary (its keys describe the first augmentation),
        one accuracy row per service-model augmentation in ``augments``, and the veiled data."""
        v = self.veiled(params)
        base = self.baseline()
        veil = Veil(**params)
        accs: list[dict[str, Any]] = []
        for name in augments:
            service = self.classifier("service", v.veiled_train, self.train.labels, self.num_classes,
                                      inputs={"images": f"veiled {v.key}"},
                                      augment=(name, veil.training_augmentation(name)))
            accs.append({"augment": name, **utility_summary(base, service, self.test, v.veiled_test)})
        summary: dict[str, float] = {k: v for k, v in accs[0].items() if k != "augment"}
        summary.update(image_similarity(self.test.images, v.veiled_test))
        summary.update(identity_summary(base, self.test, v.veiled_test))
        summary.update(v.diagnostics)
        summary.update(v.speed)
        summary.update(train_size=len(self.train), test_size=len(self.test))
        return summary, accs, v


def prepare(name: str, *, seed: int, quick: bool, train_size: int, test_size: int, arch: str,
            device: str | torch.device | None, checkpoint_dir: str | Path | None) -> Run:
    """Load one dataset's slices and set up its device and checkpoints (module docstring).

    Raises:
        InvalidInputError: an unknown ``arch`` or a bad ``device``.
        DatasetError: a bad ``name`` or slices without the same classes.
    """
    if arch not in models.available():
        raise InvalidInputError(f"arch {arch!r} is not in the model zoo ({', '.join(models.available())})")
    dev = resolve_device(device)
    cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, model=arch)
    train, test = load_train_test(cfg)
    if checkpoint_dir is not None:
        root: Path | None = Path(checkpoint_dir).expanduser()
    else:
        root = None if quick else cache_root()
    key = digest({"data": cfg.data, "train": len(train), "test": len(test), "seed": seed, "quick": quick,
                  "fingerprint": data_fingerprint(train.images, train.labels, test.images, test.labels)})[:16]
    return Run(name, cfg, train, test, dev, Checkpoints(root, key), quick)


def ssim_per_image(veiled: Tensor, original: Tensor) -> Tensor:
    """|SSIM| of each veiled image against its original, ``(N,)`` (window sized to the images)."""
    win = metrics.ssim_window(*original.shape[-2:])
    return cast(Tensor, metrics.ssim(veiled, original, win_size=win)).abs()


# ------------------------------------------------------------------------------- paper beside privis
def beside_paper(table: str, quantities: Iterable[tuple[str, str]], ours: Mapping[str, Mapping[str, Any]],
                 paper: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per ``(key, label)`` of ``quantities``: the paper's value (:data:`PAPER_COLUMN`'s data set, or
    the flat ``paper`` given) beside each privis column of ``ours`` (column name -> key -> value); a
    value one side does not report is None."""
    column = PAPER_COLUMN[table]
    values = PAPER_VALUES[table][column] if paper is None else paper
    return [{"quantity": label, f"paper: {column}": values.get(key),
             **{col: vals.get(key) for col, vals in ours.items()}} for key, label in quantities]


def as_published(table: str, first: str = "dataset") -> list[dict[str, Any]]:
    """The paper's table as transcribed in :data:`PAPER_VALUES`, one row per data set (or variant)."""
    return [{first: name, **values} for name, values in PAPER_VALUES[table].items()]


def finish(name: str, runs: list[Run], *, tables: dict[str, list[dict[str, Any]]], summary: dict[str, float],
           figures: list[Figure], seed: int, quick: bool, **config: Any) -> Result:
    """The experiment's Result: its tables, the paper's notes, and per run its sizes, device and checkpoint
    key (never the checkpoint folder's path)."""
    table = name.removeprefix("veil-")
    notes = [DIFFERENT_DATA, *PAPER_NOTES.get(table, [])]
    for run in runs:
        where = "not kept" if run.store.root is None else f"key {run.store.key}"
        notes.append(f"{run.name}: {len(run.train)} training / {len(run.test)} test images, {run.cfg.model}, "
                     f"on {run.device.type}; checkpoints {where} (loaded {len(run.store.loaded)} steps, computed "
                     f"{len(run.store.computed)})")
    return Result(name, summary=summary, tables=tables, notes=notes, figures=figures,
                  config={"seed": seed, "quick": quick, "datasets": [r.name for r in runs],
                          "arch": runs[0].cfg.model if runs else None,
                          "sizes": {r.name: {"train": len(r.train), "test": len(r.test)} for r in runs},
                          "devices": {r.name: str(r.device) for r in runs},
                          "checkpoint_keys": {r.name: r.store.key for r in runs if r.store.root is not None},
                          **config})


def timed(fn: Callable[[], Result]) -> Result:
    t0 = time.perf_counter()
    result = fn()
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------------------------- Table 2
TABLE2_QUANTITIES = [("baseline_on_original", "baseline model, original test data"),
                     ("baseline_on_veiled", "baseline model, veiled test data"),
                     ("veiled_on_original", "veiled model, original test data"),
                     ("veiled_on_veiled", "veiled model, veiled test data"),
                     ("ssim_mean", "mean |SSIM| veiled vs original (test)")]


@register_experiment("veil-table2", "Veil Table 2: baseline and veiled models on original and veiled test data.")
def table2(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000, arch: str = "lenet5", device: str | None = None,
           checkpoint_dir: str | None = None) -> Result:
    """Table 2 (Sec. 5.3): a baseline trained on originals and a veiled model trained on veiled training images,
    each tested on original and on veiled test images, per dataset, with the paper's MNIST column beside.

    Options as in the module docstring. Returns tables ``Table 2 (accuracy)`` (accuracies in [0, 1], mean
    |SSIM|, share of images reaching xi), the comparison with the paper and the paper's table as published;
    the summary holds every protocol key (:func:`~privis.experiments.evaluate.evaluate_protector`'s) per
    dataset. Raises ``InvalidInputError`` for a bad ``arch`` or ``device``.
    """

    def run() -> Result:
        rows, figures, summary, runs = [], [], {}, []
        for name in datasets_for(data):
            r = prepare(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, arch=arch,
                        device=device, checkpoint_dir=checkpoint_dir)
            runs.append(r)
            s, _, v = r.protocol(veil_params(seed, quick, local_arch=arch))
            rows.append({"dataset": name, "backbone": arch, "train": len(r.train), "test": len(r.test),
                         "baseline_on_original": s["baseline_acc_original"],
                         "baseline_on_veiled": s["baseline_acc_protected"],
                         "veiled_on_original": s["protected_acc_original"],
                         "veiled_on_veiled": s["protected_acc_protected"],
                         "ssim_mean": s["ssim_mean"], "stop_reached": s["stop_reached_fraction"]})
            summary.update({f"{name}.{k}": val for k, val in s.items()})
            figures.append(Figure(f"{name}: original | veiled (test images)",
                                  image_grid_png({"original": r.test.images, "veiled": v.veiled_test})))
        ours = {run.column: row for run, row in zip(runs, rows, strict=True)}
        tables = {"Table 2 (accuracy)": rows,
                  "Table 2: the paper (MNIST) beside privis": beside_paper("table2", TABLE2_QUANTITIES, ours),
                  "Table 2 as published (every data set)": as_published("table2")}
        return finish("veil-table2", runs, tables=tables, summary=summary, figures=figures, seed=seed, quick=quick)

    return timed(run)


# --------------------------------------------------------------------------------------------- Table 3
TABLE3_QUANTITIES = [("example_1", "|SSIM| example 1"), ("example_2", "|SSIM| example 2"),
                     ("example_3", "|SSIM| example 3"), ("mean", "|SSIM| mean over the test set"),
                     ("fraction_below_0.05", "share of test images with |SSIM| < 0.05")]


@register_experiment("veil-table3", "Veil Table 3: |SSIM| between veiled and original images.")
def table3(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000, arch: str = "lenet5", device: str | None = None,
           checkpoint_dir: str | None = None) -> Result:
    """Table 3 (Sec. 5.2): |SSIM| of each veiled test image against its original (the first three test images
    as the paper's examples 1-3, then the mean, spread and quantiles over the test set), per dataset, with the
    paper's MNIST column beside. The veiled images are Table 2's (same setting, same checkpoint).

    Options as in the module docstring. Raises ``InvalidInputError`` for a bad ``arch`` or ``device``.
    """

    def run() -> Result:
        rows, figures, summary, runs = [], [], {}, []
        for name in datasets_for(data):
            r = prepare(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, arch=arch,
                        device=device, checkpoint_dir=checkpoint_dir)
            runs.append(r)
            v = r.veiled(veil_params(seed, quick, local_arch=arch))
            s = ssim_per_image(v.veiled_test, r.test.images)
            q = torch.quantile(s, torch.tensor([0.5, 0.9, 0.99], device=s.device))
            row: dict[str, Any] = {
                "dataset": name, "example_1": float(s[0]), "example_2": float(s[1]), "example_3": float(s[2]),
                "mean": float(s.mean()), "std": float(s.std()), "median": float(q[0]), "p90": float(q[1]),
                "p99": float(q[2]), "max": float(s.max()), "fraction_below_0.05": float((s < 0.05).float().mean())}
            rows.append(row)
            summary.update({f"{name}.ssim_mean": row["mean"], f"{name}.ssim_p90": row["p90"]})
            figures.append(Figure(f"{name}: examples 1-3", image_grid_png(
                {"original": r.test.images[:3], "veiled": v.veiled_test[:3]}), "original | veiled"))
        ours = {run.column: row for run, row in zip(runs, rows, strict=True)}
        tables = {"Table 3 (|SSIM| veiled vs original)": rows,
                  "Table 3: the paper (MNIST) beside privis": beside_paper("table3", TABLE3_QUANTITIES, ours),
                  "Table 3 as published (every data set)": as_published("table3")}
        return finish("veil-table3", runs, tables=tables, summary=summary, figures=figures, seed=seed, quick=quick)

    return timed(run)


# --------------------------------------------------------------------------------------------- Table 4
def last_linear_name(model: nn.Module) -> str:
    """Name of the last ``nn.Linear`` in registration order: the classification layer."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear classification layer")
    return names[-1]


def widen_classifier(model: nn.Module, num_classes: int, *, seed: int = 0) -> nn.Module:
    """Copy of ``model`` (in eval mode) whose last linear layer has ``num_classes`` outputs, all other weights
    frozen.

    The old class rows are kept as the new layer's start, the new rows drawn with ``seed`` (the caller's
    global RNG is left alone); only that layer trains (Sec. 5.3, fine-tuning).
    """
    model = copy.deepcopy(model)
    name = last_linear_name(model)
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    old: nn.Linear = model.get_submodule(name)  # type: ignore[assignment]
    with models.seeded_rng(seed):
        new = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    with torch.no_grad():
        new.weight[: old.out_features] = old.weight
        new.bias[: old.out_features] = old.bias
    setattr(parent, name.rsplit(".", 1)[-1], new)
    # torch types Module.__setattr__'s value as Tensor | Module; plain attributes are allowed at run time
    model.arch_kwargs = {**getattr(model, "arch_kwargs", {}), "num_classes": num_classes}  # type: ignore[assignment]
    models.freeze(model)
    for p in new.parameters():
        p.requires_grad_(True)
    return model


def _acc(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return models.evaluate(model, images, labels) if len(labels) else float("nan")


TABLE4_QUANTITIES = [
    ("combination_total", "combination: all original test images"),
    ("combination_original_classes", "combination: the classes kept original"),
    ("combination_veiled_class_on_veiled", "combination: the veiled class, veiled test images"),
    ("combination_veiled_class_on_original", "combination: the veiled class, original test images"),
    ("finetune_total", "fine-tuning: all original test images"),
    ("finetune_original_classes", "fine-tuning: the classes kept original"),
    ("finetune_new_class_on_veiled", "fine-tuning: the new class, veiled test images"),
    ("finetune_new_class_on_original", "fine-tuning: the new class, original test images"),
    ("transfer_on_veiled", "transfer model: veiled test images"),
    ("transfer_on_original", "transfer model: original test images"),
]


@register_experiment("veil-table4", "Veil Table 4: combination training, fine-tuning a new veiled class, "
                     "transferability across architectures.")
def table4(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000, transfer_model: str | None = None, arch: str = "lenet5",
           device: str | None = None, checkpoint_dir: str | None = None) -> Result:
    """Table 4 (Sec. 5.3) per dataset, with the paper's ORL column beside (it reports no MNIST figure here).

    * Combination training: class 0 of the training images replaced by its veiled copies.
    * Fine-tuning: a model trained without class 0, its last linear layer widened by one class and trained
      alone (all else frozen) on the originals plus the veiled class 0.
    * Transferability: ``transfer_model`` (default ``alexnet``, the paper's; ``lenet5`` when ``arch`` is
      AlexNet) trained on images veiled with a local model of architecture ``arch``.

    Accuracies are in [0, 1]. Other options as in the module docstring. Raises ``InvalidInputError`` for a bad
    ``arch`` or ``device``.
    """
    transfer_arch = transfer_model or ("lenet5" if arch == "alexnet" else "alexnet")

    def run() -> Result:
        combo: list[dict[str, Any]] = []
        finetune: list[dict[str, Any]] = []
        transfer: list[dict[str, Any]] = []
        summary: dict[str, float] = {}
        runs, ours = [], {}
        for name in datasets_for(data):
            r = prepare(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, arch=arch,
                        device=device, checkpoint_dir=checkpoint_dir)
            runs.append(r)
            v = r.veiled(veil_params(seed, quick, local_arch=arch))
            train, test = r.train, r.test
            k = train.num_classes
            cls = 0  # the substituted / reserved class
            # Combination training: class `cls` of the training data replaced by its veiled version.
            sel = train.labels == cls
            mixed = torch.where(sel[:, None, None, None], v.veiled_train, train.images)
            model = r.classifier("combination model", mixed, train.labels, k,
                                 inputs={"images": f"veiled {v.key} for class {cls}"})
            tsel = test.labels == cls
            combo.append({
                "dataset": name, "class": train.class_names[cls],
                "total_original_test": _acc(model, test.images, test.labels),
                "original_classes": _acc(model, test.images[~tsel], test.labels[~tsel]),
                "veiled_class_on_veiled": _acc(model, v.veiled_test[tsel], test.labels[tsel]),
                "veiled_class_on_original": _acc(model, test.images[tsel], test.labels[tsel]),
            })
            # Fine-tuning: baseline trained without class `cls` (labels remapped to 0..k-2), then its
            # classifier widened to k classes and only that layer trained on originals + the veiled new class.
            keep = train.labels != cls
            remap = torch.arange(k)
            remap[cls + 1:] -= 1  # shift classes above `cls` down
            remap[cls] = k - 1  # the new class takes the last output
            base = r.classifier("fine-tune base", train.images[keep], remap[train.labels[keep]], k - 1,
                                inputs={"images": f"original without class {cls}"})
            ft = r.trained("fine-tune last layer", functools.partial(widen_classifier, base, k, seed=seed),
                           torch.where(sel[:, None, None, None], v.veiled_train, train.images), remap[train.labels],
                           inputs={"images": f"veiled {v.key} for class {cls}", "arch": arch, "classes": k},
                           epochs=r.cfg.epochs or auto_epochs(len(train)), lr=r.cfg.lr)
            test_labels = remap[test.labels]
            finetune.append({
                "dataset": name, "new_class": train.class_names[cls],
                "total_original_test": _acc(ft, test.images, test_labels),
                "original_classes": _acc(ft, test.images[~tsel], test_labels[~tsel]),
                "new_class_on_veiled": _acc(ft, v.veiled_test[tsel], test_labels[tsel]),
                "new_class_on_original": _acc(ft, test.images[tsel], test_labels[tsel]),
            })
            # Transferability: veiled with F = the local model's architecture, trained on another one.
            tr = r.classifier(f"transfer model {transfer_arch}", v.veiled_train, train.labels, k,
                              arch=transfer_arch, inputs={"images": f"veiled {v.key}"})
            transfer.append({
                "dataset": name, "local_model": arch, "transfer_model": transfer_arch,
                "on_veiled": _acc(tr, v.veiled_test, test.labels),
                "on_original": _acc(tr, test.images, test.labels),
            })
            flat = {f"{part}_{key}".replace("_total_original_test", "_total"): val
                    for part, row in (("combination", combo[-1]), ("finetune", finetune[-1]),
                                      ("transfer", transfer[-1])) for key, val in row.items()}
            ours[r.column] = flat
            summary.update({
                f"{name}.combination_total": combo[-1]["total_original_test"],
                f"{name}.finetune_new_class_on_original": finetune[-1]["new_class_on_original"],
                f"{name}.transfer_on_original": transfer[-1]["on_original"],
            })
        tables = {"Combination training": combo, "Fine-tuning training": finetune, "Transferability": transfer,
                  "Table 4: the paper (ORL) beside privis": beside_paper("table4", TABLE4_QUANTITIES, ours),
                  "Table 4 as published (every data set)": as_published("table4")}
        return finish("veil-table4", runs, tables=tables, summary=summary, figures=[], seed=seed, quick=quick,
                      transfer_model=transfer_arch)

    return timed(run)


# --------------------------------------------------------------------------------------------- Table 5
#: ``feature_layer`` value standing for the local model's last convolution (``conv2`` in LeNet-5, ``conv5``
#: in AlexNet), resolved per architecture by :func:`resolve_layers`.
LAST_CONV = "last-conv"

TABLE5_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("noise (no RPF)", {"init": "noise"}),
    ("p=0.3", {"flip_ratio": 0.3}),
    ("p=0.4", {"flip_ratio": 0.4}),
    ("p=0.5", {"flip_ratio": 0.5}),
    ("RPF without GIA", {"steps": 0}),
    ("GIA without RPF", {"init": "none"}),
    ("F = logits (fc3)", {"feature_layer": "logits"}),
    ("F = fc2", {"feature_layer": "fc2"}),
    ("F = fc1", {"feature_layer": "fc1"}),
    ("F = conv", {"feature_layer": LAST_CONV}),
]


def resolve_layers(params: Mapping[str, Any], arch: str) -> dict[str, Any]:
    """``params`` with ``feature_layer=LAST_CONV`` replaced by the name of ``arch``'s last ``nn.Conv2d``."""
    out = dict(params)
    if out.get("feature_layer") == LAST_CONV:
        model = models.create(arch, num_classes=2, in_channels=1, image_size=28)
        out["feature_layer"] = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]
    return out


def run_variants(run: Run, variants: Iterable[tuple[str, dict[str, Any]]], *, seed: int, quick: bool,
                 augments: tuple[str, ...] = ("none",)) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Evaluate Veil once per variant on one run, sharing its data, local model and baseline model.

    Each variant's veiled data is made once; one service model is trained on it per augmentation in
    ``augments``, giving one row per (variant, augmentation).
    """
    rows, grids = [], {"original": run.test.images[:6]}
    for label, given in variants:
        params = resolve_layers(given, run.cfg.model)
        s, accs, v = run.protocol(veil_params(seed, quick, local_arch=run.cfg.model, **params), augments)
        examples = ssim_per_image(v.veiled_test[:3], run.test.images[:3]).tolist()
        for acc in accs:
            rows.append({"variant": label, "augment": acc["augment"], **params,
                         "ssim_mean": s["ssim_mean"],
                         **{f"ssim_example_{i + 1}": e for i, e in enumerate(examples)},
                         "acc_on_veiled": acc["protected_acc_protected"],
                         "acc_on_original": acc["protected_acc_original"],
                         "baseline_on_original": acc["baseline_acc_original"],
                         "stop_reached": s["stop_reached_fraction"], "images_per_second": s["images_per_second"]})
        grids[label] = v.veiled_test[:6]
    return rows, [Figure(f"{run.name}: variants (columns left to right: " + ", ".join(grids) + ")",
                         image_grid_png(grids, max_rows=6))]


def _table5_flat(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{r['variant']}.{k}": r[k] for r in rows for k in ("ssim_mean", "acc_on_veiled", "acc_on_original")}


def table5_quantities() -> list[tuple[str, str]]:
    """The rows of Table 5's comparison: |SSIM|, accuracy on veiled and on original data per variant."""
    return [(f"{label}.{key}", f"{label}: {what}") for label, _ in TABLE5_VARIANTS
            for key, what in (("ssim_mean", "|SSIM| (paper: mean of images A-C; privis: test-set mean)"),
                              ("acc_on_veiled", "veiled model, veiled test data"),
                              ("acc_on_original", "veiled model, original test data"))]


@register_experiment("veil-table5", "Veil Table 5 ablation: p, noise instead of RPF, RPF without GIA, "
                     "GIA without RPF, feature layer.")
def table5(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000, arch: str = "lenet5", device: str | None = None,
           checkpoint_dir: str | None = None) -> Result:
    """Table 5 (Sec. 5.4), the ablation: noise instead of RPF, the flip ratio p, RPF without GIA, GIA without
    RPF and the layer of F (logits, fc2, fc1, the last convolution), each evaluated like Table 2 (one veiled
    set and one veiled model per variant; |SSIM| of the first three test images and the test-set mean), per
    dataset, with the paper's ORL column beside (the paper's Table 5 is ORL's, see :data:`PAPER_VALUES`).

    Options as in the module docstring. Raises ``InvalidInputError`` for a bad ``arch`` or ``device``.
    """

    def run() -> Result:
        tables, figures, summary, runs, ours = {}, [], {}, [], {}
        for name in datasets_for(data):
            r = prepare(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, arch=arch,
                        device=device, checkpoint_dir=checkpoint_dir)
            runs.append(r)
            rows, figs = run_variants(r, TABLE5_VARIANTS, seed=seed, quick=quick)
            tables[f"Table 5 ({name})"] = rows
            figures += figs
            ours[r.column] = _table5_flat(rows)
            for row in rows:
                summary[f"{name}.{row['variant']}.acc_on_original"] = row["acc_on_original"]
                summary[f"{name}.{row['variant']}.ssim_mean"] = row["ssim_mean"]
        paper = {f"{label}.{k}": v for label, values in PAPER_VALUES["table5"].items() for k, v in values.items()}
        paper.update({f"{label}.ssim_mean": sum(values[f"ssim_example_{i}"] for i in (1, 2, 3)) / 3
                      for label, values in PAPER_VALUES["table5"].items()})
        tables["Table 5: the paper (ORL) beside privis"] = beside_paper("table5", table5_quantities(), ours, paper)
        tables["Table 5 as published (ORL)"] = as_published("table5", "variant")
        return finish("veil-table5", runs, tables=tables, summary=summary, figures=figures, seed=seed, quick=quick)

    return timed(run)
