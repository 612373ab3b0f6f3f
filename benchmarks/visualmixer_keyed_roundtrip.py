"""VisualMixer's keyed mode through files: protect -> PNG folder -> unprotect, and keyless runs against each other.

For each dataset, protects it with a fresh key into a folder (the engine, PNG), restores it with
:func:`privis.engine.restore.unprotect_folder` (which verifies every item against its tag), and counts the
restored PNGs whose pixels equal the originals at 8 bits, ``round(255 x)``, exactly; also the images the
shuffle changed, and the images on which two keyless runs (OS entropy) differ. Datasets: Fashion-MNIST's
test set (when installed), scikit-learn digits' test split (sixteenths, finer than 8 bits), lfw-subset
(float faces), and two generated folders: 16-bit grey PNGs (30x22) and RGB PNGs with odd sides (31x23).

``--permutations counter`` protects with the counter scheme (recorded in the manifest, from which the restore
rebuilds it) instead of the default table scheme.

Run:  .venv/bin/python benchmarks/visualmixer_keyed_roundtrip.py [--permutations table|counter]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from privis import data
from privis.engine import protect
from privis.engine.restore import unprotect_folder
from privis.methods.visualmixer import VisualMixer, generate_key


def count(mask: Tensor) -> int:
    """Images (first axis) for which ``mask`` holds at any pixel."""
    return int(mask.flatten(1).any(1).sum())


def chw(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def make_folders(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    grey, rgb = tmp / "grey16", tmp / "rgb"
    for i in range(200):
        (grey / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (rgb / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        ramp = np.add.outer(np.arange(22), np.arange(30)) * 1000 + rng.integers(0, 14000, (22, 30))
        Image.fromarray(ramp.astype(np.uint16)).save(grey / f"c{i % 2}" / f"g{i:03d}.png")
        Image.fromarray(rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)).save(rgb / f"c{i % 2}" / f"r{i:03d}.png")
    return {"grey16": grey, "rgb": rgb}


def expected_for(spec: str, folder: Path | None) -> Callable[[dict], np.ndarray]:
    """Each item's original at 8 bits, by its id (an index for built-in data, a relative path for folders)."""
    if folder is None:
        pixels = np.rint(data.load(spec).images.numpy() * 255).astype(np.uint8)
        return lambda item: pixels[int(item["id"])]

    def from_file(item: dict) -> np.ndarray:
        raw = chw(folder / item["id"])
        return np.rint(raw * (255 / 65535)).astype(np.uint8) if raw.dtype == np.uint16 else raw

    return from_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", choices=["auto", "table", "counter"], default="auto")
    scheme = parser.parse_args().permutations
    warnings.simplefilter("ignore", UserWarning)  # "stored and restored at 8 bits": that is what is measured
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folders = make_folders(tmp)
        cases: list[tuple[str, Path | None]] = [("fashion-mnist:test", None)] if data.fashion_mnist_available() else []
        cases += [("digits:test", None), ("lfw-subset", None)] + [(f"folder:{p}", p) for p in folders.values()]
        for k, (spec, folder) in enumerate(cases):
            key = generate_key(tmp / f"owner{k}.key")
            prot, rest = tmp / f"prot{k}", tmp / f"rest{k}"
            t0 = time.perf_counter()
            protect(VisualMixer(key_file=str(key), permutations=scheme), spec, prot, batch_size=1024)
            t1 = time.perf_counter()
            n = unprotect_folder(prot, rest, key, batch_size=1024)
            t2 = time.perf_counter()
            expected = expected_for(spec, folder)
            items = json.loads((prot / "manifest.json").read_text())["items"]
            exact = sum(np.array_equal(chw(rest / it["path"]), expected(it)) for it in items)
            changed = sum(not np.array_equal(chw(prot / it["path"]), expected(it)) for it in items)
            x = data.load(spec).images
            keyless = [VisualMixer(permutations=scheme).fit(x).transform(x) for _ in range(2)]
            print(f"{spec.replace(str(tmp) + '/', '')}: {exact}/{n} restored bit-exact at 8 bits through PNG files, "
                  f"{changed} changed by the shuffle, keyless runs differ on {count(keyless[0] != keyless[1])}/"
                  f"{len(x)}; protect {t1 - t0:.1f} s, unprotect (verify + write) {t2 - t1:.1f} s")


if __name__ == "__main__":
    main()
