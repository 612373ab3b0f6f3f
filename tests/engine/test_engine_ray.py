"""The Ray engine on a local 2-CPU cluster on 127.0.0.1: the same outputs as the local engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from privis.engine import journal_path, protect
from privis.methods.baselines import GaussianNoise

ray = pytest.importorskip("ray")  # the optional extra `ray` (ray[data]); installed in CI


def make_folder(root: Path, n: int, *, size: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f"im{i:04d}.png")
    return root


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def test_ray_outputs_equal_local_engine(cluster, tmp_path):
    root = make_folder(tmp_path / "in", 120)
    (root / "c1" / "broken.png").write_bytes(b"\x89PNG truncated")
    kwargs = {"batch_size": 16, "skip_bad": True}
    local = protect(GaussianNoise(random_state=11), f"folder:{root}", tmp_path / "local", **kwargs)
    remote = protect(GaussianNoise(random_state=11), f"folder:{root}", tmp_path / "ray", engine="ray", workers=2,
                     **kwargs)
    assert (local.done, local.skipped) == (remote.done, remote.skipped) == (120, 1)
    a, b = files(tmp_path / "local"), files(tmp_path / "ray")
    assert len(a) == 120 and a == b
    skipped = json.loads((tmp_path / "ray" / "manifest.json").read_text())["skipped"]
    assert skipped[0]["path"] == "c1/broken.png"
    # a resumed Ray run skips what is done: drop the last 30 journal lines and their files
    lines = journal_path(tmp_path / "ray").read_text().splitlines(keepends=True)
    items = [k for k, ln in enumerate(lines) if '"kind":"item"' in ln][-30:]
    for k in items:
        (tmp_path / "ray" / json.loads(lines[k])["path"]).unlink()
    journal_path(tmp_path / "ray").write_text("".join(ln for k, ln in enumerate(lines) if k not in set(items)))
    resumed = protect(GaussianNoise(random_state=11), f"folder:{root}", tmp_path / "ray", engine="ray", resume=True,
                      **kwargs)
    assert resumed.done == 30 and resumed.already_done == 90
    assert files(tmp_path / "ray") == a


def test_ray_keyed_run_records_the_local_tags_and_restores(cluster, tmp_path):
    from privis.engine.restore import unprotect_folder
    from privis.methods.visualmixer import VisualMixer, generate_key

    root = make_folder(tmp_path / "in", 24, size=12)
    key = generate_key(tmp_path / "k.key")  # the actors get a pickled protector without it and read the file
    protect(VisualMixer(key_file=str(key)), f"folder:{root}", tmp_path / "local", batch_size=8)
    protect(VisualMixer(key_file=str(key)), f"folder:{root}", tmp_path / "ray", engine="ray", workers=2,
            batch_size=8)
    assert files(tmp_path / "local") == files(tmp_path / "ray")

    def tags(out: Path) -> dict[str, str]:
        return {i["path"]: i["tag"] for i in json.loads((out / "manifest.json").read_text())["items"]}

    assert tags(tmp_path / "ray") == tags(tmp_path / "local") and len(tags(tmp_path / "ray")) == 24
    assert unprotect_folder(tmp_path / "ray", tmp_path / "restored", key) == 24
    restored = tmp_path / "restored"
    for rel in files(root):
        assert np.array_equal(np.asarray(Image.open(restored / rel)), np.asarray(Image.open(root / rel))), rel
