"""File-system safety: permissions of atomic writes, the output-path checks, and who owns which file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes, atomic_write_text, check_outputs, clear_owned, survey_folder


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"x")
        private = atomic_write_text(tmp_path / "k.key", "secret", private=True)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == expected
    assert (tmp_path / "sub").stat().st_mode & 0o777 == 0o777 & ~umask
    assert private.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_check_outputs_refuses_every_way_of_touching_an_input(tmp_path):
    data = tmp_path / "good.npz"
    data.write_bytes(b"data")
    folder = tmp_path / "images"
    (folder / "c0").mkdir(parents=True)
    (folder / "c0" / "a.png").write_bytes(b"png")
    hard = tmp_path / "hard.npz"
    os.link(data, hard)
    soft = tmp_path / "soft.npz"
    soft.symlink_to(data)
    inputs = [data, folder]
    cases = {
        "it is the input": data,
        "is the input ": hard,  # a hard link: the same inode
        "the input": soft,  # a symbolic link
        "inside the input folder": folder / "c0" / "a.png",
    }
    for why, path in cases.items():
        with pytest.raises(InvalidInputError, match=why.strip()):
            check_outputs({"--json": path}, inputs)
    with pytest.raises(InvalidInputError, match="lies inside the output folder"):
        check_outputs({"--out": tmp_path}, inputs, folders=("--out",))
    with pytest.raises(InvalidInputError, match="is a folder"):
        check_outputs({"--json": folder}, [])
    with pytest.raises(InvalidInputError, match="not a folder"):
        check_outputs({"--out": data}, [], folders=("--out",))
    with pytest.raises(InvalidInputError, match="same path"):
        check_outputs({"--json": tmp_path / "r", "--report": tmp_path / "r"}, [])
    check_outputs({"--json": tmp_path / "new" / "r.json", "--out": tmp_path / "o"}, inputs, folders=("--out",))
    assert data.read_bytes() == b"data"


def test_check_outputs_refuses_what_cannot_be_written(tmp_path):
    ro = tmp_path / "ro.json"
    ro.write_text("{}")
    ro.chmod(0o444)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InvalidInputError, match="--json .*ro.json is read-only"):
            check_outputs({"--json": ro}, [])
        with pytest.raises(InvalidInputError, match="cannot write in the folder"):
            check_outputs({"--report": locked / "r.html"}, [])
        with pytest.raises(InvalidInputError, match="cannot write in the folder"):
            check_outputs({"--out": locked / "deeper" / "out"}, [], folders=("--out",))
    finally:
        locked.chmod(0o755)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidInputError, match="broken symbolic link"):
        check_outputs({"--json": broken}, [])


def test_survey_tells_privis_outputs_from_everything_else(tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "mine.png").write_bytes(b"privis wrote this")
    (out / "a" / "edited.png").write_bytes(b"changed by the user")
    (out / "a" / "pending.png").write_bytes(b"written before the crash")
    (out / "a" / "theirs.png").write_bytes(b"never recorded")
    (out / ".hidden").write_bytes(b"ignored")
    sha = hashlib.sha256(b"privis wrote this").hexdigest()
    records = [("a/mine.png", sha), ("a/edited.png", hashlib.sha256(b"original").hexdigest()),
               ("a/edited.png", None), ("a/pending.png", None), ("../escape.png", None), ("/abs.png", None)]
    survey = survey_folder(out, records)
    assert survey.owned == {"a/mine.png", "a/pending.png"}
    assert survey.foreign == {"a/edited.png", "a/theirs.png"}
    with pytest.raises(InvalidInputError, match=r"refusing to overwrite 2 file.*edited\.png.*theirs\.png"):
        survey.refuse(survey.foreign, "test")
    survey.refuse(set(), "nothing in the way")
    trusting = survey_folder(out, records, verify=False)  # recorded files counted as privis' unread
    assert trusting.owned == {"a/mine.png", "a/pending.png", "a/edited.png"} and trusting.foreign == {"a/theirs.png"}
    assert clear_owned(out, survey.owned) == 2
    assert sorted(p.name for p in out.rglob("*")) == [".hidden", "a", "edited.png", "theirs.png"]
    empty = out / "keep-me"
    empty.mkdir()
    (out / "b").mkdir()
    (out / "b" / "x.png").write_bytes(b"x")
    clear_owned(out, {"b/x.png"})
    assert empty.is_dir() and not (out / "b").exists()  # only folders privis emptied are removed
    assert survey_folder(tmp_path / "missing", records).owned == set()


def test_a_symlink_out_of_the_folder_is_never_privis_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_bytes(b"precious")
    (out / "link.png").symlink_to(target)
    survey = survey_folder(out, [("link.png", hashlib.sha256(b"precious").hexdigest())])
    assert survey.foreign == {"link.png"}
    clear_owned(out, {"link.png"})
    assert target.read_bytes() == b"precious"


def test_outputs_paths_are_compared_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("in.npz").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="is the input"):
        check_outputs({"--out": Path("./sub/../in.npz")}, ["in.npz"])
