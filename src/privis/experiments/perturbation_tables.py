"""Protective perturbation experiments: the target x auxiliary matrix (Table 2, Fig. 7-8) and timing (Table 3).

Ye et al., "Visual Privacy Protection in Mobile Image Recognition Using Protective Perturbation" (ACM MMSys
2022, doi:10.1145/3524273.3528189) evaluates 8 CIFAR-10 targets, each with the 7 other models as auxiliaries and
without an auxiliary model (Sec. 4.2), and times classifiers and generators on CPU, GPU and a phone
(Sec. 4.3.2). Here, on Fashion-MNIST (or ``--data``) with privis' own zoo:

- ``perturbation-matrix``: every zoo classifier is trained once on the same training slice. For each
  target, a generator is trained (Algorithm 1) with each other zoo model as the auxiliary, and once without
  an auxiliary model. Per run: the target's accuracy on original and protected test images (and on
  protected images quantised to 8 bits, what the client actually sends), the auxiliary's accuracy on
  protected images, the mean accuracy of the zoo models the generator never saw ("unseen"), |SSIM| and
  signed SSIM. Then a Table 2 analogue (per target: min / median / max over auxiliaries, and without one)
  and the best pair: among those within 5 points of the target's original accuracy and with auxiliary
  accuracy <= 15 %, the one with the lowest |SSIM|. An ablation on the first pair compares privis'
  default loss (``ssim_term="abs"``, ``aux_loss="complement"``) with the paper's Eq. (2)-(3) as written.
- ``perturbation-timing``: ms/image of each classifier and of the generator (widths 16 and 32) on CPU at
  batch 1 and batch 256, eager PyTorch and ONNX Runtime, at 32x32x3 (CIFAR-10's size, as in Table 3).
  Weights do not change timing, so untrained models are timed.

Budgets are small (2 shared CPU cores): by default 5,000 training images, 2,000 test images, classifiers
for 10 epochs and generators for 12 epochs (about 210 AdamW steps of 256 images) at ``width=16``;
``quick=True`` is a smoke run on scikit-learn digits.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from privis import data as pdata
from privis import metrics, models
from privis.errors import InvalidInputError
from privis.experiments import register_experiment
from privis.experiments.evaluate import EvalConfig, load_train_test
from privis.methods.perturbation import ProtectivePerturbation
from privis.report import image_grid_png, scatter_png
from privis.results import Figure, Result

#: Zoo entries of the matrix: label -> (architecture, options). Small widths keep the CPU budget.
ZOO: dict[str, tuple[str, dict[str, Any]]] = {
    "lenet5": ("lenet5", {}),
    "vgg": ("vgg", {}),
    "resnet18-w8": ("resnet18", {"width": 8}),
    "alexnet": ("alexnet", {}),
    "vit": ("vit", {}),
}
DEFAULT_TARGETS = ("lenet5", "vgg", "resnet18-w8")
DEFAULT_AUXILIARIES = ("lenet5", "vgg", "resnet18-w8")
#: Loss variants compared on the first pair: (label, extra parameters; None = the main run's defaults).
ABLATION: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("privis default (|SSIM|, complement aux term)", None),
    ("paper Eq. 2-3 (signed SSIM, -CE aux term)", {"ssim_term": "signed", "aux_loss": "ce"}),
    ("signed SSIM, complement aux term", {"ssim_term": "signed", "aux_loss": "complement"}),
)
#: The acceptance thresholds of the matrix: accuracy drop and auxiliary accuracy.
MAX_DROP = 0.05
MAX_AUX_ACC = 0.15


def _default_data() -> str:
    return "fashion-mnist" if pdata.fashion_mnist_available() else "digits"


def quantize8(images: Tensor) -> Tensor:
    """Round canonical images to ``k / 255``, as the client's 8-bit PNG encoding does."""
    return (images * 255.0).round() / 255.0


def train_zoo(labels_: Sequence[str], train: pdata.Dataset, *, epochs: int, seed: int) -> dict[str, nn.Module]:
    """Train each zoo entry once on ``train`` (Adam 1e-3, batch 128, seeded), frozen in eval mode."""
    out: dict[str, nn.Module] = {}
    k = max(train.num_classes, int(train.labels.max()) + 1)
    for i, label in enumerate(labels_):
        arch, options = ZOO[label]
        model = models.create_seeded(arch, seed + i, num_classes=k, in_channels=train.images.shape[1],
                                     image_size=(train.images.shape[-2], train.images.shape[-1]), **options)
        models.train(model, train.images, train.labels, epochs=epochs, seed=seed + i, desc=f"zoo: {label}")
        out[label] = models.freeze(model)
    return out


