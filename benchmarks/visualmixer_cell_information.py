"""How much class information survives VisualMixer's cell shuffle: an RBF SVM on sorted cells.

A VisualMixer image keeps each region's pixel multiset and nothing of the order inside it. Sorting every
smallest-window cell (:func:`privis.methods.visualmixer.sort_within_windows`) keeps exactly the cells'
multisets; an SVM on those features, against the same SVM on the originals, shows what a model *could*
learn from shuffled data before any CNN has to learn the invariance. Default: scikit-learn digits (8x8,
1,347 train / 450 test) with VisualMixer's default windows (2x2 after the size cap).

Run:  .venv/bin/python benchmarks/visualmixer_cell_information.py [--data digits] [--param KEY=VALUE ...]
      [--json benchmarks/results/visualmixer_cell_information.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.svm import SVC
from torch import Tensor

from privis.cli.main import parse_params
from privis.experiments.evaluate import EvalConfig, load_train_test
from privis.methods.visualmixer import VisualMixer, sort_within_windows


def svm_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, c: float) -> float:
    """Test accuracy of an RBF SVM fitted on the flattened training images."""
    model = SVC(C=c).fit(train_x.reshape(len(train_y), -1).numpy(), train_y.numpy())
    return float((model.predict(test_x.reshape(len(test_y), -1).numpy()) == test_y.numpy()).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--param", action="append", default=[], help="VisualMixer parameter KEY=VALUE")
    ap.add_argument("--c", type=float, default=10.0, help="SVM C")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    train, test = load_train_test(EvalConfig(data=args.data, train_size=args.train_size, test_size=args.test_size))
    params = parse_params(args.param)
    vm = VisualMixer(random_state=0, **params).fit(train.images)
    window = vm.levels_[-1]
    vim_train, vim_test = vm.transform(train.images), vm.transform(test.images)
    out = {
        "data": args.data, "train": len(train), "test": len(test), "windows": list(vm.levels_),
        "params": params, "svm_c": args.c,
        "svm_original": svm_accuracy(train.images, train.labels, test.images, test.labels, args.c),
        "svm_vim_raw": svm_accuracy(vim_train, train.labels, vim_test, test.labels, args.c),
        "svm_vim_sorted_cells": svm_accuracy(sort_within_windows(vim_train, window), train.labels,
                                             sort_within_windows(vim_test, window), test.labels, args.c),
    }
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
