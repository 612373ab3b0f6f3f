"""The one folder walker: root files, flat folders, the whole-folder size rule, hidden entries, links,
names the OS allows but UTF-8 does not, and EXIF orientation -- read alike by load_folder and the stream."""

from __future__ import annotations

import base64
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from imagefiles import phone_jpeg
from privis.data import load, load_folder, read_image
from privis.data.imagefile import probe_image
from privis.data.stream import FolderSource, decode_item
from privis.data.walk import item_id, name_record, name_text, printable_name
from privis.errors import DatasetError, ImageFileError

RNG = np.random.default_rng(7)


def save(path: Path | bytes, array: np.ndarray, fmt: str = "PNG", **kwargs: object) -> np.ndarray:
    """Save ``array`` at ``path`` (a ``bytes`` path may hold any byte but ``/`` and NUL)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    with open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    return array


def grey(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w), dtype=np.uint8)


def rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def phone_photo(path: Path, stored: np.ndarray, orientation: int = 6) -> None:
    """A JPEG as a phone writes it: pixels stored sideways, an orientation tag, maker and GPS position."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(phone_jpeg(stored, orientation))


def stream_view(root: Path) -> tuple[list[str], list[int], list[np.ndarray], list[str]]:
    """Relative paths, labels, pixels of the usable items, and bad items, as the streaming reader sees them."""
    source = FolderSource(root)
    shape, _ = source.run_shape()
    paths, labels, pixels, bad = [], [], [], []
    for item in source.items():
        try:
            array = decode_item(item)
        except ImageFileError:
            bad.append(item.rel)
            continue
        if array.shape[1:] != shape[1:]:
            bad.append(item.rel)
            continue
        paths.append(item.rel)
        labels.append(item.label)
        pixels.append(np.repeat(array, shape[0] // array.shape[0], axis=0))
    return paths, labels, pixels, bad


def assert_stream_matches_load(root: Path) -> None:
    """The streaming reader (protect) and load_folder see one dataset: classes, items, pixels, skips."""
    ds = load_folder(root, skip_bad=True)
    source = FolderSource(root)
    paths, labels, pixels, bad = stream_view(root)
    assert source.class_names == ds.class_names
    assert paths == ds.paths and labels == ds.labels.tolist()
    assert bad == [s["path"] for s in ds.skipped]
    assert source.ignored == ds.ignored
    assert source.count() == len(ds) + len(ds.skipped)
    for k, array in enumerate(pixels):
        assert np.array_equal(array, ds.images[k].numpy())


# ------------------------------------------------------------------------------- classes and items


def test_root_files_of_a_class_tree_are_the_unnamed_class(tmp_path: Path) -> None:
    top = save(tmp_path / "top.png", grey())
    save(tmp_path / "cat/a.png", grey())
    save(tmp_path / "dog/x/b.png", grey())
    ds = load_folder(tmp_path)
    assert ds.class_names == ["", "cat", "dog"]
    assert ds.paths == ["top.png", "cat/a.png", "dog/x/b.png"] and ds.labels.tolist() == [0, 1, 2]
    assert np.array_equal(ds.images[0, 0].numpy(), top / np.float32(255))
    assert_stream_matches_load(tmp_path)


def test_text_files_beside_class_folders_add_no_class_and_shift_no_label(tmp_path: Path) -> None:
    save(tmp_path / "cat/a.png", grey())
    save(tmp_path / "dog/b.png", grey())
    plain = load_folder(tmp_path)
    (tmp_path / "README.txt").write_text("my dataset")
    (tmp_path / "LICENSE").write_bytes(b"CC-BY")
    ds = load_folder(tmp_path, skip_bad=True)
    assert ds.class_names == plain.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == plain.labels.tolist() == [0, 1]
    assert [s["path"] for s in ds.skipped] == ["LICENSE", "README.txt"]
    assert_stream_matches_load(tmp_path)
    with pytest.raises(ImageFileError, match="LICENSE"):  # still a bad item without skip_bad
        load_folder(tmp_path)


def test_flat_folder_is_one_unnamed_class(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "c d.png"):
        save(tmp_path / name, grey())
    ds = load(f"folder:{tmp_path}")
    assert ds.class_names == [""] and ds.labels.tolist() == [0, 0, 0]
    assert ds.paths == ["a.png", "b.png", "c d.png"]
    assert_stream_matches_load(tmp_path)


def test_privis_records_in_root_are_not_items(tmp_path: Path) -> None:
    save(tmp_path / "a.png", grey())
    (tmp_path / "manifest.jsonl").write_text("{}\n")
    ds = load_folder(tmp_path)
    assert ds.paths == ["a.png"] and ds.skipped == [] and ds.ignored == []


def test_hidden_entries_are_ignored_listed_and_never_stop_a_load(tmp_path: Path) -> None:
    save(tmp_path / "cat/a.png", grey())
    (tmp_path / "cat/.DS_Store").write_bytes(b"\x00junk")
    save(tmp_path / ".thumbs/t.png", grey(9, 9))
    (tmp_path / "cat/.x.png.1234.tmp").write_bytes(b"half-written")
    ds = load_folder(tmp_path)  # no skip_bad: hidden entries are not bad
    assert ds.paths == ["cat/a.png"]
    assert ds.ignored == [{"path": ".thumbs", "reason": "hidden folder"},
                          {"path": "cat/.DS_Store", "reason": "hidden file"},
                          {"path": "cat/.x.png.1234.tmp", "reason": "hidden file"}]
    source = FolderSource(tmp_path)
    assert source.count() + len(source.ignored) == 4  # everything found is accounted for


# --------------------------------------------------------------------------------- size and channels


def test_colour_image_after_the_64th_grey_one_makes_the_folder_colour(tmp_path: Path) -> None:
    for i in range(70):
        save(tmp_path / f"k/g{i:03d}.png", grey())
    late = save(tmp_path / "k/z_colour.png", rgb())
    source = FolderSource(tmp_path)
    assert source.run_shape() == ((3, 6, 5), "k/g000.png")
    ds = load_folder(tmp_path)
    assert ds.shape == (3, 6, 5) and len(ds) == 71
    assert np.array_equal(ds.images[-1].numpy(), np.moveaxis(late, -1, 0) / np.float32(255))
    assert_stream_matches_load(tmp_path)


def test_most_common_size_over_the_whole_folder_wins_ties_to_the_first_met(tmp_path: Path) -> None:
    for i in range(3):
        save(tmp_path / f"a/{i}.png", grey(4, 4))  # met first, but fewer
    for i in range(5):
        save(tmp_path / f"b/{i}.png", grey(6, 5))
    ds = load_folder(tmp_path, skip_bad=True)
    assert ds.shape == (1, 6, 5) and len(ds) == 5
    assert [s["path"] for s in ds.skipped] == ["a/0.png", "a/1.png", "a/2.png"]
    assert all("differs from the folder's 5x6" in s["reason"] for s in ds.skipped)
    with pytest.raises(ImageFileError, match="a/0.png: size 4x4"):
        load_folder(tmp_path)
    assert_stream_matches_load(tmp_path)
    for i in range(2):
        save(tmp_path / f"c/{i}.png", grey(4, 4))  # now 5 each: the size met first wins
    assert load_folder(tmp_path, skip_bad=True).shape == (1, 4, 4)
    assert FolderSource(tmp_path).run_shape()[0] == (1, 4, 4)


# ------------------------------------------------------------------------------------ EXIF orientation


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_exif_orientation_as_pillow_does(tmp_path: Path, orientation: int, suffix: str) -> None:
    """Once, whatever the format: Pillow turns a TIFF upright itself while loading (and reports its upright
    size), which must not be turned a second time."""
    path = tmp_path / f"p{suffix}"
    img = Image.fromarray(rgb(4, 7))
    exif = img.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    img.save(path, exif=exif, **({"lossless": True} if suffix == ".webp" else {}))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    array, _ = read_image(path)
    assert np.array_equal(array, expected)
    size, channels, tag = probe_image(path)
    assert size == (expected.shape[1], expected.shape[0]) and channels == 3 and tag == orientation


def test_phone_portraits_read_upright_and_share_one_size(tmp_path: Path) -> None:
    stored = rgb(16, 24)  # stored 24 wide, 16 high; orientation 6: displays 16 wide, 24 high
    phone_photo(tmp_path / "cam/p1.jpg", stored)
    phone_photo(tmp_path / "cam/p2.jpg", rgb(16, 24))
    save(tmp_path / "cam/upright.png", rgb(24, 16))  # a plain 16x24 picture
    ds = load_folder(tmp_path)  # without skip_bad: all three are one size
    assert ds.shape == (3, 24, 16) and ds.skipped == []
    assert ds.oriented == {"cam/p1.jpg": 6, "cam/p2.jpg": 6}
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "cam/p1.jpg")))
    assert np.array_equal(ds.images[0].numpy(), np.moveaxis(upright, -1, 0) / np.float32(255))
    item = next(FolderSource(tmp_path).items())
    assert decode_item(item).shape == (3, 24, 16) and item.orientation == 6
    assert_stream_matches_load(tmp_path)


