"""The client (protect locally, send only protected images) and the serve/client/export commands."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from privis import models
from privis.cli.main import app as cli
from privis.errors import InvalidInputError
from privis.models.export import export_onnx
from privis.serve.client import load_generator, png_bytes, run_client

SIZE = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, base: str, timeout: float = 90) -> None:
    """Wait until the ``privis serve`` process ``proc`` answers ``/v1/health`` at ``base``; fail if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A served classifier, a generator checkpoint and ONNX file, and four 8x8 grey PNG files."""
    import uvicorn

    from privis.serve.app import create_app

    root = tmp_path_factory.mktemp("client")
    torch.manual_seed(0)
    classifier = models.create("lenet5", num_classes=10, in_channels=1, image_size=SIZE).eval()
    models.save_checkpoint(classifier, root / "model.pt")
    generator = models.create("unet-perturbation", in_channels=1, width=4).eval()
    with torch.no_grad():
        generator.outc.bias.fill_(0.3)  # a visible perturbation
    models.save_checkpoint(generator, root / "gen.pt")
    export_onnx(generator, root / "gen.onnx", torch.rand(1, 1, SIZE, SIZE))
    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        path = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(path)
        files.append(path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(root / "model.pt"), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield {"root": root, "url": f"http://127.0.0.1:{port}", "classifier": classifier, "generator": generator,
           "files": files}
    server.should_exit = True
    thread.join(timeout=10)


def _decode(png: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32) / 255.0)[None]


def test_client_sends_only_protected_images_and_gets_the_servers_predictions(setup):
    results = run_client(setup["root"] / "gen.pt", setup["url"], setup["files"], batch_size=3)
    assert [r.file for r in results] == [str(f) for f in setup["files"]]
    for r, f in zip(results, setup["files"], strict=True):
        original = Path(f).read_bytes()
        assert r.sent_png != original
        sent = _decode(r.sent_png)
        x = _decode(original)[None]
        with torch.no_grad():
            expected = setup["generator"](x)[0]
        # what was sent is the generator's output (8-bit), not the original
        assert float((sent - expected).abs().max()) <= 0.5 / 255 + 1e-6
        assert float((sent - x[0]).abs().mean()) > 0.1
        with torch.no_grad():
            probs = torch.softmax(setup["classifier"](sent[None]), 1)[0]
        assert r.class_index == int(probs.argmax())
        assert r.confidence == pytest.approx(float(probs.max()), abs=1e-5)


def test_onnx_generator_gives_the_same_predictions(setup):
    a = run_client(setup["root"] / "gen.pt", setup["url"], setup["files"])
    b = run_client(setup["root"] / "gen.onnx", setup["url"], setup["files"])
    assert [r.class_index for r in a] == [r.class_index for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert float((_decode(ra.sent_png) - _decode(rb.sent_png)).abs().max()) <= 1 / 255 + 1e-6


def test_requests_carry_no_original_bytes(setup):
    """Capture what the client puts on the wire (mock transport): only PNGs of protected images."""
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/model":
            return httpx.Response(200, json={"channels": 1, "input_size": [SIZE, SIZE]})
        body = request.read()
        seen.append(body)
        return httpx.Response(200, json={"predictions": [
            {"class_index": 0, "class_name": "0", "confidences": [1.0]} for _ in range(body.count(b"filename="))]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        run_client(setup["root"] / "gen.pt", "http://server", setup["files"], http=client)
    assert len(seen) == 1
    for f in setup["files"]:
        raw = np.asarray(Image.open(f)).tobytes()
        assert Path(f).read_bytes() not in seen[0]
        assert raw not in seen[0]


def test_client_refuses_images_the_model_cannot_take(setup, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((SIZE * 2, SIZE), dtype=np.uint8)).save(big)
    with pytest.raises(InvalidInputError, match=r"big\.png: image is \(1, 16, 8\)"):
        run_client(setup["root"] / "gen.pt", setup["url"], [big])
    with pytest.raises(InvalidInputError, match="generator file not found"):
        load_generator(tmp_path / "none.pt")


def test_png_bytes_round_trip():
    x = torch.rand(3, 5, 7)
    back = np.asarray(Image.open(io.BytesIO(png_bytes(x))), dtype=np.float32) / 255.0
    np.testing.assert_allclose(np.moveaxis(back, -1, 0), x.numpy(), atol=0.5 / 255 + 1e-6)


def test_cli_client_and_export(setup, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["client", "--generator", str(setup["root"] / "gen.pt"), "--server", setup["url"],
                              *map(str, setup["files"][:2])])
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(setup["files"][0]))
    out = runner.invoke(cli, ["export", "--generator", str(setup["root"] / "gen.pt"), "--onnx",
                              str(tmp_path / "g.onnx"), "--torchscript", str(tmp_path / "g.ts"), "--size", "16"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "g.onnx").stat().st_size > 0 and (tmp_path / "g.ts").stat().st_size > 0
    assert "max |diff| vs PyTorch" in out.stdout
    out = runner.invoke(cli, ["client", "--generator", str(tmp_path / "missing.pt"), "--server", setup["url"],
                              str(setup["files"][0])])
    assert out.exit_code == 2 and "generator file not found" in out.stderr


def test_privis_serve_command_runs_a_server(tmp_path):
    """``privis serve`` in its own process: health, one prediction, then it is stopped."""
    torch.manual_seed(0)
    models.save_checkpoint(models.create("lenet5", num_classes=10, in_channels=1, image_size=SIZE),
                           tmp_path / "m.pt")
    port = free_port()
    env = {**os.environ, "PRIVIS_NO_PROGRESS": "1"}
    privis = Path(sys.executable).with_name("privis")
    proc = subprocess.Popen([str(privis), "serve", "--model", str(tmp_path / "m.pt"), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base)
        image = png_bytes(torch.rand(1, SIZE, SIZE))
        r = httpx.post(f"{base}/v1/predict", files=[("images", ("a.png", image, "image/png"))], timeout=30)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
