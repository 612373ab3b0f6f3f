"""VisualMixer experiments: analogues of Table I, Table II, Fig. 3 and Fig. 6 of the paper.

Li, Zhang, Ren, Li & Zhang, "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep Neural
Networks", NDSS 2024, arXiv:2404.04098.

* ``visualmixer-bounds`` -- Table I (the 2,560-case induction) beside the paper for every kernel
  arrangement and tie rule, ``WS_l`` by the normal approximation and the exact chi-square quantile,
  ``alpha_0(d)`` by Monte Carlo and the resulting ``WS_u``.
* ``visualmixer-table2`` -- plain vs VIM accuracy for several architectures (LeNet-5, a narrow ResNet-18,
  a small ViT): a model trained on original images tested on original images, against a model trained
  on VisualMixer images tested on VisualMixer images (the paper's protocol: inference data is shuffled
  too), with the mean VFE of original and shuffled test images.
* ``visualmixer-fig3`` -- uniform windows (2, 4, 7, 8, whole image) against the non-uniform Algorithm 1:
  mean VFE and accuracy.
* ``visualmixer-fig6`` -- training curves of ST-Adam and Adam on VisualMixer data.

Every experiment runs on Fashion-MNIST (when present) and scikit-learn digits by default, or on the one
dataset ``--data`` names; ``quick=True`` shrinks sizes to a smoke run. Models are seeded; VisualMixer uses
``random_state=seed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from privis import data as pdata
from privis import metrics, models
from privis.experiments import register_experiment
from privis.experiments.evaluate import EvalConfig, auto_epochs, build_classifier, load_train_test
from privis.methods.visualmixer import VisualMixer
from privis.privacy import visualmixer_bounds as vb
from privis.report import image_grid_png, line_plot_png, scatter_png
from privis.results import Figure, Result

#: Architectures of the Table II analogue and the options that keep them small on 2 CPU cores.
TABLE2_ARCHS: dict[str, dict[str, Any]] = {
    "lenet5": {},
    "resnet18": {"width": 16},
    "vit": {"dim": 64, "depth": 4, "heads": 4, "mlp_dim": 128},
}


def datasets_for(data: str | None) -> list[str]:
    """The one dataset asked for, else Fashion-MNIST (if present) and digits."""
    if data:
        return [data]
    return (["fashion-mnist"] if pdata.fashion_mnist_available() else []) + ["digits"]


def sizes_for(data: str, quick: bool, train_size: int, test_size: int) -> EvalConfig:
    """digits is used whole (1,347 train / 450 test); other data are sliced (quick: 600 / 300)."""
    digits = data.startswith("digits")
    return EvalConfig(data=data, train_size=None if digits else (600 if quick else train_size),
                      test_size=None if digits else (300 if quick else test_size))


_AUTO_EPOCHS = "auto: clip(60000 / training images, 10, 60), as privis evaluate"


def fit_classifier(arch: str, images: Tensor, labels: Tensor, num_classes: int, *, epochs: int, seed: int,
                   optimizer: str = "adam", lr: float = 1e-3, val: tuple[Tensor, Tensor] | None = None,
                   options: dict[str, Any] | None = None, input_layer: torch.nn.Module | None = None,
                   ) -> tuple[torch.nn.Module, models.TrainHistory]:
    """Build ``arch`` (with zoo ``options``, behind ``input_layer`` if given) seeded, train it and return it
    with its history."""
    model = build_classifier(arch, images, num_classes, seed=seed, options=options, input_layer=input_layer)
    history = models.train(model, images, labels, epochs=epochs, batch_size=128, optimizer=optimizer, lr=lr,
                           seed=seed, val=val, desc=f"{arch} ({optimizer})")
    return model, history


def _timed(fn: Callable[[], Result]) -> Result:
    t0 = time.perf_counter()
    result = fn()
    result.seconds = time.perf_counter() - t0
    return result


def _vfe(images: Tensor) -> float:
    return float(metrics.vfe(images).mean())


# --------------------------------------------------------------------------------------------- bounds
@register_experiment("visualmixer-bounds", "VisualMixer Table I (2,560-case induction) vs the paper, WS_l by "
                     "normal/chi-square, alpha_0(d) and WS_u.")
def bounds(*, data: str | None = None, seed: int = 0, quick: bool = False) -> Result:
    def run() -> Result:
        table1 = vb.table1_comparison()
        l1 = {k: v for k, v in table1[-1].items() if k not in ("B", "paper")}
        best = min(l1, key=lambda k: l1[k])
        lower_rows = []
        for h in (8, 28, 32, 224):
            for target in (4.0, 12.0, 24.0, 112.0):
                row: dict[str, Any] = {"image": f"{h}x{h}", "target_vfe (Eq. 12 units)": target}
                for method in ("normal", "chi2"):
                    try:
                        row[f"WS_l {method}"] = vb.window_lower_bound(target, h, h, method=method)
                    except Exception:  # noqa: BLE001 - no window of this image reaches the target
                        row[f"WS_l {method}"] = None
                lower_rows.append(row)
        samples = 4000 if quick else 50_000
        ds = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0]
        alpha_rows = []
        curve: dict[str, list[float]] = {"multiset": [], "any": []}
        for d in ds:
            row = {"d": d}
            for constraint in ("multiset", "any"):
                a0 = vb.alpha0(d, samples=samples, constraint=constraint, seed=seed)
                curve[constraint].append(a0)
                row[f"alpha0 ({constraint})"] = a0
                for alpha in (0.5, 0.3, 0.1):
                    row[f"WS_u {constraint} alpha={alpha}"] = vb.window_upper_bound(alpha, a0, max_ws=224)
            alpha_rows.append(row)
        d_default = VisualMixer().bias_d
        a0_default = vb.alpha0(d_default, samples=samples, seed=seed)
        summary = {"table1_total": float(table1[-2]["paper"]),
                   "table1_best_l1": float(l1[best]),
                   "ws_lower_28_default": float(vb.window_lower_bound(4.0, 28, 28)),
                   "ws_lower_224_eq12_example": float(vb.window_lower_bound(112.0, 224, 224)),
                   "alpha0_default_d": a0_default,
                   "ws_upper_default": float(vb.window_upper_bound(VisualMixer().alpha, a0_default))}
        mean8, var8 = vb.vfe_distribution(8, 224, 224)
        summary.update({"eq12_mean_224_ws8": float(mean8), "eq12_var_224_ws8": float(var8)})
        fig = Figure("alpha_0 = P(diff_max <= d)", line_plot_png(
            {f"alpha0 ({k})": v for k, v in curve.items()}, xlabel=f"d index (d = {ds})", ylabel="alpha_0",
            title="Monte Carlo, w ~ N(0, 1), 3x3 window"), "alpha_0 against the bias d for both shuffle models")
        notes = [f"Table I: closest arrangement/tie rule to the paper is {best} (L1 distance {l1[best]} over "
                 "2,560 cases); no combination reproduces the paper's counts exactly. The paper does not state "
                 "where w1..w4 sit in the kernel nor how an undecidable maximum is named.",
                 "diff_max 'multiset' keeps the window's pixel multiset (what a shuffle can do); 'any' is Eq. "
                 "13-15 as written (max minus min over all 512 windows)."]
        return Result("visualmixer-bounds", summary=summary,
                      tables={"Table I (counts of B over 2,560 cases)": table1, "WS_l": lower_rows,
                              "alpha_0 and WS_u": alpha_rows},
                      config={"seed": seed, "quick": quick, "mc_samples": samples}, notes=notes, figures=[fig])

    return _timed(run)


# --------------------------------------------------------------------------------------------- Table II
@register_experiment("visualmixer-table2", "VisualMixer Table II analogue: plain vs VIM accuracy for LeNet-5, "
                     "ResNet-18 (narrow) and ViT (small), with mean VFE.")
def table2(*, data: str | None = None, seed: int = 0, quick: bool = False, epochs: int | None = None,
           train_size: int = 10000, test_size: int = 2000, optimizer: str = "adam",
           archs: tuple[str, ...] = tuple(TABLE2_ARCHS), bare: bool = True) -> Result:
    """``vim``: the VIM model behind VisualMixer's service layer (cells sorted, see
    :meth:`VisualMixer.service_input_layer`); ``bare=True`` also trains the bare architecture on the same
    VIM data (column ``vim_bare``)."""
    def run() -> Result:
        rows, figures, summary, drops = [], [], {}, []
        for name in datasets_for(data):
            cfg = sizes_for(name, quick, train_size, test_size)
            train, test = load_train_test(cfg)
            n_epochs = epochs or (1 if quick else auto_epochs(len(train.labels)))
            k = max(train.num_classes, int(train.labels.max()) + 1)
            vm = VisualMixer(random_state=seed).fit(train.images)
            vim_train = vm.transform(train.images)
            vim_test = vm.transform(test.images)
            diag = vm.diagnostics()
            vfe_o, vfe_v = _vfe(test.images), _vfe(vim_test)
            for arch in archs:
                opts = TABLE2_ARCHS.get(arch, {})
                plain, _ = fit_classifier(arch, train.images, train.labels, k, epochs=n_epochs, seed=seed,
                                          optimizer=optimizer, options=opts)
                vim, _ = fit_classifier(arch, vim_train, train.labels, k, epochs=n_epochs, seed=seed,
                                        optimizer=optimizer, options=opts, input_layer=vm.service_input_layer())
                acc_plain = models.evaluate(plain, test.images, test.labels)
                acc_vim = models.evaluate(vim, vim_test, test.labels)
                drops.append(acc_plain - acc_vim)
                row: dict[str, Any] = {"dataset": name, "model": arch, "train": len(train), "test": len(test),
                       "windows": "/".join(map(str, vm.levels_)), "epochs": n_epochs, "optimizer": optimizer,
                       "plain": acc_plain, "vim": acc_vim, "drop_points": 100 * (acc_plain - acc_vim)}
                if bare:
                    vim_bare, _ = fit_classifier(arch, vim_train, train.labels, k, epochs=n_epochs, seed=seed,
                                                 optimizer=optimizer, options=opts)
                    row["vim_bare"] = models.evaluate(vim_bare, vim_test, test.labels)
                    row["drop_points_bare"] = 100 * (acc_plain - row["vim_bare"])
                    summary[f"{name}.{arch}.vim_bare"] = row["vim_bare"]
                row.update({"plain_model_on_vim": models.evaluate(plain, vim_test, test.labels),
                            "vfe_original": vfe_o, "vfe_vim": vfe_v})
                rows.append(row)
                summary[f"{name}.{arch}.plain"] = acc_plain
                summary[f"{name}.{arch}.vim"] = acc_vim
            summary[f"{name}.vfe_original_mean"] = vfe_o
            summary[f"{name}.vfe_vim_mean"] = vfe_v
            summary[f"{name}.keyspace_bits_mean"] = diag.get("keyspace_bits_mean", float("nan"))
            figures.append(Figure(f"{name}: original | VisualMixer", image_grid_png(
                {"original": test.images, "visualmixer": vim_test}), "left: original test images; right: shuffled"))
        summary["mean_drop_points"] = 100 * float(np.mean(drops))
        summary["max_drop_points"] = 100 * float(np.max(drops))
        return Result("visualmixer-table2", summary=summary, tables={"Table II analogue (accuracy)": rows},
                      config={"seed": seed, "quick": quick, "epochs": epochs or _AUTO_EPOCHS, "optimizer": optimizer,
                              "archs": {a: TABLE2_ARCHS.get(a, {}) for a in archs},
                              "datasets": datasets_for(data)},
                      notes=["plain: trained and tested on originals; vim: trained and tested on VisualMixer "
                             "images (the paper shuffles inference data too), behind the service layer that sorts "
                             "each smallest-window cell; vim_bare: the bare architecture on the same data. The "
                             "paper averages 2.35 points."],
                      figures=figures)

    return _timed(run)


# --------------------------------------------------------------------------------------------- Fig. 3
@register_experiment("visualmixer-fig3", "VisualMixer Fig. 3 analogue: uniform windows (2, 4, 7, 8, whole) vs "
                     "non-uniform Algorithm 1: VFE and accuracy.")
def fig3(*, data: str | None = None, seed: int = 0, quick: bool = False, epochs: int | None = None,
         train_size: int = 5000, test_size: int = 2000, arch: str = "lenet5") -> Result:
    def run() -> Result:
        rows, figures, summary = [], [], {}
        points: list[dict[str, float | str]] = []
        for name in datasets_for(data):
            cfg = sizes_for(name, quick, train_size, test_size)
            train, test = load_train_test(cfg)
            n_epochs = epochs or (1 if quick else auto_epochs(len(train.labels)))
            k = max(train.num_classes, int(train.labels.max()) + 1)
            side = min(train.images.shape[-2:])
            strategies: dict[str, dict[str, Any]] = {"plain": {}}
            for ws in (2, 4) if quick else (2, 4, 7, 8):
                if ws <= side:
                    strategies[f"uniform WS={ws}"] = {"window": ws}
            strategies["uniform whole image"] = {"window": int(max(train.images.shape[-2:]))}
            strategies["non-uniform (Algorithm 1)"] = {}
            grid = {"original": test.images}
            for label, params in strategies.items():
                if label == "plain":
                    tr, te = train.images, test.images
                else:
                    vm = VisualMixer(random_state=seed, **params).fit(train.images)
                    tr, te = vm.transform(train.images), vm.transform(test.images)
                    grid[label] = te
                model, _ = fit_classifier(arch, tr, train.labels, k, epochs=n_epochs, seed=seed)
                acc = models.evaluate(model, te, test.labels)
                vfe = _vfe(te)
                rows.append({"dataset": name, "strategy": label, "vfe_mean": vfe, "accuracy": acc})
                points.append({"vfe_mean": vfe, "accuracy": acc, "label": f"{name}: {label}"})
                summary[f"{name}.{label}.accuracy"] = acc
                summary[f"{name}.{label}.vfe_mean"] = vfe
            figures.append(Figure(f"{name}: original | strategies", image_grid_png(grid),
                                  "columns: " + " | ".join(grid)))
        figures.insert(0, Figure("VFE vs accuracy", scatter_png(points, x="vfe_mean", y="accuracy",
                                                                title="Fig. 3 analogue"),
                                 "each point: one shuffling strategy (model trained and tested on it)"))
        return Result("visualmixer-fig3", summary=summary, tables={"Fig. 3 analogue": rows},
                      config={"seed": seed, "quick": quick, "epochs": epochs or _AUTO_EPOCHS, "arch": arch},
                      figures=figures)

    return _timed(run)


# --------------------------------------------------------------------------------------------- Fig. 6
@register_experiment("visualmixer-fig6", "VisualMixer Fig. 6 analogue: ST-Adam vs Adam training curves on "
                     "VisualMixer data.")
def fig6(*, data: str | None = None, seed: int = 0, quick: bool = False, epochs: int | None = None,
         train_size: int = 10000, test_size: int = 2000, arch: str = "lenet5", lr: float = 1e-3) -> Result:
    def run() -> Result:
        rows, figures, summary = [], [], {}
        n_epochs = epochs or (2 if quick else 10)
        for name in datasets_for(data):
            cfg = sizes_for(name, quick, train_size, test_size)
            train, test = load_train_test(cfg)
            k = max(train.num_classes, int(train.labels.max()) + 1)
            vm = VisualMixer(random_state=seed).fit(train.images)
            vim_train, vim_test = vm.transform(train.images), vm.transform(test.images)
            loss, acc = {}, {}
            for opt in ("adam", "st-adam"):
                _, hist = fit_classifier(arch, vim_train, train.labels, k, epochs=n_epochs, seed=seed, optimizer=opt,
                                         lr=lr, options=TABLE2_ARCHS.get(arch, {}), val=(vim_test, test.labels))
                loss[opt], acc[opt] = hist.loss, hist.val_acc
                for epoch, (lo, va) in enumerate(zip(hist.loss, hist.val_acc, strict=True), start=1):
                    rows.append({"dataset": name, "optimizer": opt, "epoch": epoch, "train_loss": lo, "val_acc": va})
                summary[f"{name}.{opt}.final_val_acc"] = hist.val_acc[-1]
                summary[f"{name}.{opt}.final_loss"] = hist.loss[-1]
                summary[f"{name}.{opt}.best_val_acc"] = max(hist.val_acc)
            figures.append(Figure(f"{name}: training loss", line_plot_png(
                loss, xlabel="epoch", ylabel="training loss", title=f"{arch} on VisualMixer {name}"), ""))
            figures.append(Figure(f"{name}: test accuracy (VIM test data)", line_plot_png(
                acc, xlabel="epoch", ylabel="accuracy", title=f"{arch} on VisualMixer {name}"), ""))
        return Result("visualmixer-fig6", summary=summary, tables={"Fig. 6 analogue (curves)": rows},
                      config={"seed": seed, "quick": quick, "epochs": n_epochs, "arch": arch, "lr": lr},
                      figures=figures)

    return _timed(run)