# ------------------------------------------------------------------------------------------- links


def test_symlink_loops_are_reported_and_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "in"
    save(root / "cat/a.png", grey())
    save(root / "dog/b.png", grey())
    os.symlink("..", root / "cat/up")  # loop: back to the class folder's parent (ROOT)
    os.symlink(".", root / "dog/here")  # loop: itself
    os.symlink("chain", root / "dog/chain")  # a link to itself: ELOOP
    os.symlink(root / "dog", root / "cat/dogs")  # the same folder linked twice
    outside = save(tmp_path / "elsewhere/o.png", grey())
    os.symlink(tmp_path / "elsewhere/o.png", root / "cat/linked.png")  # a file outside ROOT: read
    os.symlink("gone.png", root / "cat/broken.png")  # a missing target: a bad item

    done = threading.Event()
    result: dict[str, object] = {}

    def run() -> None:
        result["ds"] = load_folder(root, skip_bad=True)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "walking a folder with link loops did not end"
    ds = result["ds"]
    assert ds.paths == ["cat/a.png", "cat/linked.png", "dog/b.png"]  # type: ignore[attr-defined]
    assert np.array_equal(ds.images[1, 0].numpy(), outside / np.float32(255))  # type: ignore[attr-defined]
    reasons = {e["path"]: e["reason"] for e in ds.ignored}  # type: ignore[attr-defined]
    assert set(reasons) == {"cat/up", "dog/here", "dog/chain", "cat/dogs"}
    assert "loop" in reasons["cat/up"] and "loop" in reasons["dog/here"] and "loop" in reasons["dog/chain"]
    assert "same folder as dog" in reasons["cat/dogs"]
    assert ds.skipped == [{"path": "cat/broken.png",  # type: ignore[attr-defined]
                           "reason": "broken symbolic link (its target does not exist)"}]
    with pytest.raises(ImageFileError, match="broken symbolic link"):
        load_folder(root)
    assert_stream_matches_load(root)


