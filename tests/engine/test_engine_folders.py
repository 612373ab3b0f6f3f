"""``protect`` over real-world folders: every input accounted for, read as ``privis.data.load`` reads it.

Reproductions (root files of a class tree, a colour image after the 64th grey one, a flat folder, a name
that is not UTF-8, phone portraits with EXIF orientation and GPS, link loops) and one property test over
generated folder trees.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from typer.testing import CliRunner

from imagefiles import phone_jpeg
from privis import data as pdata
from privis.cli.main import app
from privis.data.walk import name_text
from privis.engine import journal_path, protect
from privis.errors import PrivisError
from privis.methods.baselines import Pixelate

runner = CliRunner()
RNG = np.random.default_rng(11)


def save(path: Path | bytes, array: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    with open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    return buffer.getvalue()


def grey(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w), dtype=np.uint8)


def rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def checksums(root: Path) -> dict[bytes, str]:
    """SHA-256 of every regular file under ``root`` (links not followed), by raw relative path."""
    out: dict[bytes, str] = {}
    base = os.fsencode(root)
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, base)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        array = np.asarray(img)
    return array if array.ndim == 3 else array[..., None]


# ----------------------------------------------------------------------------------- reproductions


def test_root_files_of_a_class_tree_are_protected_and_load_back(tmp_path: Path) -> None:
    root = tmp_path / "in"
    save(root / "loose.png", grey())
    save(root / "cat/a.png", grey())
    save(root / "dog/b.png", grey())
    out = tmp_path / "out"
    summary = protect(Pixelate(block=1), f"folder:{root}", out)
    assert (summary.found, summary.done, summary.skipped, summary.ignored) == (3, 3, 0, 0)
    assert (out / "loose.png").is_file()  # the unnamed class stays in the output's root
    back = pdata.load(f"folder:{out}")
    ref = pdata.load(f"folder:{root}")
    assert back.class_names == ref.class_names == ["", "cat", "dog"]
    assert back.paths == ref.paths and back.labels.tolist() == ref.labels.tolist()
    assert np.array_equal(back.images.numpy(), ref.images.numpy())


def test_flat_folder_protects_as_one_unnamed_class(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for i in range(4):
        save(root / f"im {i}.png", rgb())
    result = runner.invoke(app, ["protect", "blur", "--data", f"folder:{root}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "found 4: done 4" in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f"im {i}.png" for i in range(4)]


def test_colour_image_after_the_64th_grey_one_is_protected(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for i in range(70):
        save(root / f"k/g{i:03d}.png", grey())
    save(root / "k/z_colour.png", rgb())
    summary = protect(Pixelate(block=1), f"folder:{root}", tmp_path / "out", batch_size=16)
    assert summary.done == 71 and summary.skipped == 0 and summary.failed == 0
    back = pdata.load(f"folder:{tmp_path / 'out'}")
    ref = pdata.load(f"folder:{root}")
    assert back.shape == ref.shape == (3, 6, 5)
    assert np.array_equal(back.images.numpy(), ref.images.numpy())


def test_name_that_is_not_utf8_is_written_with_or_without_skip_bad(tmp_path: Path) -> None:
    cat = os.fsencode(tmp_path / "in" / "cat")
    save(cat + b"/caf\xe9.png", grey())  # Latin-1, as a Windows-1252 camera or zip tool writes it
    save(cat + b"/plain.png", grey())
    for flags, out in (([], "a"), (["--skip-bad"], "b")):
        result = runner.invoke(app, ["protect", "pixelate", "--param", "block=1", "--data",
                                     f"folder:{tmp_path / 'in'}", "--out", str(tmp_path / out), *flags])
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output and "found 2: done 2" in result.output
        written = manifest(tmp_path / out)
        assert sorted(it["source"] for it in written["items"]) == ["cat/caf%E9.png", "cat/plain.png"]
        assert (tmp_path / out / "cat" / "caf%E9.png").is_file()
        journal = journal_path(tmp_path / out).read_text(encoding="utf-8")  # valid UTF-8 JSON lines
        assert all(json.loads(line) for line in journal.splitlines())

    with open(cat + b"/bad\xff.png", "wb") as fh:
        fh.write(b"not an image")
    skip = runner.invoke(app, ["protect", "blur", "--data", f"folder:{tmp_path / 'in'}", "--out",
                               str(tmp_path / "c"), "--skip-bad"])
    assert skip.exit_code == 0, skip.output
    assert "skipped 1:" in skip.output and "cat/bad%FF.png: not an image" in skip.output
    stop = runner.invoke(app, ["protect", "blur", "--data", f"folder:{tmp_path / 'in'}", "--out",
                               str(tmp_path / "d")])
    assert stop.exit_code == 2 and "Traceback" not in stop.output  # a bad file is bad input (exit rule)
    assert "found 3: done 0" in stop.output and "failed 1" in stop.output and "not reached 2" in stop.output
    errors = [line for line in stop.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "bad%FF.png" in errors[0]


def test_phone_portraits_are_written_as_they_look_without_metadata(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "cam").mkdir(parents=True)
    for name in ("p1.jpg", "p2.jpg"):
        (root / "cam" / name).write_bytes(phone_jpeg(rgb(16, 24)))  # stored 24x16, displays 16x24
    with Image.open(root / "cam/p1.jpg") as img:
        assert img.size == (24, 16) and img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    out = tmp_path / "out"
    summary = protect(Pixelate(block=1), f"folder:{root}", out)
    assert summary.done == 2 and summary.skipped == 0  # both display 16x24: one size
    ref = pdata.load(f"folder:{root}")
    assert ref.oriented == {"cam/p1.jpg": 6, "cam/p2.jpg": 6}
    recorded = {it["source"]: it.get("orientation") for it in manifest(out)["items"]}
    assert recorded == {"cam/p1.jpg": 6, "cam/p2.jpg": 6}  # the manifest says the photos were turned upright
    for k, rel in enumerate(ref.paths or []):
        target = out / PurePosixPath(rel).with_suffix(".png")
        with Image.open(target) as img:
            assert img.size == (16, 24)  # as it displays
            assert "exif" not in img.info and len(img.getexif()) == 0  # no orientation, maker or GPS
            assert not any(key in img.info for key in ("icc_profile", "xmp", "XML:com.adobe.xmp"))
        expected = np.moveaxis(np.rint(ref.images[k].numpy() * 255), 0, -1).astype(np.uint8)
        assert np.array_equal(pixels(target), expected)


def test_link_loops_and_hidden_files_are_reported_on_screen(tmp_path: Path) -> None:
    root = tmp_path / "in"
    save(root / "cat/a.png", grey())
    os.symlink("..", root / "cat/loop")
    (root / "cat/.DS_Store").write_bytes(b"junk")
    result = runner.invoke(app, ["protect", "blur", "--data", f"folder:{root}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "found 3: done 1, already done 0, skipped 0, failed 0, ignored 2" in result.output
    assert "cat/loop: symbolic link loop" in result.output and "cat/.DS_Store: hidden file" in result.output


# ------------------------------------------------------------------------------------ property test

_NAME_PARTS = [b"a", b"B", b"7", b" ", b"-", b"%", b"\xc3\xa9", b"\xe9", b"\xff", b"."]
_DIRS = [b"c1", b"c 2", b"caf\xe9", b".hid", b"n"]
_KINDS = ["grey", "rgb", "palette", "exif6", "bad"]
_SIZES = [(4, 4), (4, 5), (5, 4)]


def _entries() -> st.SearchStrategy:
    name = st.lists(st.sampled_from(_NAME_PARTS), min_size=1, max_size=4).map(b"".join)
    folder = st.lists(st.sampled_from(_DIRS), min_size=0, max_size=2).map(tuple)
    return st.tuples(folder, name, st.sampled_from(_KINDS), st.sampled_from(_SIZES), st.booleans())


def _image_bytes(kind: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[bytes, bytes]:
    """``(suffix, bytes)`` of one generated file; ``size`` is (height, width) as it displays."""
    h, w = size
    buffer = io.BytesIO()
    if kind == "grey":
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(buffer, format="PNG")
    elif kind == "rgb":
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, format="PNG")
    elif kind == "palette":
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(8).save(buffer, format="PNG")
    elif kind == "exif6":
        return b".jpg", phone_jpeg(rng.integers(0, 256, (w, h, 3), dtype=np.uint8))
    else:
        return b".png", b"\x89PNG\r\n\x1a\n truncated"
    return b".png", buffer.getvalue()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(_entries(), min_size=1, max_size=10), links=st.sets(st.sampled_from(
    ["loop", "self", "outside", "broken", "twice"])), seed=st.integers(0, 2**16))
def test_protect_accounts_for_every_input_and_reads_as_load(entries, links, seed) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="privis-prop-") as tmp:
        base = os.fsencode(tmp)
        root = base + b"/in"
        os.makedirs(root)
        created: list[bytes] = []  # relative paths of the regular files made in the tree
        for folder, name, kind, size, with_suffix in entries:
            if name in (b".", b".."):
                continue
            suffix, payload = _image_bytes(kind, size, rng)
            rel = b"/".join((*folder, name + (suffix if with_suffix else b"")))
            target = root + b"/" + rel
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    continue
                with open(target, "wb") as fh:
                    fh.write(payload)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a name already taken by a folder or a file: the tree keeps the first
            created.append(rel)
        some_dir = root + b"/" + (entries[0][0][0] if entries[0][0] else b"c1")
        os.makedirs(some_dir, exist_ok=True)
        if "loop" in links:
            os.symlink(b"..", some_dir + b"/loop")
        if "self" in links:
            os.symlink(b"selfref", some_dir + b"/selfref")
        if "broken" in links:
            os.symlink(b"nothing.png", some_dir + b"/broken.png")
        if "twice" in links and not os.path.lexists(root + b"/c1/again"):
            os.makedirs(root + b"/c1", exist_ok=True)
            os.symlink(some_dir, root + b"/c1/again")
        if "outside" in links:
            os.makedirs(base + b"/elsewhere")
            with open(base + b"/elsewhere/o.png", "wb") as fh:
                fh.write(_image_bytes("grey", (4, 4), rng)[1])
            os.symlink(base + b"/elsewhere/o.png", root + b"/outside.png")
        before = checksums(Path(os.fsdecode(root)))
        spec = f"folder:{os.fsdecode(root)}"
        out = Path(os.fsdecode(base)) / "out"

        try:
            ref = pdata.load(spec, skip_bad=True)
        except PrivisError:
            ref = None
        try:
            summary = protect(Pixelate(block=1), spec, out, skip_bad=True)
        except PrivisError:
            assert ref is None, "protect refused a folder that load reads"
            return
        assert ref is not None, "protect ran on a folder that load refuses"
        assert checksums(Path(os.fsdecode(root))) == before  # no input changed

        # written + skipped (+ ignored by rule) = found, and the same split as load's
        assert summary.found == summary.done + summary.skipped + summary.ignored
        assert summary.found == len(ref) + len(ref.skipped) + len(ref.ignored)
        written = manifest(out)
        assert sorted(it["source"] for it in written["items"]) == sorted(ref.paths or [])
        assert sorted(s["path"] for s in written["skipped"]) == sorted(s["path"] for s in ref.skipped)
        # nothing dropped silently: every file made is written, skipped or inside an ignored entry
        listed = {*(ref.paths or []), *(s["path"] for s in ref.skipped)}
        ignored = [e["path"] for e in ref.ignored]
        for rel in created:
            text = name_text(os.fsdecode(rel))
            assert text in listed or any(text == g or text.startswith(g + "/") for g in ignored), text

        # relative paths kept, and the pixels load reads
        index = {p: k for k, p in enumerate(ref.paths or [])}
        for item in written["items"]:
            source = PurePosixPath(item["source"])
            assert item["path"] == source.with_name(source.stem + ".png").as_posix()
            assert written["class_names"][item["label"]] == ref.class_names[int(ref.labels[index[item["source"]]])]
            expected = np.rint(ref.images[index[item["source"]]].numpy() * 255).astype(np.uint8)
            got = pixels(out / item["path"])
            assert np.array_equal(np.broadcast_to(np.moveaxis(got, -1, 0), expected.shape), expected)


def test_a_resumed_run_accounts_for_every_input(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for i in range(5):
        save(root / f"k/{i}.png", grey())
    (root / "k/bad.png").write_bytes(b"nope")
    (root / "k/.hidden").write_bytes(b"x")
    out = tmp_path / "out"
    first = protect(Pixelate(block=1), f"folder:{root}", out, skip_bad=True)
    assert (first.found, first.done, first.skipped, first.ignored, first.unaccounted) == (7, 5, 1, 1, 0)
    again = protect(Pixelate(block=1), f"folder:{root}", out, skip_bad=True, resume=True)
    assert (again.found, again.done, again.already_done, again.skipped, again.ignored) == (7, 0, 5, 1, 1)
    assert again.unaccounted == 0 and "found 7: done 0, already done 5, skipped 1" in again.line()


def test_the_python_api_never_reads_its_output_folder_through_a_link_in_the_input(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for k in range(3):
        save(os.fsencode(root / "a" / f"{k}.png"), grey())
    out = tmp_path / "out"
    out.mkdir()
    (root / "a" / "link").symlink_to(out, target_is_directory=True)
    summary = protect(Pixelate(block=1), f"folder:{root}", out, batch_size=1)
    assert summary.done == 3 and summary.ignored == 1  # the link is ignored, not read while OUT fills up
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a/0.png", "a/1.png", "a/2.png"]
