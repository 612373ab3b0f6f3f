"""Every ``Examples:`` section under ``src/privis`` runs as written (doctest), and the entry points users
call first have one."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import privis
import privis.cli.main  # noqa: F401  (first: the command modules register themselves on its app)

MODULES = sorted(info.name for info in pkgutil.walk_packages(privis.__path__, "privis."))

#: What a new user calls first: each must show a runnable example.
ENTRY_POINTS = [
    "privis", "privis.data", "privis.data.spec.parse_spec", "privis.data.dataset.Dataset",
    "privis.engine.run.protect", "privis.results.Result",
    "privis.metrics.ssim.ssim", "privis.metrics.ssim.abs_ssim", "privis.metrics.ssim.ssim_map",
    "privis.metrics.distortion.mse", "privis.metrics.distortion.psnr", "privis.metrics.distortion.l2",
    "privis.metrics.distortion.ald", "privis.metrics.vfe.vfe", "privis.metrics.vfe.vfe_map",
    "privis.metrics.vfe.vfe_channel", "privis.models.training.train", "privis.models.training.predict",
    "privis.models.training.evaluate", "privis.methods.baselines.GaussianBlur",
    "privis.methods.baselines.Pixelate", "privis.methods.baselines.GaussianNoise",
    "privis.methods.instahide.InstaHide", "privis.methods.veil.Veil",
    "privis.methods.perturbation.ProtectivePerturbation", "privis.attacks.filters.Filters",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_module_pass(name, capsys):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with torch.random.fork_rng():  # examples that build models draw from the global RNG: leave it as it was
        for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
            runner.run(test)
    report = capsys.readouterr().out
    assert runner.failures == 0, report


@pytest.mark.parametrize("dotted", ENTRY_POINTS)
def test_entry_point_has_a_runnable_example(dotted):
    tests = doctest.DocTestFinder(recurse=False).find(pkgutil.resolve_name(dotted), dotted)
    assert any(">>>" in (t.docstring or "") and t.examples for t in tests), f"{dotted} has no Examples section"