def test_special_files_are_bad_items_never_opened(tmp_path: Path) -> None:
    save(tmp_path / "cat/a.png", grey())
    os.mkfifo(tmp_path / "cat/pipe.png")  # opening it would block forever
    ds = load_folder(tmp_path, skip_bad=True)
    assert ds.paths == ["cat/a.png"]
    assert ds.skipped == [{"path": "cat/pipe.png", "reason": "not a regular file (FIFO); never opened"}]


# ------------------------------------------------------------------------------------------- names


def test_names_that_are_not_utf8_are_read_and_recorded_losslessly(tmp_path: Path) -> None:
    cat = os.fsencode(tmp_path / "cat")
    good = save(cat + b"/caf\xe9.png", grey())  # Latin-1 e-acute
    with open(cat + b"/bad\xff.png", "wb") as fh:
        fh.write(b"not an image")
    ds = load_folder(tmp_path, skip_bad=True)
    assert ds.paths == ["cat/caf%E9.png"]
    assert np.array_equal(ds.images[0, 0].numpy(), good / np.float32(255))
    [skip] = ds.skipped
    assert skip["path"] == "cat/bad%FF.png" and "not an image" in skip["reason"]
    assert base64.b64decode(skip["path_b64"]) == b"cat/bad\xff.png"  # the raw bytes, losslessly
    with pytest.raises(ImageFileError) as info:
        load_folder(tmp_path)
    message = str(info.value)
    message.encode("utf-8")  # one printable line, whatever the bytes of the name
    assert "cat/bad%FF.png" in message and "\n" not in message
    assert_stream_matches_load(tmp_path)


def test_names_equal_once_written_collide_and_ids_stay_distinct(tmp_path: Path) -> None:
    cat = os.fsencode(tmp_path / "cat")
    save(cat + b"/caf%E9.png", grey())  # a real name that reads like the escaped one
    save(cat + b"/caf\xe9.png", grey())
    items = list(FolderSource(tmp_path).items())
    assert [it.rel for it in items] == ["cat/caf%E9.png", "cat/caf%E9.png"]
    assert len({it.id for it in items}) == 2
    assert items[0].error is None and "collides" in (items[1].error or "")
    assert [s["path"] for s in load_folder(tmp_path, skip_bad=True).skipped] == ["cat/caf%E9.png"]


def test_name_helpers() -> None:
    raw = os.fsdecode(b"d\xe9j\xe0 vu/\xff.png")
    assert name_text(raw) == "d%E9j%E0 vu/%FF.png" and name_text("plain é.png") == "plain é.png"
    assert name_text(raw).encode("utf-8")
    assert item_id("a/b.png") == "a/b.png" and item_id(raw) != item_id(os.fsdecode(b"d\xe9j\xe0 vu/\xfe.png"))
    assert "\x00" not in item_id("a/b.png") and item_id(raw).encode("utf-8")
    assert printable_name("a\nb\x1b.png") == "a\\nb\\x1b.png"
    assert name_record("ok.png", "why") == {"path": "ok.png", "reason": "why"}
    assert base64.b64decode(name_record(raw, "why")["path_b64"]) == b"d\xe9j\xe0 vu/\xff.png"


def test_folder_without_images_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(DatasetError, match=r"no image files \(1 hidden or looping entries ignored\)"):
        load_folder(tmp_path)


def test_folders_equal_once_written_keep_the_first(tmp_path: Path) -> None:
    cat = os.fsencode(tmp_path / "cat")
    save(cat + b"/d%E9/a.png", grey())
    save(cat + b"/d\xe9/b.png", grey())
    ds = load_folder(tmp_path, skip_bad=True)
    assert ds.paths == ["cat/d%E9/a.png"]
    [skip] = ds.skipped
    assert skip["path"] == "cat/d%E9" and "its files are unread" in skip["reason"]
    assert base64.b64decode(skip["path_b64"]) == b"cat/d\xe9"
    assert_stream_matches_load(tmp_path)
