"""``privis demo``: every registered method side by side on the default data, in a few minutes on 2 cores.

Protocol (the leaderboard's, :mod:`privis.experiments.leaderboard`, with small budgets):

1. The default data (Fashion-MNIST, scikit-learn digits when it is absent) is cut into the owner's training
   slice, a disjoint auxiliary slice the attacker holds, and the test slice; a baseline model is trained on
   the owner's originals.
2. Every method in :func:`privis.methods.available` (a method joins by registering) protects the same
   slices with small demo parameters (:data:`DEMO_METHOD_PARAMS`); a service model is trained on its output
   and tested where the method's ``deployment`` tag says (original test images for Veil, protected ones
   for the others): that accuracy is the utility the method keeps.
3. Two fast restoration attacks (:data:`DEMO_ATTACKS`: denoising filters and a small learned inversion)
   try to undo each protection; the leakage is the worst mean |SSIM| of a recovery against the originals.
4. The report shows an image grid (original | each method | its best recovery), a table, and the
   privacy-utility plot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import Tensor

from privis import attacks, methods, models
from privis import data as pdata
from privis.attacks import AttackContext, NotApplicableError
from privis.data.checks import check_int
from privis.errors import InvalidInputError, PrivisError
from privis.experiments import register_experiment
from privis.experiments.leaderboard import QUICK_ATTACK_PARAMS, QUICK_METHOD_PARAMS, prepare, protect_for_attack
from privis.progress import progress
from privis.report import labelled_grid_png, save_report, scatter_png, stack_png
from privis.results import Figure, Result

#: (owner's training slice, test slice, attacker's auxiliary slice, attacked test images, model epochs) per
#: ``--size``; digits is capped at its 1,347 training and 450 test images.
DEMO_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "small": (600, 300, 300, 100, 8),
    "medium": (2000, 500, 1000, 200, 15),
    "full": (5000, 2000, 3000, 500, 20),
}
DEFAULT_SIZE = "medium"

#: Small per-method parameters for speed (every other method runs with its defaults).
DEMO_METHOD_PARAMS: dict[str, dict[str, Any]] = {**QUICK_METHOD_PARAMS, "veil": {"steps": 100, "local_epochs": 3}}

#: The fast restoration attacks the demo runs, with their budgets.
DEMO_ATTACKS: dict[str, dict[str, Any]] = {
    "filters": QUICK_ATTACK_PARAMS["filters"],
    "learned-inversion": {"epochs": 3, "width": 8, "max_aux": 1000},
}
#: ``quick=True`` (a smoke run): the ``small`` slices, the leaderboard's quick method parameters and
#: attack budgets, and this many training epochs.
QUICK_EPOCHS = 3

#: Test images shown per method in the grid.
GRID_ROWS = 4


def default_dataset() -> str:
    """Fashion-MNIST when it is on this machine, else scikit-learn digits (always present)."""
    return "fashion-mnist" if pdata.fashion_mnist_available() else "digits"


def _sizes(size: str, train_size: int | None, test_size: int | None) -> tuple[int, int, int, int, int]:
    if size not in DEMO_SIZES:
        raise InvalidInputError(f"--size must be one of {', '.join(DEMO_SIZES)}, got {size!r}")
    n_train, n_test, n_aux, n_attack, epochs = DEMO_SIZES[size]
    hint = " (leave it out for the --size default)"
    n_train = n_train if train_size is None else check_int(train_size, "--train-size", hint=hint)
    n_test = n_test if test_size is None else check_int(test_size, "--test-size", hint=hint)
    return n_train, n_test, n_aux, min(n_attack, n_test), epochs


def _best_recovery(victims: Tensor, protected: Tensor, context: AttackContext, budgets: dict[str, dict[str, Any]],
                   ) -> tuple[float | None, str, Tensor | None]:
    """Worst case for the defender over the attacks in ``budgets`` (name -> parameters): (mean |SSIM|, attack,
    recovered images); ``(None, "", None)`` when none applies."""
    best: tuple[float | None, str, Tensor | None] = (None, "", None)
    for name, params in budgets.items():
        try:
            outcome = attacks.create(name, **params).run(victims, protected, context=context)
        except NotApplicableError:
            continue
        score = outcome.scores.get("ssim_mean")
        if outcome.recovered is not None and score is not None and (best[0] is None or score > best[0]):
            best = (score, f"{name} ({outcome.variant})", outcome.recovered)
    return best


def _beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` leaks no more and keeps no less utility than ``b``, and is strictly better on one of the two."""
    return (a["leakage"] <= b["leakage"] and a["utility"] >= b["utility"]
            and (a["leakage"] < b["leakage"] or a["utility"] > b["utility"]))


