"""The classifier server over real HTTP: a uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import io
import random
import socket
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from privis import models
from privis.errors import InvalidInputError

SIZE = 8
NAMES = [f"class-{i}" for i in range(10)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, model): an untrained LeNet-5 for 8x8 grey images behind a real uvicorn server."""
    import uvicorn

    from privis.serve.app import create_app

    torch.manual_seed(0)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=SIZE)
    path = tmp_path_factory.mktemp("serve") / "model.pt"
    models.save_checkpoint(model, path, extra={"class_names": NAMES})
    app = create_app(path, max_upload_bytes=200_000, max_pixels=64 * 64, max_files=8)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", model.eval()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=30) as client:
        yield client


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def grey(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` pixels, with a tiny valid IDAT and IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def post_files(http, base, *items):
    return http.post(f"{base}/v1/predict", files=[("images", item) for item in items])


def test_health_model_and_openapi(served, http):
    base, _ = served
    assert http.get(f"{base}/v1/health").json()["status"] == "ok"
    info = http.get(f"{base}/v1/model").json()
    assert info["input_size"] == [SIZE, SIZE] and info["channels"] == 1
    assert info["class_names"] == NAMES and info["num_classes"] == 10 and info["max_files"] == 8
    spec = http.get(f"{base}/openapi.json").json()
    assert {"/v1/predict", "/v1/health", "/v1/model"} <= set(spec["paths"])
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_predict_batch_is_the_unchanged_model(served, http):
    base, model = served
    arrays = [grey(i) for i in range(3)]
    r = post_files(http, base, *[(f"img{i}.png", png(a), "image/png") for i, a in enumerate(arrays)])
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["filename"] for p in preds] == ["img0.png", "img1.png", "img2.png"]
    x = torch.from_numpy(np.stack(arrays)).float().div(255).unsqueeze(1)
    with torch.no_grad():
        expected = torch.softmax(model(x), 1)
    for p, e in zip(preds, expected, strict=True):
        assert p["class_index"] == int(e.argmax()) and p["class_name"] == NAMES[p["class_index"]]
        np.testing.assert_allclose(p["confidences"], e.numpy(), atol=1e-5)
        assert sum(p["confidences"]) == pytest.approx(1.0, abs=1e-5)


def test_jpeg_accepted(served, http):
    base, _ = served
    r = post_files(http, base, ("a.jpg", jpeg(grey(5)), "image/jpeg"))
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def _malformed_cases() -> dict[str, tuple[dict, int, str]]:
    good = png(grey(0))
    good_jpeg = jpeg(grey(0))
    rgba = png(np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8))
    rgb = png(np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    gif = io.BytesIO()
    frames = [Image.fromarray(grey(i)).convert("P") for i in range(2)]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    multipart = "multipart/form-data; boundary=zzz"

    def files(data, name="x.png"):
        return {"files": [("images", (name, data, "image/png"))]}

    return {
        "header bomb 1e5 x 1e5": (files(png_header_bomb(100_000, 100_000)), 413, "image_too_large"),
        "over max_pixels": (files(png_header_bomb(65, 64)), 413, "image_too_large"),
        "truncated png (header only)": (files(good[:30]), 400, "undecodable_image"),
        "truncated png (no IEND)": (files(good[:-12]), 400, "truncated_image"),
        "truncated png (mid IDAT)": (files(good[: len(good) // 2 + 20]), 400, "truncated_image"),
        "truncated jpeg (no EOI)": (files(good_jpeg[:-2], "x.jpg"), 400, "truncated_image"),
        "truncated jpeg (mid header)": (files(good_jpeg[: len(good_jpeg) // 2], "x.jpg"), 400, ""),
        "empty file": (files(b""), 400, "empty_file"),
        "not an image": (files(b"%PDF-1.4 hello" * 20), 400, "undecodable_image"),
        "rgba (alpha)": (files(rgba), 422, "wrong_mode"),
        "rgb for a grey model": (files(rgb), 422, "wrong_mode"),
        "animated gif": (files(gif.getvalue(), "x.gif"), 422, "wrong_mode"),
        "wrong size": (files(png(grey(0, SIZE + 1, SIZE))), 422, "wrong_size"),
        "too many files": ({"files": [("images", (f"{i}.png", good, "image/png")) for i in range(9)]}, 413,
                           "too_many_files"),
        "json body": ({"content": b'{"image": 1}', "headers": {"content-type": "application/json"}}, 415,
                      "unsupported_media"),
        "no content type": ({"content": good}, 415, "unsupported_media"),
        "multipart without boundary": ({"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
                                       400, "bad_request"),
        "garbage multipart": ({"content": b"--zzz\r\nnonsense", "headers": {"content-type": multipart}}, 400, ""),
        "form without file": ({"content": b'--zzz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--zzz--\r\n',
                               "headers": {"content-type": multipart}}, 400, "no_image"),
        "body over the upload limit": (files(b"\0" * 250_000), 413, "upload_too_large"),
    }


@pytest.mark.parametrize("case", list(_malformed_cases()))
def test_malformed_request_gets_4xx_json_naming_the_problem(served, http, case):
    base, _ = served
    kwargs, status, code = _malformed_cases()[case]
    r = http.post(f"{base}/v1/predict", **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_streamed_body_without_length_is_cut_at_the_limit(served, http):
    base, _ = served

    def body():  # a valid multipart file part that never ends, sent chunked (no Content-Length)
        yield b'--zzz\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n\r\n'
        for _ in range(100):  # 100 x 10 kB > the 200 kB limit
            yield b"\0" * 10_000

    r = http.post(f"{base}/v1/predict", content=body(),
                  headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"


def test_unknown_route_and_method_are_json_4xx(served, http):
    base, _ = served
    r = http.get(f"{base}/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = http.get(f"{base}/v1/predict")
    assert r.status_code == 405 and "error" in r.json()


def test_fuzz_round_never_5xx_and_server_stays_healthy(served, http):
    """Random mutations of valid files and random bodies: every answer is 200 or a JSON 4xx."""
    base, _ = served
    rng = random.Random(1234)
    seeds = [png(grey(0)), jpeg(grey(1)), png_header_bomb(300, 300)]
    types = ["multipart/form-data; boundary=b0undary", "image/png", "application/octet-stream", "text/plain", ""]
    statuses = []
    for i in range(60):
        blob = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            pos = rng.randrange(len(blob))
            if op < 0.5:
                blob[pos] = rng.randrange(256)
            elif op < 0.75:
                del blob[pos:pos + rng.randint(1, 64)]
            else:
                blob[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        if i % 3 == 0:  # raw body with a random content type
            r = http.post(f"{base}/v1/predict", content=bytes(blob), headers={"content-type": rng.choice(types)})
        else:
            r = post_files(http, base, (f"f{i}.png", bytes(blob), "image/png"))
        statuses.append(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert 400 <= r.status_code < 500 and r.json()["error"]["code"]
    assert any(400 <= s < 500 for s in statuses)
    assert http.get(f"{base}/v1/health").json()["status"] == "ok"


def test_create_app_rejects_bad_limits_and_models(tmp_path):
    from privis.serve.app import create_app

    with pytest.raises(InvalidInputError, match="checkpoint file not found"):
        create_app(tmp_path / "missing.pt")
    model = models.create("lenet5", num_classes=3, in_channels=1, image_size=SIZE)
    models.save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(InvalidInputError, match="max_pixels"):
        create_app(tmp_path / "m.pt", max_pixels=0)
    app = create_app(tmp_path / "m.pt")  # no class names stored: "0", "1", "2"
    assert app.state.served.class_names == ["0", "1", "2"]
