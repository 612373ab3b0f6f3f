"""The output folder never loses, overwrites or leaks: ownership, locking, failed starts, permissions, the
owner-side run state, and a scan of every method's finished output folder for secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from privis import data as pdata
from privis import methods
from privis.engine import journal_path, protect
from privis.engine.core import fitted_fingerprint
from privis.engine.journal import read_journal
from privis.engine.state import RunState, state_root
from privis.errors import InvalidInputError
from privis.methods.baselines import GaussianBlur, GaussianNoise
from privis.methods.veil import Veil

BIG_SEED = 7_318_905_126_447_590_213  # 63 bits: no guessable-seed warning, and unlikely to occur by chance


def make_folder(root: Path, n: int, *, size: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"im{i:03d}.png")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class FailingNoise(GaussianNoise):
    """The noise baseline failing on its first batch, as a bad parameter only ``transform`` meets would."""

    name = "noise"

    def get_params(self, deep=True):
        return {"sigma": self.sigma, "random_state": self.random_state}

    def transform(self, images, labels=None, *, ids=None):
        raise InvalidInputError("simulated bad parameter")


def crash_on_third_batch(monkeypatch):
    """Make Veil's transform crash on its third call (a crash mid-run), for one run."""
    calls = []
    real = Veil.transform

    def transform(self, images, labels=None):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(self, images, labels)

    monkeypatch.setattr(Veil, "transform", transform)
    return lambda: monkeypatch.setattr(Veil, "transform", real)


# ---------------------------------------------------------------------------------- ownership (--force)