@register_experiment("demo", "Every method side by side: what each keeps (utility) and leaks (fast attacks).")
def demo(*, data: str | None = None, seed: int = 0, quick: bool = False, size: str = DEFAULT_SIZE,
         train_size: int | None = None, test_size: int | None = None) -> Result:
    """Protect the same slice with every registered method; measure utility and leakage (module notes).

    Args:
        data: dataset name (default Fashion-MNIST, digits when absent).
        seed: the defender's seed (models, protectors); the attacker's differs.
        quick: the ``small`` size (a smoke run; the report says so).
        size: ``small``, ``medium`` or ``full`` (:data:`DEMO_SIZES`).
        train_size, test_size: override the size's owner's training slice and test slice (ints >= 1).

    Returns:
        A :class:`~privis.results.Result` with the table ``methods`` (one row per method: deployment,
        utility, leakage_ssim and the attack behind it, images_per_second, and a note with the error of a
        method that failed on this data, whose figures are then empty), summary keys
        ``<method>.utility`` and ``<method>.leakage_ssim``, and the figures grid and privacy-utility plot.

    Raises:
        InvalidInputError: an unknown size, or too little data for the slices.
    """
    t_start = time.perf_counter()
    n_train, n_test, n_aux, n_attack, epochs = _sizes("small" if quick else size, train_size, test_size)
    epochs = QUICK_EPOCHS if quick else epochs
    method_params = QUICK_METHOD_PARAMS if quick else DEMO_METHOD_PARAMS
    budgets = {name: {**params, **QUICK_ATTACK_PARAMS.get(name, {})} if quick else params
               for name, params in DEMO_ATTACKS.items()}
    setup = prepare(data or default_dataset(), seed=seed, quick=False, train_size=n_train, test_size=n_test,
                    aux_size=n_aux, attack_size=n_attack, epochs=epochs)
    victims, _ = setup.victims()
    shown = victims[:GRID_ROWS]
    protected_cols: dict[str, Tensor] = {}
    recovered_cols: dict[str, Tensor] = {}
    rows: list[dict[str, Any]] = []
    names = [n for n, cls in methods.available().items() if cls.task == "classification"]
    for name in progress(names, total=len(names), desc="demo: methods", unit="method"):
        try:
            protected = protect_for_attack(setup, name, dict(method_params.get(name, {})))
        except PrivisError as exc:  # recorded, not hidden: the table says the method failed and why
            rows.append({"method": name, "deployment": methods.available()[name].deployment, "utility": None,
                         "leakage_ssim": None, "leakage_attack": "", "images_per_second": None, "note": str(exc)})
            continue
        deployment = protected.protector.deployment
        attacked = protected.test_images[:setup.attack_size]
        leakage, attack, recovered = _best_recovery(victims, attacked, protected.context, budgets)
        protected_cols[name] = attacked[:GRID_ROWS]
        if recovered is not None:
            recovered_cols[f"{name}: recovered"] = recovered[:GRID_ROWS]
        rows.append({"method": name, "deployment": deployment,
                     "utility": protected.util[f"protected_acc_{deployment}"], "leakage_ssim": leakage,
                     "leakage_attack": attack, "images_per_second": protected.speed["images_per_second"],
                     "note": ""})
    baseline = models.evaluate(setup.baseline, setup.test.images, setup.test.labels)
    points = [{"method": r["method"], "leakage": r["leakage_ssim"], "utility": r["utility"]}
              for r in rows if r["leakage_ssim"] is not None and r["utility"] is not None]
    plot = scatter_png(points, x="leakage", y="utility", label="method",
                       hlines={"baseline (originals)": baseline},
                       xlabel="leakage: worst mean |SSIM| of a recovery (← more private)",
                       ylabel="utility: service-model accuracy (↑)", title="privacy vs utility")
    grid = labelled_grid_png({"original": shown, **protected_cols, **recovered_cols})
    front = [p["method"] for p in points if not any(_beats(q, p) for q in points)]
    meaning = ("Up and to the left is better: a method there keeps accuracy while the fast attacks recover "
               "little of the images; down and to the right, it loses accuracy and still leaks. "
               f"No other method beats {', '.join(front) or 'any'} on both axes in this run.")
    summary: dict[str, float] = {"baseline_acc_original": baseline}
    for r in rows:
        summary.update({f"{r['method']}.{key}": r[key] for key in ("utility", "leakage_ssim") if r[key] is not None})
    summary["methods"] = len(rows)
    result = Result(
        "demo", summary=summary, tables={"methods": rows},
        config={"data": setup.data, "seed": seed, "quick": quick, "size": "small" if quick else size,
                "train_size": len(setup.train), "test_size": len(setup.test), "aux_size": len(setup.aux),
                "attack_size": setup.attack_size, "epochs": epochs, "method_params": method_params,
                "attacks": budgets},
        notes=[f"{setup.data}: {len(setup.train)} training images protected by each of {len(rows)} methods; "
               f"utility is the accuracy on {len(setup.test)} test images of a model trained on the protected "
               "images, tested on original images (deployment 'original', Veil) or protected ones; leakage is "
               f"the best of {', '.join(budgets)} on {setup.attack_size} protected test images.",
               "Small demo budgets: the attacks are weaker than the leaderboard's (privis experiment "
               "leaderboard), so leakage here is a lower bound."],
        figures=[Figure("original | each method | its best recovery", grid,
                        f"rows: {shown.shape[0]} test images; columns: the original, each method's protected "
                        "image, then each method's best recovery by the attacks"),
                 Figure("privacy vs utility", plot, meaning)],
        headline=f"{len(rows)} methods protect the same {setup.data} images: the accuracy each keeps and what "
                 "fast attacks recover",
    )
    result.seconds = time.perf_counter() - t_start
    return result


def demo_png(result: Result) -> bytes:
    """The demo's grid above its privacy-utility plot as one PNG (the picture the README shows)."""
    return stack_png([f.png for f in result.figures[:2]])


def run_demo(out: Path, *, seed: int = 0, data: str | None = None, quick: bool = False, size: str = DEFAULT_SIZE,
             train_size: int | None = None, test_size: int | None = None) -> Result:
    """Run :func:`demo` and write ``out/results.json`` and ``out/report.html``."""
    result = demo(data=data, seed=seed, quick=quick, size=size, train_size=train_size, test_size=test_size)
    out.mkdir(parents=True, exist_ok=True)
    result.save_json(out / "results.json")
    save_report(result, out / "report.html")
    return result
