"""Veil Privacy experiments reproducing Tables 2-5 of the paper, plus the accuracy-vs-|SSIM| frontier.

Pang, Ma, Li, Zhou & Yao, "Veil Privacy on Visual Data: Concealing Privacy for Humans, Unveiling for DNNs",
ECCV 2024.

Every experiment runs on Fashion-MNIST (when present) and scikit-learn digits by default, or on the one
dataset ``--data`` names. ``quick=True`` shrinks sizes to a smoke run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from privis import data as pdata
from privis import metrics, models
from privis.experiments import register_experiment
from privis.experiments.evaluate import (
    EvalConfig,
    auto_epochs,
    evaluate_protector,
    load_train_test,
    train_classifier,
)
from privis.methods.veil import Veil
from privis.report import image_grid_png, scatter_png
from privis.results import Figure, Result


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
    """A fitted Veil and the owner's data with its veiled copies."""

    train: pdata.Dataset
    test: pdata.Dataset
    veil: Veil
    veiled_train: Tensor
    veiled_test: Tensor


def make_veiled(cfg: EvalConfig, params: dict[str, Any],
                data: tuple[pdata.Dataset, pdata.Dataset] | None = None) -> Veiled:
    train, test = data or load_train_test(cfg)
    veil = Veil(**params).fit(train.images, train.labels)
    return Veiled(train, test, veil, veil.transform(train.images), veil.transform(test.images))


def timed(fn: Callable[[], Result]) -> Result:
    t0 = time.perf_counter()
    result = fn()
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------------------------- Table 2
@register_experiment("veil-table2", "Veil Table 2: baseline and veiled models on original and veiled test data.")
def table2(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000) -> Result:
    def run() -> Result:
        rows, figures, summary = [], [], {}
        for name in datasets_for(data):
            cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size)
            res = evaluate_protector(Veil(**veil_params(seed, quick)), cfg)
            s = res.summary
            rows.append({"dataset": name, "backbone": cfg.model, "train": int(s["train_size"]),
                         "test": int(s["test_size"]),
                         "baseline_on_original": s["baseline_acc_original"],
                         "baseline_on_veiled": s["baseline_acc_protected"],
                         "veiled_on_original": s["protected_acc_original"],
                         "veiled_on_veiled": s["protected_acc_protected"],
                         "ssim_mean": s["ssim_mean"], "stop_reached": s["stop_reached_fraction"]})
            summary.update({f"{name}.{k}": v for k, v in s.items()})
            figures += [Figure(f"{name}: {f.title}", f.png, f.caption) for f in res.figures]
        return Result("veil-table2", summary=summary, tables={"Table 2 (accuracy)": rows},
                      config={"seed": seed, "quick": quick, "datasets": datasets_for(data)}, figures=figures)

    return timed(run)


# --------------------------------------------------------------------------------------------- Table 3
@register_experiment("veil-table3", "Veil Table 3: |SSIM| between veiled and original images.")
def table3(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000) -> Result:
    def run() -> Result:
        rows, figures, summary = [], [], {}
        for name in datasets_for(data):
            cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size)
            v = make_veiled(cfg, veil_params(seed, quick))
            win = metrics.ssim_window(*v.test.images.shape[-2:])
            s = cast(Tensor, metrics.ssim(v.veiled_test, v.test.images, win_size=win)).abs()
            q = torch.quantile(s, torch.tensor([0.5, 0.9, 0.99], device=s.device))
            row: dict[str, Any] = {
                "dataset": name, "example_1": float(s[0]), "example_2": float(s[1]), "example_3": float(s[2]),
                "mean": float(s.mean()), "std": float(s.std()), "median": float(q[0]), "p90": float(q[1]),
                "p99": float(q[2]), "max": float(s.max()), "fraction_below_0.05": float((s < 0.05).float().mean())}
            rows.append(row)
            summary.update({f"{name}.ssim_mean": row["mean"], f"{name}.ssim_p90": row["p90"]})
            figures.append(Figure(f"{name}: examples 1-3", image_grid_png(
                {"original": v.test.images[:3], "veiled": v.veiled_test[:3]}), "original | veiled"))
        return Result("veil-table3", summary=summary, tables={"Table 3 (|SSIM| veiled vs original)": rows},
                      config={"seed": seed, "quick": quick}, figures=figures)

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