def test_foreign_manifest_is_never_taken_for_a_run_nor_its_files_deleted(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    (out / "c0").mkdir(parents=True)
    (out / "c0" / "theirs.png").write_bytes(b"another tool's file")
    for manifest in ({"items": [{"path": "c0/theirs.png"}]},  # another tool's manifest
                     {"format": "privis-folder", "items": [{"path": "c0/theirs.png"}]}):  # no privis marker
        (out / "manifest.json").write_text(json.dumps(manifest))
        before = snapshot(out)
        with pytest.raises(InvalidInputError, match="not empty"):
            protect(GaussianBlur(), f"folder:{root}", out)
        with pytest.raises(InvalidInputError, match=r"did not write.*manifest\.json"):
            protect(GaussianBlur(), f"folder:{root}", out, force=True)  # the run would replace manifest.json
        assert snapshot(out) == before


def test_force_never_overwrites_a_users_file_and_lists_it(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    (out / "c0").mkdir(parents=True)
    (out / "c0" / "im000.png").write_bytes(b"the user's own image")  # where the run would write
    (out / "notes.txt").write_text("mine")  # not in the way
    with pytest.raises(InvalidInputError, match=r"refusing to overwrite 1 file.*c0/im000\.png"):
        protect(GaussianBlur(), f"folder:{root}", out, force=True)
    assert (out / "c0" / "im000.png").read_bytes() == b"the user's own image"
    (out / "c0" / "im000.png").unlink()
    summary = protect(GaussianBlur(), f"folder:{root}", out, force=True)
    assert summary.done == 4 and (out / "notes.txt").read_text() == "mine"


def test_force_replaces_only_unchanged_privis_outputs(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    other = make_folder(tmp_path / "other", 6, seed=1)
    out = tmp_path / "out"
    protect(GaussianBlur(), f"folder:{root}", out)
    edited = out / "c1" / "im001.png"
    edited.write_bytes(b"edited by the user: theirs now")
    with pytest.raises(InvalidInputError, match="c1/im001.png"):
        protect(GaussianBlur(sigma=2.0), f"folder:{root}", out, force=True)
    assert edited.read_bytes() == b"edited by the user: theirs now"
    edited.rename(tmp_path / "kept.png")
    # a run over other inputs: the first run's unchanged outputs are removed, nothing else
    (out / "c0" / "extra.txt").write_text("user")
    summary = protect(GaussianBlur(), f"folder:{other}", out, force=True)
    assert summary.done == 6
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert names == sorted(p.relative_to(other).as_posix() for p in other.rglob("*.png"))
    assert (out / "c0" / "extra.txt").read_text() == "user"


# ----------------------------------------------------------------------------------------- locking


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    holder = RunState(out)
    holder.acquire()
    try:
        with pytest.raises(InvalidInputError, match=f"being written by another privis run \\(pid {os.getpid()}"):
            protect(GaussianBlur(), f"folder:{root}", out)
    finally:
        holder.release()
    assert not out.exists()
    assert protect(GaussianBlur(), f"folder:{root}", out).done == 4


def test_two_processes_started_together_never_both_write(tmp_path):
    root = make_folder(tmp_path / "in", 40)
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "from privis.engine import protect\n"
        "from privis.methods.baselines import GaussianNoise\n"
        "class Slow(GaussianNoise):\n"
        "    name = 'noise'\n"
        "    def get_params(self, deep=True): return {'sigma': self.sigma, 'random_state': self.random_state}\n"
        "    def transform(self, images, labels=None, *, ids=None):\n"
        "        time.sleep(0.1); return super().transform(images, labels, ids=ids)\n"
        f"protect(Slow(random_state={BIG_SEED}), 'folder:{root}', sys.argv[1], batch_size=4)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    assert any("being written by another privis run" in err or "another run's outputs" in err
               for _, err in results)
    manifest = json.loads((out / "manifest.json").read_text())
    paths = [it["path"] for it in manifest["items"]]
    assert len(paths) == len(set(paths)) == 40


# ------------------------------------------------------------------------------ failed starts


def test_a_run_failing_before_its_first_write_leaves_no_trace(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="simulated bad parameter"):
        protect(FailingNoise(random_state=BIG_SEED), f"folder:{root}", out)
    assert not out.exists() and not journal_path(out).exists()
    assert protect(GaussianNoise(random_state=BIG_SEED), f"folder:{root}", out).done == 4


def test_bad_parameters_and_fit_data_of_another_layout_are_refused_before_any_write(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    other = make_folder(tmp_path / "other", 4, size=6)  # 6x6 images: not the 8x8 of the data
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="parameter sigma"):
        protect(GaussianNoise(sigma=float("nan"), random_state=BIG_SEED), f"folder:{root}", out)
    assert not out.exists() and not journal_path(out).exists()
    with pytest.raises(InvalidInputError, match="image size differ"):
        protect(methods.create("visualmixer", random_state=BIG_SEED), f"folder:{root}", out,
                fit_data=f"folder:{other}")
    assert not out.exists() and not journal_path(out).exists()


def test_resume_starts_afresh_only_where_nothing_is_in_the_way(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    assert protect(GaussianBlur(), f"folder:{root}", tmp_path / "new", resume=True).done == 4
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="no run to resume"):
        protect(GaussianBlur(), f"folder:{root}", tmp_path / "mine", resume=True)


def test_a_failed_force_keeps_the_earlier_run_and_its_state(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    out = tmp_path / "out"
    protect(GaussianNoise(random_state=BIG_SEED), f"folder:{root}", out)
    before, journal = snapshot(out), journal_path(out).read_bytes()
    with pytest.raises(InvalidInputError, match="simulated bad parameter"):
        protect(FailingNoise(random_state=BIG_SEED), f"folder:{root}", out, force=True)
    assert snapshot(out) == before and journal_path(out).read_bytes() == journal
    assert protect(GaussianNoise(random_state=BIG_SEED), f"folder:{root}", out, resume=True).done == 0


# ---------------------------------------------------------------------------------- permissions


def test_outputs_follow_the_umask_and_the_state_is_private(tmp_path):
    root = make_folder(tmp_path / "in", 4)
    old = os.umask(0o022)
    try:
        protect(Veil(steps=1, local_epochs=1, random_state=BIG_SEED), f"folder:{root}", tmp_path / "out")
    finally:
        os.umask(old)
    out = tmp_path / "out"
    for path in [out / "manifest.json", *out.rglob("*.png")]:
        assert path.stat().st_mode & 0o777 == 0o644, path
    for path in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        assert path.stat().st_mode & 0o777 == 0o755, path
    state = RunState(out)
    assert state.folder.stat().st_mode & 0o777 == 0o700 and state.root.stat().st_mode & 0o777 == 0o700
    for path in (state.journal, state.fitted, state.lock_path):
        assert path.stat().st_mode & 0o777 == 0o600, path


# ---------------------------------------------------------------------------------- resume state


def test_resume_reloads_the_fitted_state_instead_of_fitting_again(tmp_path, digits_train, monkeypatch):
    ds = digits_train.subset(slice(0, 96))
    ref, out = tmp_path / "ref", tmp_path / "out"
    params = {"steps": 3, "local_epochs": 1, "random_state": BIG_SEED}
    protect(Veil(**params), ds, ref, batch_size=32)
    undo = crash_on_third_batch(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        protect(Veil(**params), ds, out, batch_size=32)
    undo()
    header = next(read_journal(journal_path(out)))
    assert str(BIG_SEED) not in json.dumps(header) and header["seed_check"] and header["seed_salt"]
    saved = RunState(out).fitted.read_bytes()  # the fitted state is saved without the seed
    assert BIG_SEED.to_bytes(8, "little") not in saved and str(BIG_SEED).encode() not in saved

    def no_refit(self, images, labels=None):
        raise AssertionError("resume fitted again")

    monkeypatch.setattr(Veil, "fit", no_refit)
    resumed = Veil(**params)
    summary = protect(resumed, ds, out, batch_size=32, resume=True)
    assert summary.already_done == 64 and summary.done == 32
    assert fitted_fingerprint(resumed) == header["fitted"] and resumed.random_state == BIG_SEED
    images = {k: v for k, v in snapshot(out).items() if k != "manifest.json"}
    assert images == {k: v for k, v in snapshot(ref).items() if k != "manifest.json"}  # whole batches: same bytes


def test_resume_refuses_a_saved_state_of_other_parameters(tmp_path, digits_train, monkeypatch):
    ds = digits_train.subset(slice(0, 64))
    out = tmp_path / "out"
    undo = crash_on_third_batch(monkeypatch)
    with pytest.raises(RuntimeError):
        protect(Veil(steps=2, local_epochs=1, random_state=BIG_SEED), ds, out, batch_size=16)
    undo()
    with pytest.raises(InvalidInputError, match="cannot resume"):
        protect(Veil(steps=3, local_epochs=1, random_state=BIG_SEED), ds, out, batch_size=16, resume=True)


def test_state_lives_outside_out_and_under_the_configured_root(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "in", 2)
    monkeypatch.setenv("PRIVIS_STATE_DIR", str(tmp_path / "state"))
    assert state_root() == tmp_path / "state"
    protect(GaussianBlur(), f"folder:{root}", tmp_path / "out")
    assert journal_path(tmp_path / "out").is_relative_to(tmp_path / "state")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0", "c1", "manifest.json"]
    with pytest.raises(InvalidInputError, match="lies inside the output folder"):
        protect(GaussianBlur(), f"folder:{root}", tmp_path / "o2", state_dir=tmp_path / "o2" / "s")


def test_a_guessable_seed_is_warned_about():
    from privis.engine.run import seed_warning

    assert "guessable" in seed_warning(GaussianNoise(random_state=7))
    assert seed_warning(GaussianNoise(random_state=2**48 - 1)) is not None
    assert seed_warning(GaussianNoise(random_state=BIG_SEED)) is None
    assert seed_warning(GaussianNoise()) is None
    assert seed_warning(GaussianBlur()) is None


# ------------------------------------------------------------------------- nothing in OUT leaks


def _cheap(name: str, tmp_path: Path) -> tuple[methods.Protector, bytes | None]:
    """A cheap instance of method ``name`` (and the key bytes when it uses a key file)."""
    if name == "veil":
        return Veil(steps=2, local_epochs=1, random_state=BIG_SEED), None
    if name == "perturbation":
        return methods.create(name, width=4, epochs=1, classifier_epochs=1, batch_size=64, use_aux=False,
                              random_state=BIG_SEED), None
    if name == "fsap":
        return methods.create(name, N=3, k=1, identity_epochs=1, random_state=BIG_SEED), None
    if name == "latent-anonymizer":
        return methods.create(name, codec_epochs=1, codec_base=4, codec_steps=2, identity_epochs=1,
                              attribute_epochs=1, iterations=2, decode_steps=1, random_state=BIG_SEED), None
    if name == "visualmixer":
        from privis.methods.visualmixer import generate_key

        key = generate_key(tmp_path / "keys" / "owner.key")
        return methods.create(name, key_file=str(key), random_state=BIG_SEED), key.read_bytes()
    return methods.create(name, random_state=BIG_SEED), None


def _secret_tensors(protector: methods.Protector) -> list[bytes]:
    """Raw bytes of the fitted tensors (model weights, ...) that must never reach OUT."""
    found: list[bytes] = []
    for key, value in vars(protector).items():
        if not key.endswith("_") or key.startswith("_"):
            continue
        tensors = (value.state_dict().values() if isinstance(value, nn.Module)
                   else [value] if isinstance(value, torch.Tensor) else [])
        for t in tensors:
            if t.is_floating_point() and t.numel() >= 8:
                found.append(t.detach().cpu().float().flatten()[:8].numpy().tobytes())
    return found


@pytest.mark.parametrize("name", sorted(methods.available()))
def test_a_finished_output_folder_holds_no_secret_and_no_owner_path(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVIS_STATE_DIR", str(tmp_path / "state"))
    images = pdata.load("digits:train[:24]")
    root = tmp_path / "owner" / "digits"
    pdata.write_folder(images, root)
    protector, key = _cheap(name, tmp_path)
    out = tmp_path / "shared" / "out"
    protect(protector, f"folder:{root}", out, batch_size=8)
    seed = str(BIG_SEED).encode()
    needles = {
        "absolute path": [str(tmp_path).encode(), str(Path.home()).encode() + b"/", str(root).encode()],
        "seed": [seed, f"{BIG_SEED:x}".encode(), f"{BIG_SEED:X}".encode()],
        "seed hash": [hashlib.sha256(b"privis-seed:" + seed).hexdigest().encode(),
                      hashlib.sha256(seed).hexdigest().encode()],
        "state": [str(tmp_path / "state").encode(), b"seed_check", b"seed_salt", b"seed_fingerprint"],
        "fitted secret": _secret_tensors(protector),
    }
    if key is not None:
        needles["key"] = [key, key.hex().encode(), key.hex().upper().encode(), b"owner.key"]
    assert (out / "manifest.json").is_file()
    for path in out.rglob("*"):
        blob = path.as_posix().encode() if path.is_dir() else path.read_bytes()
        assert b"privis-seed" not in blob
        for what, values in needles.items():
            for value in values:
                assert value not in path.relative_to(out).as_posix().encode(), (what, path)
                if path.is_file():
                    assert value not in blob, (what, path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["items"]) == 24 and all("id" in it for it in manifest["items"])
    assert manifest["extra"]["run_id"] and "random_state" not in manifest["extra"]["params"]


def test_state_files_are_written_in_time_for_a_killed_run(tmp_path):
    """A run killed mid-way leaves its journal in the state folder, and OUT no journal at all."""
    root = make_folder(tmp_path / "in", 60)
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "from privis.engine import protect\n"
        "from privis.methods.baselines import GaussianBlur\n"
        "class Slow(GaussianBlur):\n"
        "    name = 'blur'\n"
        "    def transform(self, images, labels=None):\n"
        "        time.sleep(0.2); return super().transform(images, labels)\n"
        f"protect(Slow(), 'folder:{root}', sys.argv[1], batch_size=4)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal_path(out).exists() and '"kind":"item"' in
                                                journal_path(out).read_text()):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert journal_path(out).exists()
    assert not [p for p in out.rglob("*") if p.suffix in (".jsonl", ".json")]
    assert protect(GaussianBlur(), f"folder:{root}", out, resume=True, batch_size=4).already_done >= 4


def test_resume_after_a_kill_reloads_the_fitted_veil(tmp_path, monkeypatch):
    """The GPU case on any device: a killed Veil run resumed with the fitted state it saved, never refitted."""
    root = tmp_path / "in"
    pdata.write_folder(pdata.load("digits:train[:96]"), root)
    out = tmp_path / "out"
    params = f"steps=2, local_epochs=1, random_state={BIG_SEED}"
    code = (
        "import sys, time\n"
        "from privis.engine import protect\n"
        "from privis.methods.veil import Veil\n"
        "real = Veil.transform\n"
        "def slow(self, images, labels=None):\n"
        "    time.sleep(0.3); return real(self, images, labels)\n"
        "Veil.transform = slow\n"
        f"protect(Veil({params}), 'folder:{root}', sys.argv[1], batch_size=8)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal_path(out).exists() and journal_path(out).read_text().count('"kind":"item"') >= 16:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    header = next(read_journal(journal_path(out)))
    finished = journal_path(out).read_text().count('"kind":"item"')
    assert 16 <= finished < 96 and RunState(out).fitted.is_file()

    def no_refit(self, images, labels=None):
        raise AssertionError("resume fitted again")

    monkeypatch.setattr(Veil, "fit", no_refit)
    resumed = Veil(steps=2, local_epochs=1, random_state=BIG_SEED)
    summary = protect(resumed, f"folder:{root}", out, batch_size=8, resume=True)
    assert summary.done + summary.already_done == 96 and summary.already_done == finished
    assert fitted_fingerprint(resumed) == header["fitted"]
    assert len(pdata.load(f"folder:{out}")) == 96
