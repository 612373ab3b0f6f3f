"""The browser client of ``privis serve --client``: headless Chromium loads the page from a real ``privis serve``
on 127.0.0.1, protects two images in the page with ONNX Runtime Web (WebAssembly) and classifies them on the
server. The page shows the Python pipeline's classes, its protected pixels equal the Python generator's (ONNX
Runtime on CPU) within one 8-bit level, and the server's request log shows that neither the original files nor
their pixels re-encoded were received. Unsupported files, too large images, 4xx answers and an unreachable
server are visible messages in the page.

Needs Chromium and Playwright (:mod:`browser`) and the vendored runtime (``scripts/vendor-web.sh``): without
them the browser test skips, except under ``CI=true``, where it must run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from test_serve_client import free_port, wait_healthy
from typer.testing import CliRunner

from browser import browser_or_skip, client_page, protect_in_page
from privis import models
from privis.cli.main import app as cli
from privis.errors import InvalidInputError
from privis.models.export import export_onnx
from privis.serve.app import STATIC_DIR, VENDOR_FILES, create_app, pixels_sha256
from privis.serve.client import image_tensor, load_generator, protect_images, run_client

SIZE = 16
MAX_PIXELS = 1024  # the 40x40 image below is "too large"; the 20x20 one passes the page and gets a 422
#: Largest per-pixel difference page vs Python after 8-bit rounding (float32 WASM vs native kernels can put a
#: value on the other side of a rounding boundary).
TOLERANCE_LEVELS = 1


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _vendored_or_skip() -> None:
    missing = [f for f in VENDOR_FILES if not (STATIC_DIR / "vendor" / f).is_file()]
    if missing:
        message = f"the browser client's runtime is not vendored ({missing[0]}): run scripts/vendor-web.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A 16x16 RGB classifier checkpoint and a generator with a visible perturbation, exported to ONNX."""
    root = tmp_path_factory.mktemp("browser")
    classifier = models.create_seeded("lenet5", 0, num_classes=10, in_channels=3, image_size=SIZE).eval()
    models.save_checkpoint(classifier, root / "model.pt")
    generator = models.create_seeded("unet-perturbation", 0, in_channels=3, width=4).eval()
    with torch.no_grad():
        generator.outc.weight.mul_(20.0)
    export_onnx(generator, root / "gen.onnx", torch.rand(1, 3, SIZE, SIZE))
    return root


def test_page_and_generator_are_served_only_with_client(models_dir):
    _vendored_or_skip()
    plain = TestClient(create_app(models_dir / "model.pt"))
    assert plain.get("/").status_code == 404
    assert plain.get("/client/generator.onnx").status_code == 404
    assert plain.get("/static/app.js").status_code == 404
    page = TestClient(create_app(models_dir / "model.pt", client_generator=models_dir / "gen.onnx"))
    assert "ONNX Runtime Web" in page.get("/").text
    assert page.get("/client/generator.onnx").content == (models_dir / "gen.onnx").read_bytes()
    assert page.get("/static/vendor/ort-wasm-simd-threaded.wasm").headers["content-type"] == "application/wasm"
    assert "javascript" in page.get("/static/vendor/ort-wasm-simd-threaded.mjs").headers["content-type"]
    with pytest.raises(InvalidInputError, match="ONNX generator"):
        create_app(models_dir / "model.pt", client_generator=models_dir / "model.pt")
    result = CliRunner().invoke(cli, ["serve", "--model", str(models_dir / "model.pt"), "--client"])
    assert result.exit_code == 2 and "--client and --generator go together" in result.output


def test_client_without_vendored_runtime_is_one_line_naming_the_script(models_dir, tmp_path, monkeypatch):
    import privis.serve.app as served_app

    monkeypatch.setattr(served_app, "STATIC_DIR", tmp_path)
    with pytest.raises(InvalidInputError, match=r"not installed .* run scripts/vendor-web.sh"):
        create_app(models_dir / "model.pt", client_generator=models_dir / "gen.onnx")


def test_request_log_records_hashes_not_images(models_dir, tmp_path):
    log = tmp_path / "requests.jsonl"
    client = TestClient(create_app(models_dir / "model.pt", request_log=log))
    pixels = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    good, bad = _png(pixels), _png(pixels[:8])
    assert client.post("/v1/predict", files=[("images", ("a.png", good, "image/png"))]).status_code == 200
    assert client.post("/v1/predict", files=[("images", ("b.png", bad, "image/png"))]).status_code == 422
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["sha256"] == hashlib.sha256(good).hexdigest() and first["bytes"] == len(good)
    assert first["pixels_sha256"] == pixels_sha256(np.moveaxis(pixels, -1, 0))
    assert (first["channels"], first["height"], first["width"]) == (3, SIZE, SIZE)
    assert second["error"] == "wrong_size" and "pixels_sha256" not in second
    assert good not in log.read_bytes() and pixels.tobytes() not in log.read_bytes()