@register_experiment("veil-table4", "Veil Table 4: combination training, fine-tuning a new veiled class, "
                     "transferability across architectures.")
def table4(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000, transfer_model: str = "alexnet") -> Result:
    def run() -> Result:
        combo: list[dict[str, Any]] = []
        finetune: list[dict[str, Any]] = []
        transfer: list[dict[str, Any]] = []
        summary: dict[str, float] = {}
        for name in datasets_for(data):
            cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size)
            v = make_veiled(cfg, veil_params(seed, quick))
            train, test = v.train, v.test
            k = train.num_classes
            cls = 0  # the substituted / reserved class
            # Combination training: class `cls` of the training data replaced by its veiled version.
            mixed = train.images.clone()
            sel = train.labels == cls
            mixed[sel] = v.veiled_train[sel]
            model = train_classifier(mixed, train.labels, k, cfg, desc="combination model")
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
            base = train_classifier(train.images[keep], remap[train.labels[keep]], k - 1, cfg,
                                    desc="fine-tune: baseline without the new class")
            ft = widen_classifier(base, k, seed=seed)
            ft_images = torch.where(sel[:, None, None, None], v.veiled_train, train.images)
            models.train(ft, ft_images, remap[train.labels], epochs=cfg.epochs or auto_epochs(len(train)),
                         lr=cfg.lr, seed=seed,
                         desc="fine-tune: last layer")
            test_labels = remap[test.labels]
            finetune.append({
                "dataset": name, "new_class": train.class_names[cls],
                "total_original_test": _acc(ft, test.images, test_labels),
                "original_classes": _acc(ft, test.images[~tsel], test_labels[~tsel]),
                "new_class_on_veiled": _acc(ft, v.veiled_test[tsel], test_labels[tsel]),
                "new_class_on_original": _acc(ft, test.images[tsel], test_labels[tsel]),
            })
            # Transferability: veiled with F = the local model's architecture, trained on another one.
            tr = train_classifier(v.veiled_train, train.labels, k, cfg, arch=transfer_model,
                                  desc=f"transfer model ({transfer_model})")
            transfer.append({
                "dataset": name, "local_model": v.veil.local_arch, "transfer_model": transfer_model,
                "on_veiled": _acc(tr, v.veiled_test, test.labels),
                "on_original": _acc(tr, test.images, test.labels),
            })
            summary.update({
                f"{name}.combination_total": combo[-1]["total_original_test"],
                f"{name}.finetune_new_class_on_original": finetune[-1]["new_class_on_original"],
                f"{name}.transfer_on_original": transfer[-1]["on_original"],
            })
        return Result("veil-table4", summary=summary,
                      tables={"Combination training": combo, "Fine-tuning training": finetune,
                              "Transferability": transfer},
                      config={"seed": seed, "quick": quick, "transfer_model": transfer_model})

    return timed(run)


# --------------------------------------------------------------------------------------------- Table 5
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
    ("F = conv", {"feature_layer": "conv2"}),
]