def run_pair(target: str, aux: str | None, zoo: dict[str, nn.Module], train: pdata.Dataset, test: pdata.Dataset,
             baseline: dict[str, float], *, params: dict[str, Any], seed: int) -> tuple[dict[str, Any], Tensor]:
    """Train one generator (target, auxiliary or None) and measure it on the test slice."""
    t0 = time.perf_counter()
    pp = ProtectivePerturbation(target_model=zoo[target], aux_model=zoo[aux] if aux else None,
                                aux_arch=None, use_aux=aux is not None, random_state=seed, **params)
    pp.fit(train.images, train.labels)
    fit_seconds = time.perf_counter() - t0
    protected = pp.transform(test.images)
    s = cast(Tensor, metrics.ssim(protected, test.images, win_size=metrics.ssim_window(*test.images.shape[-2:])))
    acc = {name: models.evaluate(model, protected, test.labels) for name, model in zoo.items()}
    unseen = [acc[n] for n in zoo if n not in (target, aux)]
    row: dict[str, Any] = {
        "target": target, "auxiliary": aux or "(none)",
        "target_acc_original": baseline[target],
        "target_acc_protected": acc[target],
        "target_acc_protected_8bit": models.evaluate(zoo[target], quantize8(protected), test.labels),
        "drop_points": 100.0 * (baseline[target] - acc[target]),
        "aux_acc_original": baseline[aux] if aux else None,
        "aux_acc_protected": acc[aux] if aux else None,
        "unseen_acc_protected_mean": statistics.fmean(unseen) if unseen else None,
        "ssim_abs_mean": float(s.abs().mean()),
        "ssim_signed_mean": float(s.mean()),
        "best_epoch": pp.history_.best_epoch,
        "fit_seconds": fit_seconds,
    }
    row["meets_criteria"] = bool(aux and row["drop_points"] <= 100 * MAX_DROP and acc[aux] <= MAX_AUX_ACC)
    return row, protected


