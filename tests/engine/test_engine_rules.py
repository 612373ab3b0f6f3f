"""Refusal rules, bad inputs, output names, JPEG, and per-item seeding of the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from privis import data as pdata
from privis.engine import ids_mode, journal_path, protect
from privis.engine.core import derive_seed, protect_batch
from privis.errors import ImageFileError, InvalidInputError
from privis.methods.baselines import GaussianBlur, GaussianNoise
from privis.methods.veil import Veil


def make_folder(root: Path, n: int, *, size: int = 8, seed: int = 0, ext: str = "png") -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % 2}" / "sub"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"im{i:03d}.{ext}")
    return root


def test_outputs_keep_relative_path_and_stem(tmp_path):
    root = make_folder(tmp_path / "in", 6, ext="bmp")
    protect(GaussianBlur(), f"folder:{root}", tmp_path / "out")
    outs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    ins = sorted(p.relative_to(root).with_suffix(".png").as_posix() for p in root.rglob("*.bmp"))
    assert outs == ins
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {it["source"] for it in manifest["items"]} == {p.relative_to(root).as_posix() for p in root.rglob("*.bmp")}


def test_outputs_never_overwrite_inputs(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    for out in (root, root / "c0" / "x", tmp_path):
        with pytest.raises(InvalidInputError, match="never overwrite inputs"):
            protect(GaussianBlur(), f"folder:{root}", out)


def test_refuses_another_runs_outputs_unless_resume_or_force(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    protect(GaussianNoise(random_state=1), f"folder:{root}", out)
    with pytest.raises(InvalidInputError, match="another run's outputs"):
        protect(GaussianNoise(random_state=1), f"folder:{root}", out)
    assert protect(GaussianNoise(random_state=1), f"folder:{root}", out, resume=True).done == 0
    with pytest.raises(InvalidInputError, match="exclude"):
        protect(GaussianNoise(random_state=1), f"folder:{root}", out, resume=True, force=True)
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    summary = protect(GaussianNoise(random_state=2), f"folder:{root}", out, force=True)
    assert summary.done == 4 and summary.already_done == 0
    assert any(before[p] != p.read_bytes() for p in before)


def test_refuses_a_folder_written_by_another_tool_or_run(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    written = tmp_path / "written"
    pdata.write_folder(pdata.load("digits:train[:4]"), written)
    with pytest.raises(InvalidInputError, match="another run's outputs"):
        protect(GaussianBlur(), f"folder:{root}", written)
    with pytest.raises(InvalidInputError, match="no run to resume"):
        protect(GaussianBlur(), f"folder:{root}", written, resume=True)
    protect(GaussianBlur(), f"folder:{root}", written, force=True)
    assert not list(written.glob("[0-9]/*.png"))  # the earlier dataset's files were removed
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty"):
        protect(GaussianBlur(), f"folder:{root}", stray)


def test_bad_file_stops_with_its_name_or_is_skipped(tmp_path):
    root = make_folder(tmp_path / "in", 10)
    bad = root / "c1" / "sub" / "im005.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageFileError) as err:
        protect(GaussianBlur(), f"folder:{root}", tmp_path / "stop", batch_size=4)
    assert err.value.path == bad
    records = [json.loads(x) for x in journal_path(tmp_path / "stop").read_text().splitlines()]
    failed = [r for r in records if r["kind"] == "failed"]
    assert len(failed) == 1 and failed[0]["source"] == "c1/sub/im005.png" and "not an image" in failed[0]["reason"]
    assert not (tmp_path / "stop" / "manifest.json").exists()
    lines = []
    summary = protect(GaussianBlur(), f"folder:{root}", tmp_path / "skip", batch_size=4, skip_bad=True,
                      report=lines.append)
    assert (summary.done, summary.skipped, summary.failed) == (9, 1, 0)
    assert "skipped 1" in lines[0] and "images/s" in lines[0]
    manifest = json.loads((tmp_path / "skip" / "manifest.json").read_text())
    assert manifest["count"] == 9
    assert manifest["skipped"][0]["path"] == "c1/sub/im005.png" and "not an image" in manifest["skipped"][0]["reason"]
    # fixing the file and resuming finishes it and clears the skip
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad, format="PNG")
    summary = protect(GaussianBlur(), f"folder:{root}", tmp_path / "skip", resume=True, skip_bad=True)
    manifest = json.loads((tmp_path / "skip" / "manifest.json").read_text())
    assert summary.done == 1 and manifest["count"] == 10 and manifest["skipped"] == []


def test_size_mismatch_is_a_bad_item(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "c0" / "zz.png")
    with pytest.raises(ImageFileError, match="differs from the run's"):
        protect(GaussianBlur(), f"folder:{root}", tmp_path / "a")
    assert protect(GaussianBlur(), f"folder:{root}", tmp_path / "b", skip_bad=True).skipped == 1


def test_jpeg_is_refused_with_measured_change_unless_allowed(tmp_path):
    root = make_folder(tmp_path / "in", 6, size=16)
    with pytest.raises(InvalidInputError, match=r"up to \d+/255.*PSNR") as err:
        protect(GaussianNoise(random_state=0), f"folder:{root}", tmp_path / "j", output_format="jpeg")
    assert "allow-lossy" in str(err.value)
    assert not list((tmp_path / "j").rglob("*.jpg")) if (tmp_path / "j").exists() else True
    summary = protect(GaussianNoise(random_state=0), f"folder:{root}", tmp_path / "j", output_format="jpeg",
                      allow_lossy=True)
    assert summary.done == 6 and summary.jpeg_max_abs_change is not None and summary.jpeg_max_abs_change > 0
    assert len(list((tmp_path / "j").rglob("*.jpg"))) == 6
    assert "JPEG changed protected pixels" in summary.line()


def test_png_output_is_exactly_the_protected_pixels(tmp_path):
    ds = pdata.load("digits:train[:20]")
    protector = GaussianNoise(random_state=4)
    protect(protector, ds, tmp_path / "out", batch_size=7)
    back = pdata.load(f"folder:{tmp_path / 'out'}")
    ids = torch.tensor([__import__("privis").engine.item_hash(str(i)) for i in range(20)])
    expected = (protector.transform(ds.images, ids=ids) * 255).round() / 255
    order = [int(Path(p).stem) for p in back.paths]
    assert torch.equal(back.images, expected[order])


def test_seeding_modes():
    assert ids_mode(GaussianNoise()) == "ids"
    assert ids_mode(Veil()) == "batch-seed"
    assert ids_mode(GaussianBlur()) == "none"
    assert derive_seed(1, "a") != derive_seed(1, "b") and derive_seed(1, "a") == derive_seed(1, "a")
    veil = Veil(random_state=9)
    seen = []
    veil.transform = lambda images, labels=None: seen.append(veil.random_state) or images  # type: ignore[method-assign]
    protect_batch(veil, "batch-seed", 9, torch.zeros(1, 1, 2, 2), torch.zeros(1), np.zeros(1, np.int64), "x")
    assert seen == [derive_seed(9, "x")] and veil.random_state == 9


def test_journal_records_source_output_and_checksum(tmp_path):
    import hashlib

    root = make_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    protect(GaussianBlur(), f"folder:{root}", out)
    records = [json.loads(line) for line in journal_path(out).read_text().splitlines()]
    assert records[0]["kind"] == "run" and records[0]["method"] == "blur"
    items = [r for r in records if r["kind"] == "item"]
    assert len(items) == 3
    for r in items:
        assert hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() == r["sha256"]
        assert (root / r["source"]).is_file()
    assert records[-1]["kind"] == "end"


def test_seed_is_never_written(tmp_path):
    root = make_folder(tmp_path / "in", 2)
    protect(GaussianNoise(random_state=123456789), f"folder:{root}", tmp_path / "out")
    for path in (journal_path(tmp_path / "out"), tmp_path / "out" / "manifest.json"):
        assert "123456789" not in path.read_text()
