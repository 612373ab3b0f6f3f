"""VisualMixer's keyed mode: protect -> inverse on whole test sets, and keyless runs against each other.

Counts the images that come back bit-exact with the owner's key, the images the shuffle changed, and the
images on which two keyless runs (OS entropy) differ. Fashion-MNIST's test set (when installed) and
scikit-learn digits' test split.

Run:  .venv/bin/python benchmarks/visualmixer_keyed_roundtrip.py
"""

from __future__ import annotations

import tempfile
import time

from torch import Tensor

from privis import data
from privis.methods.visualmixer import VisualMixer, generate_key


def count(mask: Tensor) -> int:
    """Images (first axis) for which ``mask`` holds at any pixel."""
    return int(mask.flatten(1).any(1).sum())


def main() -> None:
    specs = (["fashion-mnist:test"] if data.fashion_mnist_available() else []) + ["digits:test"]
    for spec in specs:
        x = data.load(spec).images
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            mixer = VisualMixer(key_file=str(generate_key(f"{tmp}/owner.key"))).fit(x)
            protected = mixer.transform(x)
            restored = mixer.inverse_transform(protected)
        keyless = [VisualMixer().fit(x).transform(x) for _ in range(2)]
        print(f"{spec}: {len(x) - count(restored != x)}/{len(x)} bit-exact after keyed protect -> inverse, "
              f"{count(protected != x)} changed by the shuffle, keyless runs differ on "
              f"{count(keyless[0] != keyless[1])}/{len(x)}; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
