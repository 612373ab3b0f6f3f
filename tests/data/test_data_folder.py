"""Image folders: loading (modes, nesting, bad files, skip_bad), and the writer's round trip and guards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from privis.data import (
    Dataset,
    FolderWriter,
    class_dir_names,
    load,
    load_folder,
    read_image,
    write_folder,
)
from privis.errors import DatasetError, ImageFileError, InvalidInputError

RNG = np.random.default_rng(1234)


def save(path: Path, array: np.ndarray, fmt: str = "PNG", **kwargs: object) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kwargs)
    return array


def grey(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w), dtype=np.uint8)


def rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def as_chw(array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(array.astype(np.float32) / 255)
    return t.permute(2, 0, 1) if t.ndim == 3 else t.unsqueeze(0)


@pytest.fixture
def grey_tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "in"
    arrays = {
        "cat/a.png": save(root / "cat/a.png", grey()),
        "cat/x/img01.png": save(root / "cat/x/img01.png", grey()),
        "cat/x/y/deep.png": save(root / "cat/x/y/deep.png", grey()),
        "dog/b.png": save(root / "dog/b.png", grey()),
    }
    (root / "cat" / ".DS_Store").write_bytes(b"junk")  # hidden: ignored (listed, counted, not read)
    (root / ".hidden").mkdir()
    save(root / ".hidden/c.png", grey())
    return root, arrays


# ---------------------------------------------------------------------------------------------- load


def test_load_grey_nested(grey_tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, arrays = grey_tree
    ds = load_folder(root)
    assert ds.class_names == ["cat", "dog"]
    assert ds.paths == ["cat/a.png", "cat/x/img01.png", "cat/x/y/deep.png", "dog/b.png"]
    assert ds.labels.tolist() == [0, 0, 0, 1]
    assert ds.shape == (1, 6, 5) and ds.skipped == []
    assert ds.ignored == [{"path": ".hidden", "reason": "hidden folder"},
                          {"path": "cat/.DS_Store", "reason": "hidden file"}]
    for i, rel in enumerate(ds.paths):
        assert torch.equal(ds.images[i], as_chw(arrays[rel]))
    assert load(f"folder:{root}").name == f"folder:{root}"


def test_mixed_grey_and_rgb_promotes_to_three_channels(tmp_path: Path) -> None:
    g = save(tmp_path / "a/g.png", grey())
    c = save(tmp_path / "b/c.png", rgb())
    ds = load_folder(tmp_path)
    assert ds.shape == (3, 6, 5)
    assert torch.equal(ds.images[0], as_chw(g).expand(3, -1, -1))
    assert torch.equal(ds.images[1], as_chw(c))


def test_modes_one_palette_and_16_bit(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    bits = RNG.integers(0, 2, size=(6, 5)).astype(bool)
    Image.fromarray(bits).convert("1").save(tmp_path / "k/bits.png")  # mode 1
    g = grey()
    Image.fromarray(g).convert("RGB").quantize(256).save(tmp_path / "k/pgrey.png")
    deep = RNG.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "k/deep.png")

    a, scale = read_image(tmp_path / "k/bits.png")
    assert a.dtype == bool and scale == 1.0 and np.array_equal(a, bits)
    a, scale = read_image(tmp_path / "k/deep.png")
    assert scale == 65535.0 and np.array_equal(a, deep)
    a, _ = read_image(tmp_path / "k/pgrey.png")
    assert a.ndim == 2  # a grey palette reads as grey

    ds = load_folder(tmp_path)
    assert ds.shape == (1, 6, 5)
    by_path = dict(zip(ds.paths or [], ds.images, strict=True))
    assert torch.equal(by_path["k/bits.png"][0], torch.from_numpy(bits.astype(np.float32)))
    assert torch.allclose(by_path["k/deep.png"][0], torch.from_numpy(deep.astype(np.float32) / 65535))


def test_colour_palette_reads_as_rgb(tmp_path: Path) -> None:
    c = rgb()
    pal = Image.fromarray(c).quantize(256)
    (tmp_path / "x").mkdir()
    pal.save(tmp_path / "x/p.png")
    a, _ = read_image(tmp_path / "x/p.png")
    assert a.shape == (6, 5, 3)
    assert np.array_equal(a, np.asarray(pal.convert("RGB")))


def bad_files(folder: Path) -> dict[str, str]:
    """One truncated PNG, one non-image, one RGBA, one transparent palette: relative path -> expected text."""
    png = folder / "cls/trunc.png"
    save(png, grey(40, 40))
    png.write_bytes(png.read_bytes()[:-40])
    (folder / "cls/notes.txt").write_text("hello, not an image")
    save(folder / "cls/alpha.png", RNG.integers(0, 256, size=(6, 5, 4), dtype=np.uint8))
    pal = Image.fromarray(grey()).convert("P")
    pal.save(folder / "cls/tp.png", transparency=0)
    return {"cls/trunc.png": "truncated", "cls/notes.txt": "not an image", "cls/alpha.png": "RGBA",
            "cls/tp.png": "transparency"}


@pytest.mark.parametrize("bad", ["cls/trunc.png", "cls/notes.txt", "cls/alpha.png", "cls/tp.png"])
def test_each_bad_file_raises_naming_it(tmp_path: Path, bad: str) -> None:
    staging = tmp_path / "staging"
    expected = bad_files(staging)
    root = tmp_path / "root"
    save(root / "cls/good.png", grey())
    (root / bad).write_bytes((staging / bad).read_bytes())
    with pytest.raises(ImageFileError) as info:
        load_folder(root)
    assert info.value.path == root / bad
    assert str(root / bad) in str(info.value)
    assert expected[bad] in str(info.value)


def test_skip_bad_records_every_bad_file(tmp_path: Path) -> None:
    expected = bad_files(tmp_path)
    good = save(tmp_path / "cls/good.png", grey())
    save(tmp_path / "other/good2.png", grey())
    ds = load(f"folder:{tmp_path}", skip_bad=True)
    assert len(ds) == 2 and ds.paths == ["cls/good.png", "other/good2.png"]
    assert torch.equal(ds.images[0], as_chw(good))
    reasons = {s["path"]: s["reason"] for s in ds.skipped}
    assert set(reasons) == set(expected)
    for path, fragment in expected.items():
        assert fragment in reasons[path]


def test_size_mismatch(tmp_path: Path) -> None:
    save(tmp_path / "a/1.png", grey(6, 5))
    save(tmp_path / "a/2.png", grey(7, 5))
    save(tmp_path / "b/3.png", grey(6, 5))
    with pytest.raises(ImageFileError) as info:
        load_folder(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "a/2.png") in message and "5x7" in message and "5x6" in message
    ds = load_folder(tmp_path, skip_bad=True)  # the common size wins
    assert ds.paths == ["a/1.png", "b/3.png"]
    assert [s["path"] for s in ds.skipped] == ["a/2.png"]


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_folder(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / ".keep").write_text("")
    with pytest.raises(DatasetError, match="no image files") as info:
        load_folder(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder"):
        load_folder(tmp_path / "file.png")
    (tmp_path / "cat" / "bad.txt").write_text("nope")  # file.png in ROOT is an item too (the unnamed class)
    with pytest.raises(DatasetError, match="none of its 2 files"):
        load_folder(tmp_path, skip_bad=True)


# ------------------------------------------------------------------------------------ write + reload


def test_round_trip_keeps_paths_stems_and_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "cat/x/img01.jpg", rgb(8, 8), fmt="JPEG", quality=90)
    save(src / "cat/a.png", rgb(8, 8))
    save(src / "dog/y/z/b.bmp", rgb(8, 8), fmt="BMP")
    ds = load_folder(src)
    out = tmp_path / "out"
    manifest_path = write_folder(ds, out, extra={"method": {"name": "identity"}, "versions": {"torch": "x"}})

    assert manifest_path == out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["class_names"] == ["cat", "dog"] and manifest["count"] == 3
    assert manifest["extra"] == {"method": {"name": "identity"}, "versions": {"torch": "x"}}
    assert manifest["skipped"] == [] and manifest["source"] == f"folder:{src}"
    items = manifest["items"]
    assert [i["path"] for i in items] == ["cat/a.png", "cat/x/img01.png", "dog/y/z/b.png"]
    assert [i["source"] for i in items] == ["cat/a.png", "cat/x/img01.jpg", "dog/y/z/b.bmp"]
    assert [(i["label"], i["class_name"]) for i in items] == [(0, "cat"), (0, "cat"), (1, "dog")]
    for item in items:
        data = (out / item["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert Image.open(out / item["path"]).format == "PNG"

    back = load(f"folder:{out}")
    assert torch.equal(back.images, ds.images)  # exact: 8-bit data through lossless PNG
    assert torch.equal(back.labels, ds.labels)
    assert back.class_names == ds.class_names
    assert [Path(p).with_suffix("").as_posix() for p in back.paths or []] == [
        Path(p).with_suffix("").as_posix() for p in ds.paths or []
    ]


def test_round_trip_grey_without_paths_and_unsafe_class_names(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (7, 1, 4, 3)).float() / 255
    labels = torch.tensor([1, 0, 2, 2, 1, 0, 1])
    ds = Dataset(images, labels, ["T-shirt/top", "Trouser", ".hidden"], name="custom")
    out = tmp_path / "out"
    with FolderWriter(out, ds.class_names, source=ds.name) as writer:
        first = writer.write(images[:3], labels[:3])
        second = writer.write(images[3:], labels[3:])
    assert first == ["Trouser/000000.png", "T-shirt_top/000001.png", "_hidden/000002.png"]
    assert second[0] == "_hidden/000003.png"
    back = load_folder(out)
    assert back.class_names == ["T-shirt/top", "Trouser", ".hidden"]
    assert torch.equal(back.images, images) and torch.equal(back.labels, labels)
    assert back.paths == first + second  # manifest order
    assert Image.open(out / first[0]).mode == "L"


def test_manifest_fixes_class_order_and_detects_changes(tmp_path: Path) -> None:
    images = torch.rand(2, 3, 4, 4)
    ds = Dataset(images, torch.tensor([0, 1]), ["zeta", "alpha"], name="x")
    out = tmp_path / "out"
    write_folder(ds, out)
    back = load_folder(out)
    assert back.class_names == ["zeta", "alpha"] and back.labels.tolist() == [0, 1]
    assert (back.images - images).abs().max() <= 0.5 / 255 + 1e-7  # round(x * 255) / 255

    (out / "alpha").mkdir(exist_ok=True)
    save(out / "alpha/extra.png", rgb(4, 4))  # files not in the manifest still load, after its items
    assert load_folder(out).paths == ["zeta/000000.png", "alpha/000001.png", "alpha/extra.png"]

    save(out / "zeta/000000.png", rgb(4, 4))  # tampered after writing
    with pytest.raises(ImageFileError, match="SHA-256") as info:
        load_folder(out)
    assert str(out / "zeta/000000.png") in str(info.value)

    (out / "zeta/000000.png").unlink()
    with pytest.raises(ImageFileError, match="missing"):
        load_folder(out)
    assert [s["path"] for s in load_folder(out, skip_bad=True).skipped] == ["zeta/000000.png"]

    (out / "gamma").mkdir()
    with pytest.raises(DatasetError, match="gamma"):
        load_folder(out)


def test_writer_refuses_overlap_with_inputs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "cat/a.png", grey())
    for out in (src, src / "protected", src / "cat" / "deeper"):
        with pytest.raises(InvalidInputError, match="input"):
            FolderWriter(out, ["cat"], inputs=[src])
    with pytest.raises(InvalidInputError, match="inside the output"):
        FolderWriter(tmp_path, ["cat"], inputs=[src / "cat" / "a.png"])
    ds = load_folder(src)
    with pytest.raises(InvalidInputError):
        write_folder(ds, src / "out")  # the dataset's own folder is guarded automatically
    assert not (src / "out").exists()
    FolderWriter(tmp_path / "elsewhere", ["cat"], inputs=[src])  # fine


def test_writer_refuses_existing_output_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = Dataset(torch.rand(3, 1, 4, 4), torch.tensor([0, 0, 1]), ["a", "b"], "x")
    write_folder(first, out)
    with pytest.raises(InvalidInputError, match="manifest.json"):
        write_folder(first, out)
    second = Dataset(torch.rand(1, 1, 4, 4), torch.tensor([1]), ["a", "b"], "y")
    write_folder(second, out, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["b/000000.png"]
    assert len(load_folder(out)) == 1


def test_writer_validates_batches_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = FolderWriter(out, ["a", "b"])
    images = torch.rand(2, 1, 4, 4)
    with pytest.raises(InvalidInputError, match="same output file"):
        writer.write(images, [0, 0], paths=["a/p.jpg", "a/p.png"])
    with pytest.raises(InvalidInputError, match="relative"):
        writer.write(images, [0, 0], paths=["../p.jpg", "a/q.png"])
    with pytest.raises(InvalidInputError, match="not within"):
        writer.write(images + 1, [0, 1])
    with pytest.raises(InvalidInputError, match="labels"):
        writer.write(images, [0, 2])
    with pytest.raises(InvalidInputError, match="1 or 3"):
        writer.write(torch.rand(2, 2, 4, 4), [0, 1])
    assert not out.exists() or not any(out.rglob("*.png"))
    # a path without the label's class folder is put under it; a one-part path too
    assert writer.write(images, [1, 0], paths=["a/k.jpg", "solo.tif"]) == ["b/a/k.png", "a/solo.png"]
    writer.add_skipped("a/broken.jpg", "truncated")
    manifest = json.loads(writer.close().read_text())
    assert manifest["skipped"] == [{"path": "a/broken.jpg", "reason": "truncated"}]
    with pytest.raises(InvalidInputError, match="closed"):
        writer.write(images, [0, 0])
    with pytest.raises(InvalidInputError, match="JSON"):
        FolderWriter(tmp_path / "o2", ["a"], extra={"x": object()})


def test_failed_block_writes_no_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), FolderWriter(out, ["a"]) as writer:
        writer.write(torch.rand(1, 1, 2, 2), [0])
        raise RuntimeError("boom")
    assert (out / "a/000000.png").is_file() and not (out / "manifest.json").exists()


def test_skipped_inputs_travel_into_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "c/ok.png", grey())
    (src / "c/bad.png").write_bytes(b"\x89PNG broken")
    ds = load_folder(src, skip_bad=True)
    write_folder(ds, tmp_path / "out")
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert [s["path"] for s in manifest["skipped"]] == ["c/bad.png"]


def test_class_dir_names() -> None:
    assert class_dir_names(["cat", "dog 2", "a:b"]) == ["cat", "dog 2", "a:b"]
    assert class_dir_names(["a/b", "", "..", "Cat", "cat", "manifest.json"]) == [
        "a_b", "class_1", "class_2", "Cat", "cat_2", "manifest.json_"
    ]
