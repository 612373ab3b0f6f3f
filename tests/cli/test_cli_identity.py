"""privis identity verify-dlib: the torch port against dlib on real chips, through the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from privis.cli.main import app

pytest.importorskip("dlib")


def test_verify_dlib_writes_the_summary(tmp_path):
    out = tmp_path / "verify.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, ["identity", "verify-dlib", "--faces", "3", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())["summary"]
    assert summary["faces"] == 3 and summary["pairs"] == 3
    assert summary["max_abs_diff"] <= 1e-4 and summary["decisions_agree"] == 1.0
    assert summary["descriptors_per_s_torch"] > 0 and summary["descriptors_per_s_dlib"] > 0
    assert summary["chip_max_grey_diff"] <= 1.0
    assert "max_abs_diff" in result.output


def test_verify_dlib_refuses_too_few_faces():
    result = CliRunner().invoke(app, ["identity", "verify-dlib", "--faces", "1"])
    assert result.exit_code == 2
