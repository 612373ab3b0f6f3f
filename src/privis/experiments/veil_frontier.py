"""Veil: the accuracy-vs-|SSIM| frontier over what the paper leaves open (step rule and size, ``T``, ``xi``,
``F``'s training and layer, the service model's augmentation).

Pang, Ma, Li, Zhou & Yao, "Veil Privacy on Visual Data: Concealing Privacy for Humans, Unveiling for DNNs",
ECCV 2024, Section 5 targets both a model trained on veiled data that keeps its accuracy on originals and veiled
images far from the originals (|SSIM| near 0); each point here is one setting, run as Table 5's variants are
(:func:`privis.experiments.veil_tables.run_variants`, same data, checkpoints and options).
"""

from __future__ import annotations

from typing import Any

from privis.experiments import register_experiment
from privis.experiments.veil_tables import datasets_for, prepare, run_variants, timed
from privis.report import scatter_png
from privis.results import Figure, Result

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
             augments: tuple[str, ...] = ("none", "sign-flip"), device: str | None = None,
             checkpoint_dir: str | None = None) -> Result:
    def run() -> Result:
        name = (data or datasets_for(None)[0])
        setup = prepare(name, seed=seed, quick=quick, train_size=train_size, test_size=test_size, arch="lenet5",
                        device=device, checkpoint_dir=checkpoint_dir)
        rows, figures = run_variants(setup, variants or FRONTIER_VARIANTS, seed=seed, quick=quick,
                                     augments=tuple(augments))
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
                      config={"seed": seed, "quick": quick, "data": name, "train_size": setup.cfg.train_size,
                              "test_size": setup.cfg.test_size,
                              "checkpoint_key": setup.store.key if setup.store.root is not None else None},
                      figures=figures)

    return timed(run)
