"""``privis demo``: Veil Privacy end to end on the default data, in a few minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

from privis import data as pdata
from privis.experiments import register_experiment
from privis.experiments.evaluate import EvalConfig, evaluate
from privis.report import save_report
from privis.results import Result

DEMO_TRAIN = 5000
DEMO_TEST = 2000


def default_dataset() -> str:
    """Fashion-MNIST when it is on this machine, else scikit-learn digits (always present)."""
    return "fashion-mnist" if pdata.fashion_mnist_available() else "digits"


@register_experiment("demo", "Veil Privacy end to end on the default data (the main job).")
def demo(*, data: str | None = None, seed: int = 0, quick: bool = False) -> Result:
    """Train the local model, veil a training slice, train on it, test both models on original and veiled data."""
    data = data or default_dataset()
    digits = data.startswith("digits")
    cfg = EvalConfig(
        data=data,
        train_size=None if digits else (1000 if quick else DEMO_TRAIN),
        test_size=None if digits else (500 if quick else DEMO_TEST),
        epochs=None,
        seed=seed,
        params={"random_state": seed, **({"steps": 50} if quick else {})},
    )
    result = evaluate("veil", cfg)
    result.name = "demo"
    result.notes.insert(0, f"Veil Privacy on {data}: the baseline model is trained on originals, the veiled "
                           "model on veiled images only; both are tested on original and on veiled test images.")
    return result


def run_demo(out: Path, *, seed: int = 0, data: str | None = None, quick: bool = False) -> Result:
    """Run :func:`demo` and write ``out/results.json`` and ``out/report.html``."""
    result = demo(data=data, seed=seed, quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    result.save_json(out / "results.json")
    save_report(result, out / "report.html")
    return result
