"""The privis command in shell pipes: files are written before anything is printed, and a reader that
stops early (``| head -1``) ends the command normally (exit 0, no traceback). Exit codes follow one rule."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privis.cli.main import app

PRIVIS = str(Path(sys.executable).with_name("privis"))


def piped(args: list[str], reader: str, cwd: Path) -> subprocess.CompletedProcess:
    """``privis ARGS | READER`` in bash with ``pipefail``: the exit status is privis' unless the reader fails."""
    command = f"{shlex.quote(PRIVIS)} {shlex.join(args)} | {reader}"
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PRIVIS_NO_PROGRESS": "1"}, timeout=300)


# `true` reads nothing and exits at once: the command's first line already meets a closed pipe.
@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_evaluate_writes_its_json_and_ends_normally_when_the_reader_stops(tmp_path, reader):
    proc = piped(["evaluate", "blur", "--data", "digits", "--train-size", "200", "--test-size", "100",
                  "--epochs", "1", "--json", "e.json", "--report", "e.html"], reader, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr and proc.stderr.strip() == ""
    summary = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert 0.0 <= summary["baseline_acc_original"] <= 1.0
    assert (tmp_path / "e.html").read_text().startswith("<!doctype html>")
    if reader == "head -1":
        assert proc.stdout.startswith("evaluate-blur")


@pytest.mark.parametrize("args", [["methods"], ["--help"], ["evaluate", "--help"]])
def test_listings_and_help_end_normally_in_a_closed_pipe(tmp_path, args):
    proc = piped(args, "true", tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_protect_finishes_its_work_when_the_reader_has_gone(tmp_path):
    out = tmp_path / "out"
    proc = piped(["protect", "blur", "--data", "digits:test[:20]", "--out", str(out)], "true", tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["items"]) == 20


def test_training_that_diverges_is_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", "digits:train[:200]", "--epochs", "3", "--lr", "1e12",
                                      "--optimizer", "sgd", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("privis: error: numerical failure: training diverged")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "m.pt").exists()


def test_protect_works_with_stderr_closed(tmp_path):
    """``2>&-`` (a daemon, a cron job) leaves Python without sys.stderr: the run still writes everything."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PRIVIS_NO_PROGRESS", "CI")}
    command = f"{shlex.quote(PRIVIS)} protect blur --data 'digits:test[:5]' --out {shlex.quote(str(out))} 2>&-"
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert len(json.loads((out / "manifest.json").read_text())["items"]) == 5