def test_browser_protects_in_the_page_and_sends_only_protected_images(models_dir, tmp_path):
    browser_or_skip()
    _vendored_or_skip()
    rng = np.random.default_rng(0)
    originals = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2)]
    originals[1] = np.sort(originals[1], axis=1)  # one noisy and one smoother image
    files = []
    for i, array in enumerate(originals):
        path = tmp_path / f"holiday-{i}.png"
        path.write_bytes(_png(array))
        files.append(path)
    log = tmp_path / "requests.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    privis = Path(sys.executable).with_name("privis")
    proc = subprocess.Popen([str(privis), "serve", "--model", str(models_dir / "model.pt"), "--port", str(port),
                             "--client", "--generator", str(models_dir / "gen.onnx"), "--request-log", str(log),
                             "--max-pixels", str(MAX_PIXELS)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_healthy(proc, url)
        with client_page(url, width=1100, height=800, timeout_ms=30_000) as page:
            assert "WebAssembly" in page.locator("#status").inner_text()
            shown = protect_in_page(page, files)
            cards = [page.locator(".card .prediction").nth(i).inner_text() for i in range(2)]
            timings = [page.locator(".card .timing").nth(i).inner_text() for i in range(2)]

            # the error cases, each a visible message
            big = originals[0].repeat(3, 0).repeat(3, 1)  # 48x48 > MAX_PIXELS
            protect_in_page(page, [
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
                {"name": "big.png", "mimeType": "image/png", "buffer": _png(big)},
                {"name": "small.png", "mimeType": "image/png", "buffer": _png(originals[0][:10, :10])}], total=5)
            proc.terminate()
            proc.wait(timeout=10)
            protect_in_page(page, [files[0]], total=6)
            messages = page.locator("#messages p").all_inner_texts()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    assert [r.get("error") for r in shown] == [None, None], shown
    # the page's protected image is the Python generator's (ONNX Runtime, CPU), after 8-bit rounding
    tensors = [image_tensor(f) for f in files]
    python = protect_images(tensors, load_generator(models_dir / "gen.onnx"))
    expected = [(x * 255).round().to(torch.uint8).numpy() for x in python]
    for r, e, original in zip(shown, expected, originals, strict=True):
        page_pixels = np.array(r["protected"], dtype=np.int16).reshape(r["shape"])
        assert page_pixels.shape == e.shape
        assert np.abs(page_pixels - e).max() <= TOLERANCE_LEVELS
        assert np.abs(page_pixels - np.moveaxis(original, -1, 0)).mean() > 10  # a real perturbation
    # the displayed class is the Python pipeline's (the Python client on the same server)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    for card, r in zip(cards, shown, strict=True):
        assert card.startswith(f"{r['className']} (") and "% confidence" in card
    assert all("protected in" in t and "round trip" in t for t in timings)
    # the server received exactly the page's protected images: no original bytes, no original pixels
    received = entries[:2]
    assert [e["filename"] for e in received] == ["protected-1.png", "protected-2.png"]
    for entry, r in zip(received, shown, strict=True):
        assert entry["pixels_sha256"] == pixels_sha256(np.array(r["protected"], dtype=np.uint8).reshape(r["shape"]))
    original_bytes = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    original_pixels = {pixels_sha256(np.ascontiguousarray(np.moveaxis(a, -1, 0))) for a in originals}
    assert not original_bytes & {e["sha256"] for e in entries}
    assert not original_pixels & {e.get("pixels_sha256") for e in entries}
    assert [e.get("error") for e in entries] == [None, None, "wrong_size"]  # the 10x10 image, protected, refused
    # error messages a person understands
    assert len(messages) == 4, messages
    assert "notes.txt: unsupported file" in messages[0]
    assert "big.png: image too large" in messages[1] and str(MAX_PIXELS) in messages[1]
    assert messages[2].startswith("small.png: ") and "HTTP 422" in messages[2] and "wrong_size" in messages[2]
    assert messages[3].startswith(f"{files[0].name}: ") and "unreachable" in messages[3]
    # the Python pipeline classifies its own protected images the same way (server restarted in-process)
    python_classes = _python_classes(models_dir, files)
    assert [r["className"] for r in shown] == python_classes


def _python_classes(models_dir: Path, files: list[Path]) -> list[str]:
    app = create_app(models_dir / "model.pt")
    with TestClient(app, base_url="http://testserver") as http:
        return [r.class_name for r in run_client(models_dir / "gen.onnx", "http://testserver", files, http=http)]
