"""``privis train-detector``: train the built-in scene detector, report its mAP@0.5 on held-out scenes, save it.

::

    privis train-detector --out det.pt --json det.json
    privis train-detector --scenes 500 --epochs 5 --out quick.pt

The scenes are built offline from real images (:mod:`privis.detectors.scenes`); the file holds the detector's
settings and weights (:func:`privis.detectors.scene_detector.load_scene_detector` reads it back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import JsonOpt, SeedOpt, check_paths, handle_errors, say
from privis.cli.summary import print_result
from privis.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    @app.command("train-detector")
    @handle_errors
    def train_detector_command(
        out: Annotated[Path, typer.Option("--out", help="Detector file to write (.pt).")],
        scenes: Annotated[int, typer.Option("--scenes", min=1, help="Training scenes.")] = 3000,
        test_scenes: Annotated[int, typer.Option("--test-scenes", min=1,
                                                 help="Held-out scenes (unseen objects) for mAP.")] = 500,
        size: Annotated[int, typer.Option("--size", min=32, help="Scene side in pixels (divisible by 4).")] = 64,
        epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training scenes.")] = 20,
        private: Annotated[str, typer.Option("--private", help="Comma-separated private classes.")] = "face",
        seed: SeedOpt = 0,
        json_path: JsonOpt = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    ) -> None:
        """Train the built-in scene detector, report mAP@0.5 on held-out scenes, and save it."""
        from privis.detectors.scene_detector import save_scene_detector, train_detector_on_scenes
        from privis.random import default_device

        if out.exists() and not overwrite:
            raise InvalidInputError(f"{out} exists; pass --overwrite to replace it")
        if out.exists() and not out.is_file():
            raise InvalidInputError(f"{out} is not a file")
        check_paths({"--out": out, "--json": json_path}, data=())
        private_classes = tuple(name.strip() for name in private.split(",") if name.strip())
        det, result = train_detector_on_scenes(scenes=scenes, test_scenes=test_scenes, size=size, epochs=epochs,
                                               seed=seed, private_classes=private_classes,
                                               device=default_device())
        save_scene_detector(det, out, extra={"private_classes": result.config["private_classes"],
                                             "map50": result.summary["map50"], "scenes": scenes, "size": size,
                                             "epochs": epochs})
        if json_path:
            result.save_json(json_path)
        print_result(result, [str(out)] + ([str(json_path)] if json_path else []), say)


__all__ = ["register"]
