"""``privis serve`` starts honestly (the model checked and the port bound before "serving on" is printed),
and every command that takes a checkpoint refuses one of the wrong kind (classifier vs generator)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from privis import models
from privis.cli.main import app
from privis.errors import InvalidInputError
from privis.serve.app import load_served_model
from privis.serve.client import protect_images

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    torch.manual_seed(0)
    models.save_checkpoint(models.create("lenet5", num_classes=10, in_channels=1, image_size=8), root / "clf.pt")
    models.save_checkpoint(models.create("unet-perturbation", in_channels=1, image_size=8, width=2), root / "gen.pt")
    (root / "a.png").write_bytes(b"")  # never read: the kind is refused first
    return {"classifier": root / "clf.pt", "generator": root / "gen.pt", "image": root / "a.png"}


def test_serve_on_a_port_in_use_is_one_line_and_never_says_serving(checkpoints):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([str(Path(sys.executable).with_name("privis")), "serve", "--model",
                               str(checkpoints["classifier"]), "--port", str(port)], capture_output=True, text=True,
                              env={**os.environ, "PRIVIS_NO_PROGRESS": "1"}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "serving" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"privis: error: cannot serve on 127.0.0.1:{port}: the port is in use by another process; choose another "
        "--port"]


def test_serve_refuses_a_generator_checkpoint_by_its_kind(checkpoints):
    result = runner.invoke(app, ["serve", "--model", str(checkpoints["generator"]), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "serving" not in result.output
    assert f"{checkpoints['generator']}: a generator checkpoint (unet-perturbation), not a classifier" in result.output
    with pytest.raises(InvalidInputError, match="not a classifier"):
        load_served_model(checkpoints["generator"])


@pytest.mark.parametrize("args", [
    ["client", "--generator", "{classifier}", "{image}"],
    ["export", "--generator", "{classifier}", "--onnx", "{out}"],
    ["evaluate", "perturbation", "--data", "digits", "--param", "generator_model={classifier}"],
    ["evaluate", "veil", "--data", "digits", "--param", "local_model={generator}"],
    ["train-generator", "--data", "digits", "--out", "{out}", "--target", "{generator}"],
])
def test_commands_refuse_a_checkpoint_of_the_wrong_kind(checkpoints, tmp_path, args):
    paths = {**{k: str(v) for k, v in checkpoints.items()}, "out": str(tmp_path / "o.bin")}
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    wrong = "classifier" if "{classifier}" in " ".join(args) else "generator"
    right = "generator" if wrong == "classifier" else "classifier"
    assert f"a {wrong} checkpoint" in result.output and f"not a {right}" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o.bin").exists()


def test_the_client_refuses_a_model_that_does_not_return_images():
    classifier = models.create("lenet5", num_classes=10, in_channels=1, image_size=8).eval()
    with pytest.raises(InvalidInputError, match=r"maps images \(2, 1, 8, 8\) to \(2, 10\)"):
        protect_images([torch.rand(1, 8, 8), torch.rand(1, 8, 8)], classifier)