def best_pair(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Among pairs with an auxiliary model that meet both criteria, the lowest |SSIM|; else None."""
    ok = [r for r in rows if r["meets_criteria"]]
    return min(ok, key=lambda r: r["ssim_abs_mean"]) if ok else None


def table2(rows: list[dict[str, Any]], targets: Sequence[str]) -> list[dict[str, Any]]:
    """Table 2 analogue: target accuracy on protected images, min/median/max over auxiliaries and without."""
    out = []
    for t in targets:
        with_aux = [r["target_acc_protected"] for r in rows if r["target"] == t and r["auxiliary"] != "(none)"]
        none = [r["target_acc_protected"] for r in rows if r["target"] == t and r["auxiliary"] == "(none)"]
        out.append({"target": t, "aux_min": min(with_aux) if with_aux else None,
                    "aux_median": statistics.median(with_aux) if with_aux else None,
                    "aux_max": max(with_aux) if with_aux else None, "no_auxiliary": none[0] if none else None,
                    "original": next(r["target_acc_original"] for r in rows if r["target"] == t)})
    return out


@register_experiment("perturbation-matrix", "Protective perturbation: target x auxiliary matrix (Table 2, "
                     "Fig. 7-8): target/auxiliary accuracy on protected images, |SSIM|, with and without "
                     "the auxiliary model.")
def perturbation_matrix(*, data: str | None = None, seed: int = 0, quick: bool = False,
                        targets: Sequence[str] = DEFAULT_TARGETS, auxiliaries: Sequence[str] = DEFAULT_AUXILIARIES,
                        train_size: int = 5000, test_size: int = 2000, classifier_epochs: int = 10,
                        epochs: int = 12, width: int = 16, ablation: bool = True,
                        params: dict[str, Any] | None = None) -> Result:
    t_start = time.perf_counter()
    data = data or ("digits" if quick else _default_data())
    if quick:
        targets, auxiliaries = tuple(targets)[:3], tuple(auxiliaries)[:3]
        classifier_epochs, epochs, width = 2, 1, 4
        targets = tuple(t for t in targets if t in ("lenet5", "vgg", "resnet18-w8"))
    digits = data.startswith("digits")
    cfg = EvalConfig(data=data, seed=seed, train_size=None if digits else (1000 if quick else train_size),
                     test_size=None if digits else (500 if quick else test_size))
    train, test = load_train_test(cfg)
    if quick:
        train, test = train.subset(slice(0, 600)), test.subset(slice(0, 300))
    names = list(dict.fromkeys([*targets, *auxiliaries]))
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        raise InvalidInputError(f"unknown zoo entry {unknown[0]!r}; known: {', '.join(ZOO)}")
    zoo = train_zoo(names, train, epochs=classifier_epochs, seed=seed)
    baseline = {n: models.evaluate(m, test.images, test.labels) for n, m in zoo.items()}
    gen_params = {"epochs": epochs, "width": width, **(params or {})}
    if quick:
        gen_params["batch_size"] = 128
    rows: list[dict[str, Any]] = []
    grids: dict[str, Tensor] = {"original": test.images[:6]}
    for t in targets:
        for a in [*[a for a in auxiliaries if a != t], None]:
            row, protected = run_pair(t, a, zoo, train, test, baseline, params=gen_params, seed=seed)
            rows.append(row)
            grids[f"{t} / {a or 'none'}"] = protected[:6]
    ablation_rows: list[dict[str, Any]] = []
    first = next(((t, a) for t in targets for a in auxiliaries if a != t), None)
    if ablation and first is not None:
        main_row = next(r for r in rows if (r["target"], r["auxiliary"]) == first)
        for label, extra in ABLATION:
            if extra is None:
                row = main_row
            else:
                row, _ = run_pair(*first, zoo, train, test, baseline, params={**gen_params, **extra}, seed=seed)
            ablation_rows.append({"variant": label, **{k: row[k] for k in (
                "target", "auxiliary", "target_acc_protected", "drop_points", "aux_acc_protected",
                "unseen_acc_protected_mean", "ssim_abs_mean", "ssim_signed_mean", "meets_criteria")}})
    best = best_pair(rows)
    summary: dict[str, float] = {
        "pairs": float(sum(r["auxiliary"] != "(none)" for r in rows)),
        "pairs_meeting_criteria": float(sum(r["meets_criteria"] for r in rows)),
    }
    for n, acc in baseline.items():
        summary[f"{n}.acc_original"] = acc
    if best is not None:
        summary.update({"best.target_acc_original": best["target_acc_original"],
                        "best.target_acc_protected": best["target_acc_protected"],
                        "best.drop_points": best["drop_points"],
                        "best.aux_acc_protected": best["aux_acc_protected"],
                        "best.ssim_abs_mean": best["ssim_abs_mean"]})
    no_aux = [r for r in rows if r["auxiliary"] == "(none)"]
    with_aux = [r for r in rows if r["auxiliary"] != "(none)"]
    if no_aux and with_aux:
        summary["ssim_abs_mean.with_aux"] = statistics.fmean(r["ssim_abs_mean"] for r in with_aux)
        summary["ssim_abs_mean.no_aux"] = statistics.fmean(r["ssim_abs_mean"] for r in no_aux)
    figures = [
        Figure("protected test images (columns: original, then target / auxiliary)",
               image_grid_png(grids, max_rows=6)),
        Figure("target accuracy on protected images vs |SSIM|", scatter_png(
            [{"label": f"{r['target']}/{r['auxiliary']}", "|SSIM|": r["ssim_abs_mean"],
              "target accuracy (protected)": r["target_acc_protected"]} for r in rows],
            x="|SSIM|", y="target accuracy (protected)")),
    ]
    notes = [f"Best pair: {best['target']} / {best['auxiliary']}" if best else
             "No pair met both criteria (drop <= 5 points and auxiliary accuracy <= 15 %).",
             "unseen_acc_protected_mean: mean accuracy on protected images of the zoo models that were neither "
             "the target nor the auxiliary of that generator (a transfer check the paper does not make).",
             "target_acc_protected_8bit: after rounding to 8-bit PNG values, as privis client sends them."]
    return Result(
        "perturbation-matrix", summary=summary,
        tables={"pairs (Fig. 7-8)": rows, "Table 2 (target accuracy on protected images)": table2(rows, targets),
                **({"ablation (first pair)": ablation_rows} if ablation_rows else {})},
        config={"data": data, "train": train.name, "test": test.name, "seed": seed, "quick": quick,
                "targets": list(targets), "auxiliaries": list(auxiliaries), "classifier_epochs": classifier_epochs,
                "generator": gen_params, "zoo": {n: ZOO[n] for n in names}},
        notes=notes, figures=figures, seconds=time.perf_counter() - t_start)


# --------------------------------------------------------------------------------------------- timing


def time_call(fn: Callable[[], Any], *, min_repeats: int = 3, max_repeats: int = 50, budget_s: float = 5.0) -> float:
    """Median seconds of ``fn()`` after one warm-up call: at least ``min_repeats`` runs, then more until
    ``budget_s`` is spent or ``max_repeats`` runs are done."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_model(model: nn.Module, shape: tuple[int, int, int], batches: Sequence[int], *, onnx_dir: Path,
               name: str, budget_s: float, dynamic_size: bool) -> list[dict[str, Any]]:
    """ms/image of ``model`` at each batch size, eager PyTorch (no grad) and ONNX Runtime."""
    from privis.models.export import export_onnx, onnx_session, run_onnx

    model.eval()
    inputs = torch.Generator().manual_seed(0)  # the values do not matter to the timing; the global RNG is left alone
    try:
        path = export_onnx(model, onnx_dir / f"{name}.onnx", torch.rand(1, *shape, generator=inputs),
                           dynamic_size=dynamic_size)
        session = onnx_session(path)
        onnx_error = ""
    except InvalidInputError as exc:  # e.g. adaptive pooling to a size that does not divide the input
        session, onnx_error = None, str(exc)
    rows = []
    for b in batches:
        x = torch.rand(b, *shape, generator=inputs)

        def eager(x: Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        def ort(x: Tensor = x) -> None:
            run_onnx(session, x)

        rows.append({"model": name, "batch": b,
                     "eager_ms_per_image": 1000 * time_call(eager, budget_s=budget_s) / b,
                     "onnxruntime_ms_per_image": (1000 * time_call(ort, budget_s=budget_s) / b
                                                  if session is not None else None),
                     "onnx_export_error": onnx_error[:200]})
    return rows


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


@register_experiment("perturbation-timing", "Protective perturbation Table 3 analogue: classifier and generator "
                     "ms/image on CPU at batch 1 and 256, eager PyTorch and ONNX Runtime.")
def perturbation_timing(*, data: str | None = None, seed: int = 0, quick: bool = False,
                        shape: tuple[int, int, int] = (3, 32, 32), batches: Sequence[int] = (1, 256),
                        classifiers: Sequence[str] = ("lenet5", "vgg", "resnet18-w8", "alexnet", "vit"),
                        widths: Sequence[int] = (16, 32), budget_s: float = 5.0) -> Result:
    """``data`` is accepted for the common experiment signature and unused: timing needs no data."""
    t_start = time.perf_counter()
    if quick:
        shape, batches, classifiers, widths, budget_s = (1, 28, 28), (1, 8), ("lenet5",), (4,), 0.2
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="privis-timing-") as tmp:
        for label in classifiers:
            arch, options = ZOO[label]
            model = models.create_seeded(arch, seed, num_classes=10, in_channels=shape[0], image_size=shape[1:],
                                         **options)
            rows += [{"kind": "classifier", **r} for r in time_model(
                model, shape, batches, onnx_dir=Path(tmp), name=label, budget_s=budget_s, dynamic_size=False)]
        for w in widths:
            g = models.create_seeded("unet-perturbation", seed, in_channels=shape[0], width=w)
            params = sum(p.numel() for p in g.parameters())
            rows += [{"kind": f"generator ({params / 1e6:.3f} M params)", **r} for r in time_model(
                g, shape, batches, onnx_dir=Path(tmp), name=f"unet-w{w}", budget_s=budget_s, dynamic_size=True)]
    summary = {}
    for r in rows:
        key = f"{r['model']}.b{r['batch']}"
        summary[f"{key}.eager_ms"] = r["eager_ms_per_image"]
        if r["onnxruntime_ms_per_image"] is not None:
            summary[f"{key}.onnxruntime_ms"] = r["onnxruntime_ms_per_image"]
    return Result("perturbation-timing", summary=summary, tables={"Table 3 (CPU ms/image)": rows},
                  config={"shape": list(shape), "batches": list(batches), "threads": torch.get_num_threads(),
                          "load_average_before": load_before, "load_average_after": load_average(),
                          "quick": quick},
                  notes=["Median over repeated calls after one warm-up; untrained weights (timing does not "
                         "depend on them). The machine is shared: see the load averages in the config."],
                  seconds=time.perf_counter() - t_start)
