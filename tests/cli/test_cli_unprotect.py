"""``privis keygen`` / ``protect --param key_file=...`` / ``unprotect``: bit-exact through files, or refused.

Every restored image must equal ``round(255 x)`` of its original at 8 bits (the keyed mode stores and
restores 8-bit values), and everything ``unprotect`` cannot verify -- a wrong key, an edited, lossy or
swapped item, a folder protected without a key or never protected -- is refused with one line naming
the cause, before anything is written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from privis import data as pdata
from privis.cli.main import app
from privis.errors import DatasetError

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:keyed VisualMixer stores:UserWarning")


def _png_chw(path: Path) -> np.ndarray:
    """The pixels a PNG stores, ``(C, H, W)`` in the file's own dtype."""
    with Image.open(path) as img:
        a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _protect(data: str, out: Path, key: Path | None, *extra: str) -> None:
    params = ["--param", f"key_file={key}"] if key is not None else ["--seed", "123456789"]
    res = _run("protect", "visualmixer", "--data", data, "--out", out, *params, *extra)
    assert res.exit_code == 0, res.output


def _unprotect(prot: Path, out: Path, key: Path, *extra: str):
    return _run("unprotect", "visualmixer", "--data", f"folder:{prot}", "--out", out, "--key", key, *extra)


def _items(folder: Path) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text())["items"]


@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "secret" / "owner.key"
    res = _run("keygen", path)
    assert res.exit_code == 0, res.output
    return path


def _grey16_folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for i in range(6):
        d = root / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        smooth = np.add.outer(np.arange(22), np.arange(30)) * 1000 + rng.integers(0, 65536 - 51000, (22, 30))
        Image.fromarray(smooth.astype(np.uint16)).save(d / f"g{i}.png")  # mode I;16: 16-bit grey
    return root


def _rgb_folder(root: Path) -> Path:
    rng = np.random.default_rng(2)
    for i in range(6):
        d = root / ("cat" if i % 2 else "dog")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)).save(d / f"c{i}.png")  # 31 x 23 RGB
    return root


def _dataset_expected(spec: str):
    """Expected 8-bit pixels of a built-in dataset's item by id (slices start at 0, so id = index)."""
    ds = pdata.load(spec)
    pixels = np.rint(ds.images.numpy() * 255).astype(np.uint8)
    return lambda item: pixels[int(item["id"])]


def _folder_expected(root: Path):
    """Expected 8-bit pixels of an input file by id (its relative path): ``round(255 v / max)``."""
    def expected(item: dict) -> np.ndarray:
        raw = _png_chw(root / item["id"])
        if raw.dtype == np.uint16:
            return np.rint(raw.astype(np.float64) * 255 / 65535).astype(np.uint8)
        return raw
    return expected


@pytest.mark.parametrize("case", ["digits", "fashion-mnist", "lfw-subset", "grey16", "rgb"])
def test_keyed_round_trip_through_files_is_bit_exact(tmp_path, key, case) -> None:
    if case == "grey16":
        root = _grey16_folder(tmp_path / "in")
        spec, expected = f"folder:{root}", _folder_expected(root)
    elif case == "rgb":
        root = _rgb_folder(tmp_path / "in")
        spec, expected = f"folder:{root}", _folder_expected(root)
    else:
        spec = {"digits": "digits[:40]", "fashion-mnist": "fashion-mnist:test[:40]",
                "lfw-subset": "lfw-subset[:10]"}[case]
        try:
            expected = _dataset_expected(spec)
        except DatasetError as exc:
            pytest.skip(f"{spec} is not available here ({exc})")
    prot, rest = tmp_path / "prot", tmp_path / "rest"
    _protect(spec, prot, key)
    res = _unprotect(prot, rest, key)
    assert res.exit_code == 0, res.output
    items = _items(prot)
    assert items and all(len(item["tag"]) == 32 for item in items)
    changed = 0
    for item in items:
        want = expected(item)
        got = _png_chw(rest / item["path"])
        assert got.dtype == np.uint8 and np.array_equal(got, want), item["path"]
        changed += not np.array_equal(_png_chw(prot / item["path"]), want)
    assert changed == len(items)  # every image was actually shuffled
    # nothing in the shared folder holds the key, its hex or where it lives
    secret = key.read_bytes()
    for path in prot.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert secret not in blob and secret.hex().encode() not in blob and str(key).encode() not in blob


def test_readme_example_restores_every_image(tmp_path, key) -> None:
    prot, rest = tmp_path / "vm", tmp_path / "restored"
    with pytest.warns(UserWarning, match="at 8 bits"):  # digits hold sixteenths: the run says they become 8-bit
        res = _run("protect", "visualmixer", "--data", "digits[:20]", "--out", prot, "--param", f"key_file={key}",
                   "--seed", "0")
    assert res.exit_code == 0, res.output
    res = _unprotect(prot, rest, key)
    assert res.exit_code == 0, res.output
    assert "restored 20 images" in res.output
    original = np.rint(pdata.load("digits[:20]").images.numpy() * 255)
    restored = {item["path"]: _png_chw(rest / item["path"]) for item in _items(rest)}
    matches = sum(np.array_equal(restored[item["path"]], original[int(item["id"])]) for item in _items(prot))
    assert matches == 20


@pytest.fixture
def protected(tmp_path, key) -> Path:
    prot = tmp_path / "prot"
    _protect("digits[:12]", prot, key)
    return prot


def _refused(result, out: Path, *words: str) -> None:
    """A non-zero exit, one line naming the cause, and no output folder."""
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()


def test_wrong_key_is_refused(tmp_path, protected) -> None:
    other = tmp_path / "other.key"
    assert _run("keygen", other).exit_code == 0
    out = tmp_path / "rest"
    _refused(_unprotect(protected, out, other), out, "does not match the key")


