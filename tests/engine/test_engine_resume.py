"""Crash safety: an interrupted run resumed gives exactly the uninterrupted run's files, no partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from privis import data as pdata
from privis.engine import journal_path, protect
from privis.engine.journal import JournalState
from privis.errors import InvalidInputError
from privis.methods.baselines import GaussianNoise
from privis.methods.veil import Veil


def make_folder(root: Path, n: int, *, classes: int = 3, size: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"im{i:05d}.png")
    return root


def files(out: Path) -> dict[str, bytes]:
    """Every file under the class folders of ``out`` (temporary files included, so they are caught)."""
    found = {}
    for dirpath, _dirs, names in os.walk(out):
        if Path(dirpath) == out:
            continue
        for name in names:
            p = Path(dirpath) / name
            found[p.relative_to(out).as_posix()] = p.read_bytes()
    return found


def journal_ids(out: Path) -> list[str]:
    """Ids of the finished items; a last line still being written (no newline yet) is not one of them."""
    text = journal_path(out).read_text()
    complete = text[:text.rfind("\n") + 1]
    return [json.loads(line)["id"] for line in complete.splitlines() if '"kind":"item"' in line]


class CrashingNoise(GaussianNoise):
    """The noise baseline that raises on its ``crash_at``-th batch (a crash mid-run)."""

    def __init__(self, sigma: float = 0.1, random_state: int | None = None, crash_at: int = 3) -> None:
        super().__init__(sigma=sigma, random_state=random_state)
        self.crash_at = crash_at

    def get_params(self, deep=True):  # the run identity must be the plain noise baseline's
        return {"sigma": self.sigma, "random_state": self.random_state}

    def transform(self, images, labels=None, *, ids=None):
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls == self.crash_at:
            raise RuntimeError("simulated crash")
        return super().transform(images, labels, ids=ids)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("resume") / "in", 300)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    protect(GaussianNoise(random_state=5), f"folder:{folder}", out, batch_size=32)
    return files(out)


def test_resume_after_exception_is_byte_identical(folder, reference, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated"):
        protect(CrashingNoise(random_state=5, crash_at=4), f"folder:{folder}", out, batch_size=32, workers=2)
    finished = journal_ids(out)
    assert 0 < len(finished) < 300
    assert not (out / "manifest.json").exists()  # an incomplete run has no folder manifest
    summary = protect(GaussianNoise(random_state=5), f"folder:{folder}", out, batch_size=50, resume=True)
    assert summary.already_done == len(finished) and summary.done == 300 - len(finished)
    assert files(out) == reference  # batch size differs from the reference: per-item seeding
    ids = journal_ids(out)
    assert len(ids) == len(set(ids)) == 300
    assert len(pdata.load(f"folder:{out}")) == 300


def test_resume_after_sigkill_is_byte_identical(folder, reference, tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "from privis.engine import protect\n"
        "from privis.methods.baselines import GaussianNoise\n"
        "class Slow(GaussianNoise):\n"
        "    def get_params(self, deep=True): return {'sigma': self.sigma, 'random_state': self.random_state}\n"
        "    def transform(self, images, labels=None, *, ids=None):\n"
        "        import time; time.sleep(0.05); return super().transform(images, labels, ids=ids)\n"
        "Slow.name = 'noise'\n"
        f"protect(Slow(random_state=5), 'folder:{folder}', sys.argv[1], batch_size=8, workers=2)\n"
    )
    env = dict(os.environ, PRIVIS_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal_path(out).exists() and len(journal_ids(out)) >= 60:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = len(journal_ids(out))
    assert 60 <= finished < 300
    summary = protect(GaussianNoise(random_state=5), f"folder:{folder}", out, batch_size=32, resume=True)
    assert summary.done + summary.already_done == 300
    got = files(out)
    assert not [name for name in got if name.endswith(".tmp")]  # temporary files of killed writes removed
    assert got == reference
    assert len(set(journal_ids(out))) == len(journal_ids(out)) == 300


def test_torn_journal_line_is_cut_and_item_redone(folder, reference, tmp_path):
    out = tmp_path / "out"
    protect(GaussianNoise(random_state=5), f"folder:{folder}", out, batch_size=32)
    lines = journal_path(out).read_bytes().splitlines(keepends=True)
    item_lines = [k for k, ln in enumerate(lines) if b'"kind":"item"' in ln]
    last = item_lines[-1]
    victim = json.loads(lines[last])["path"]
    # crash while appending the last item's line, its file half-written by a non-atomic writer
    journal_path(out).write_bytes(b"".join(lines[:last]) + lines[last][:20])
    (out / victim).write_bytes(b"\x89PNG partial")
    (out / "manifest.json").unlink()
    state = JournalState(journal_path(out))
    assert state.done.size == 299
    summary = protect(GaussianNoise(random_state=5), f"folder:{folder}", out, batch_size=32, resume=True)
    assert summary.done == 1
    assert files(out) == reference


def test_resume_refuses_a_different_run(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        protect(CrashingNoise(random_state=5, crash_at=2), f"folder:{folder}", out, batch_size=32)
    with pytest.raises(InvalidInputError, match="its seed was"):
        protect(GaussianNoise(random_state=6), f"folder:{folder}", out, batch_size=32, resume=True)
    with pytest.raises(InvalidInputError, match="method"):
        protect(Veil(steps=1, local_epochs=1, random_state=5), f"folder:{folder}", out, resume=True)


def test_batch_seeded_method_resumes_identically_when_batches_were_whole(tmp_path, digits_train):
    """Veil (no ``ids``) is seeded per aligned batch: batches computed whole reproduce exactly."""
    ds = digits_train.subset(slice(0, 96))
    ref, out = tmp_path / "ref", tmp_path / "out"
    params = {"steps": 5, "local_epochs": 1, "random_state": 3}
    protect(Veil(**params), ds, ref, batch_size=32)

    class CrashingVeil(Veil):
        def transform(self, images, labels=None):
            self._n = getattr(self, "_n", 0) + 1
            if self._n == 3:
                raise RuntimeError("simulated crash")
            return super().transform(images, labels)

    with pytest.raises(RuntimeError):
        protect(CrashingVeil(**params), ds, out, batch_size=32)
    protect(Veil(**params), ds, out, batch_size=32, resume=True)
    assert files(out) == files(ref)