def run_variants(cfg: EvalConfig, variants: Iterable[tuple[str, dict[str, Any]]], *, seed: int, quick: bool,
                 augments: tuple[str, ...] = ("default",)) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Evaluate Veil once per variant on one dataset, sharing the data and the baseline model.

    Each variant's veiled data is made once; one service model is trained on it per augmentation in
    ``augments``, giving one row per (variant, augmentation).
    """
    data = load_train_test(cfg)
    baseline = train_classifier(data[0].images, data[0].labels, data[0].num_classes, cfg, desc="baseline")
    rows, grids = [], {"original": data[1].images[:6]}
    for label, params in variants:
        veil = Veil(**veil_params(seed, quick, **params))
        first, *others = augments
        res = evaluate_protector(veil, cfg, data=data, baseline=baseline, augment=veil.training_augmentation(first),
                                 extra_augments={a: veil.training_augmentation(a) for a in others})
        s = res.summary
        main = {"augment": first, **{k: s[k] for k in ("protected_acc_protected", "protected_acc_original",
                                                       "baseline_acc_original")}}
        for acc in [main, *res.tables.get("service models by augmentation", [])]:
            rows.append({"variant": label, "augment": acc["augment"], **dict(params),
                         "ssim_mean": s["ssim_mean"], "acc_on_veiled": acc["protected_acc_protected"],
                         "acc_on_original": acc["protected_acc_original"],
                         "baseline_on_original": acc["baseline_acc_original"],
                         "stop_reached": s["stop_reached_fraction"], "images_per_second": s["images_per_second"]})
        grids[label] = veil.transform(data[1].images[:6])
    return rows, [Figure("variants (columns left to right: " + ", ".join(grids) + ")",
                         image_grid_png(grids, max_rows=6))]


@register_experiment("veil-table5", "Veil Table 5 ablation: p, noise instead of RPF, RPF without GIA, "
                     "GIA without RPF, feature layer.")
def table5(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
           test_size: int = 2000) -> Result:
    def run() -> Result:
        tables, figures, summary = {}, [], {}
        for name in datasets_for(data):
            cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size)
            rows, figs = run_variants(cfg, TABLE5_VARIANTS, seed=seed, quick=quick)
            tables[f"Table 5 ({name})"] = rows
            figures += figs
            for row in rows:
                summary[f"{name}.{row['variant']}.acc_on_original"] = row["acc_on_original"]
                summary[f"{name}.{row['variant']}.ssim_mean"] = row["ssim_mean"]
        return Result("veil-table5", summary=summary, tables=tables, config={"seed": seed, "quick": quick},
                      figures=figures)

    return timed(run)


# ------------------------------------------------------------------------------------------ frontier
FRONTIER_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("adam 0.05 (default)", {}),
    ("adam 0.02", {"step_size": 0.02}),
    ("adam 0.01", {"step_size": 0.01}),
    ("sgd 0.1 (Eq. 3 as written)", {"optimizer": "sgd", "step_size": 0.1}),
    ("adam 0.05, xi=0.1", {"stop_loss": 0.1}),
    ("adam 0.05, T=100", {"steps": 100}),
    ("adam 0.05, T=30", {"steps": 30}),
    ("adam 0.05, T=10", {"steps": 10}),
    ("RPF only (T=0)", {"steps": 0}),
    ("adam 0.05, beta=0.01", {"beta": 0.01}),
    ("adam 0.05, local 3 epochs", {"local_epochs": 3}),
    ("adam 0.05, local 25 epochs", {"local_epochs": 25}),
    ("adam 0.05, F=fc2", {"feature_layer": "fc2"}),
    ("adam 0.05, F=conv2", {"feature_layer": "conv2"}),
]


@register_experiment("veil-frontier", "Veil: accuracy on originals vs |SSIM| over what the paper leaves open "
                     "(step rule and size, T, xi, F's training and layer, augmentation).")
def frontier(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 5000,
             test_size: int = 2000,
             variants: list[tuple[str, dict[str, Any]]] | None = None,
             augments: tuple[str, ...] = ("none", "sign-flip")) -> Result:
    def run() -> Result:
        name = (data or datasets_for(None)[0])
        cfg = config_for(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size)
        rows, figures = run_variants(cfg, variants or FRONTIER_VARIANTS, seed=seed, quick=quick, augments=augments)
        base = rows[0]["baseline_on_original"]
        for row in rows:
            row["meets_both_targets"] = bool(row["acc_on_original"] >= base - 0.05 and row["ssim_mean"] <= 0.05)
        points = [{"ssim_mean": r["ssim_mean"], "acc_on_original": r["acc_on_original"],
                   "label": f"{r['variant']} / {r['augment']}"} for r in rows]
        figures.insert(0, Figure("frontier: accuracy on originals vs |SSIM|", scatter_png(
            points, x="ssim_mean", y="acc_on_original", hlines={"baseline - 0.05": base - 0.05},
            vlines={"|SSIM| = 0.05": 0.05})))
        ok = [r for r in rows if r["meets_both_targets"]]
        best = max(ok or rows, key=lambda r: (r["acc_on_original"] - 4 * max(0.0, r["ssim_mean"] - 0.05)))
        summary = {"baseline_acc_original": base, "points": len(rows), "points_meeting_both": len(ok),
                   "best_acc_on_original": best["acc_on_original"], "best_ssim_mean": best["ssim_mean"]}
        return Result("veil-frontier", summary=summary, tables={f"frontier ({name})": rows},
                      notes=[f"best point: {best['variant']} with augmentation {best['augment']}"],
                      config={"seed": seed, "quick": quick, "data": name, "train_size": cfg.train_size,
                              "test_size": cfg.test_size}, figures=figures)

    return timed(run)