def _edit(path: Path, change) -> None:
    pixels = np.asarray(Image.open(path)).copy()
    Image.fromarray(change(pixels)).save(path)


@pytest.mark.parametrize("kind", ["edited", "lossy", "swapped"])
def test_edited_lossy_or_swapped_item_is_refused_by_name(tmp_path, key, protected, kind) -> None:
    items = _items(protected)
    target = protected / items[5]["path"]
    if kind == "edited":  # one pixel, one level
        _edit(target, lambda p: np.where(np.arange(p.size).reshape(p.shape) == 17, p ^ 1, p).astype(np.uint8))
    elif kind == "lossy":  # what a JPEG round trip leaves, saved back as PNG
        def jpeg(p: np.ndarray) -> np.ndarray:
            buf = io.BytesIO()
            Image.fromarray(p).save(buf, format="JPEG", quality=95)
            return np.asarray(Image.open(buf)).copy()
        before = _png_chw(target)
        _edit(target, jpeg)
        assert not np.array_equal(_png_chw(target), before)
    else:  # two items exchanged
        other = protected / items[6]["path"]
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
    out = tmp_path / "rest"
    _refused(_unprotect(protected, out, key), out, items[5]["path"], "nothing was written")


def _edit_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest["items"])
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind", ["relabelled", "record-removed", "file-added"])
def test_a_manifest_that_disagrees_with_the_files_is_refused_by_name(tmp_path, key, protected, kind) -> None:
    """The tags cover pixels, not labels nor the list of files: a relabelled item, or a file without a record,
    would be restored under another class or dropped without a word."""
    items = _items(protected)
    named = items[3]["path"]
    if kind == "relabelled":
        _edit_manifest(protected, lambda its: its[3].update(label=(its[3]["label"] + 1) % 10))
    elif kind == "record-removed":
        _edit_manifest(protected, lambda its: its.pop(3))
    else:
        named = f"{items[3]['path'].split('/')[0]}/added.png"
        (protected / named).write_bytes((protected / items[3]["path"]).read_bytes())
    out = tmp_path / "rest"
    _refused(_unprotect(protected, out, key), out, named)


def test_foreign_folders_are_refused(tmp_path, key) -> None:
    seeded = tmp_path / "seeded"
    _protect("digits[:6]", seeded, None)
    out = tmp_path / "rest"
    _refused(_unprotect(seeded, out, key), out, "not protected with a key")
    plain = tmp_path / "plain"
    (plain / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(plain / "a" / "x.png")
    _refused(_unprotect(plain, out, key), out, "not a folder written by privis protect")
    (plain / "manifest.json").write_text(json.dumps({"items": [{"path": "a/x.png"}], "tool": "other"}))
    _refused(_unprotect(plain, out, key), out, "not a folder written by privis protect")
    res = _run("unprotect", "visualmixer", "--data", "digits", "--out", out, "--key", key)
    _refused(res, out, "folder:PATH")


def test_keyed_protect_refuses_lossy_output_before_any_work(tmp_path, key) -> None:
    out = tmp_path / "jpeg"
    res = _run("protect", "visualmixer", "--data", "digits[:6]", "--out", out, "--param", f"key_file={key}",
               "--format", "jpeg", "--allow-lossy")
    assert res.exit_code == 2 and "lossless" in res.output, res.output
    assert not out.exists()


def test_manifest_records_ids_tags_and_key_check_only_with_a_key(tmp_path, key, protected) -> None:
    extra = json.loads((protected / "manifest.json").read_text())["extra"]
    assert len(extra["public"]["key_check"]) == 32 and "key_file" not in extra["params"]
    items = _items(protected)
    assert len({item["tag"] for item in items}) == len(items)
    seeded = tmp_path / "seeded"
    _protect("digits[:6]", seeded, None)
    plain = json.loads((seeded / "manifest.json").read_text())
    assert "public" not in plain["extra"]
    assert all("id" in item and "tag" not in item for item in plain["items"])


def test_resume_with_another_key_is_refused(tmp_path, key, protected) -> None:
    other = tmp_path / "other.key"
    assert _run("keygen", other).exit_code == 0
    res = _run("protect", "visualmixer", "--data", "digits[:12]", "--out", protected, "--param", f"key_file={other}",
               "--resume")
    assert res.exit_code != 0 and "resume" in res.output, res.output  # one folder never mixes two keys
    assert _unprotect(protected, tmp_path / "rest", key).exit_code == 0


def test_restore_keeps_the_layout_of_a_flat_folder(tmp_path, key) -> None:
    """Images in the input's root stay in the root (the unnamed class), not under a made-up class folder."""
    src = tmp_path / "flat"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name in ("b.png", "a.png", "c d.png"):
        Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8)).save(src / name)
    prot, out = tmp_path / "prot", tmp_path / "rest"
    _protect(f"folder:{src}", prot, key)
    res = _unprotect(prot, out, key)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c d.png", "manifest.json"]
    for name in ("a.png", "b.png", "c d.png"):
        assert np.array_equal(_png_chw(out / name), _png_chw(src / name))
    assert pdata.load(f"folder:{out}").paths == pdata.load(f"folder:{src}").paths


def test_a_second_restore_into_the_same_folder_names_the_flag_that_replaces_it(tmp_path):
    key = tmp_path / "k.key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    protected = tmp_path / "vm"
    assert runner.invoke(app, ["protect", "visualmixer", "--data", "digits[:8]", "--out", str(protected),
                               "--param", f"key_file={key}"]).exit_code == 0
    args = ["unprotect", "visualmixer", "--data", f"folder:{protected}", "--out", str(tmp_path / "r"), "--key",
            str(key)]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output, again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
