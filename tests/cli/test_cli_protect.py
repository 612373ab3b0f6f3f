"""``privis protect`` and ``privis bench`` end to end on digits and on a small folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from privis import data as pdata
from privis.cli.main import app

runner = CliRunner()


def make_folder(root: Path, n: int, size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / ("cat" if i % 2 else "dog") / "x"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"p{i:03d}.jpg", quality=90)
    return root


def test_protect_folder_workers_resume_force(tmp_path):
    root = make_folder(tmp_path / "in", 20)
    out = tmp_path / "out"
    base = ["protect", "noise", "--data", f"folder:{root}", "--out", str(out), "--seed", "3", "--batch-size", "8"]
    result = runner.invoke(app, base + ["--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "done 20, already done 0, skipped 0, failed 0" in result.output and "images/s" in result.output
    outs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert outs == sorted(p.relative_to(root).with_suffix(".png").as_posix() for p in root.rglob("*.jpg"))
    back = pdata.load(f"folder:{out}")
    assert len(back) == 20 and back.shape == (3, 12, 12)

    again = runner.invoke(app, base)
    assert again.exit_code == 2 and "--resume" in again.output and "--force" in again.output
    resumed = runner.invoke(app, base + ["--resume"])
    assert resumed.exit_code == 0 and "already done 20" in resumed.output
    forced = runner.invoke(app, base + ["--force"])
    assert forced.exit_code == 0 and "done 20, already done 0" in forced.output
    inside = runner.invoke(app, ["protect", "blur", "--data", f"folder:{root}", "--out", str(root / "cat" / "o")])
    assert inside.exit_code == 2 and "never overwrite inputs" in inside.output


def test_protect_bad_file_and_skip_bad(tmp_path):
    root = make_folder(tmp_path / "in", 6)
    (root / "dog" / "x" / "p004.jpg").write_bytes(b"garbage")
    stop = runner.invoke(app, ["protect", "blur", "--data", f"folder:{root}", "--out", str(tmp_path / "a")])
    assert stop.exit_code == 2 and "p004.jpg" in stop.output and "failed 1" in stop.output  # bad file: bad input
    skip = runner.invoke(app, ["protect", "blur", "--data", f"folder:{root}", "--out", str(tmp_path / "b"),
                               "--skip-bad"])
    assert skip.exit_code == 0 and "done 5" in skip.output and "skipped 1" in skip.output


def test_protect_jpeg_needs_allow_lossy(tmp_path):
    base = ["protect", "noise", "--data", "digits:train[:30]", "--out", str(tmp_path / "j"), "--seed", "1",
            "--format", "jpeg"]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and "refusing lossy JPEG" in refused.output and "PSNR" in refused.output
    ok = runner.invoke(app, base + ["--allow-lossy"])
    assert ok.exit_code == 0 and "JPEG changed protected pixels by up to" in ok.output
    assert len(list((tmp_path / "j").rglob("*.jpg"))) == 30


def test_protect_veil_with_fit_data_on_digits(tmp_path):
    out = tmp_path / "veil"
    result = runner.invoke(app, ["protect", "veil", "--data", "digits:test[:40]", "--fit-data", "digits:train[:300]",
                                 "--out", str(out), "--seed", "0", "--param", "steps=3", "--param", "local_epochs=1",
                                 "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 40 and manifest["extra"]["method"] == "veil"
    assert manifest["extra"]["ids_mode"] == "batch-seed"
    original = pdata.load("digits:test[:40]")
    back = pdata.load(f"folder:{out}")
    assert not np.allclose(back.images.numpy(), original.images.numpy(), atol=0.05)


def test_protect_ray_engine_unknown_engine_is_usage_error(tmp_path):
    result = runner.invoke(app, ["protect", "blur", "--data", "digits:train[:4]", "--out", str(tmp_path / "o"),
                                 "--engine", "spark"])
    assert result.exit_code == 2 and "unknown engine" in result.output


def test_bench_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "pixelate", "--size", "28x28-grey", "--n", "64", "--threads", "1",
                                 "--json", str(path)])
    assert result.exit_code == 0, result.output
    row = json.loads(path.read_text())["tables"]["throughput"][0]
    assert row["method"] == "pixelate" and row["n"] == 64 and row["images_per_second"] > 0 and row["peak_rss_mb"] > 50
    assert abs(row["images_per_second"] * row["seconds"] - row["n"]) < 1e-6 * row["n"]  # the rate of the images timed
    assert "pixelate" in result.output


def test_bench_runs_every_veil_step_on_synthetic_images(tmp_path):
    path = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "veil", "--size", "28x28-grey", "--n", "4", "--threads", "1",
                                 "--json", str(path)])
    assert result.exit_code == 0, result.output
    row = json.loads(path.read_text())["tables"]["throughput"][0]
    assert row["diagnostics"]["gia_steps_mean"] == 300  # noise meets xi at once; the bench times all T steps
    assert row["measure_params"] == {"stop_loss": -1e30}


def _bad_cli_values(spec) -> list[str]:
    """Bad ``--param`` strings of every kind the issue reported, for one declaration."""
    if spec.kind in ("int", "float"):
        values = ["abc", "nan", "inf", "1e308", "-1"]
        if spec.kind == "int":
            values += ["2.5", "1e11"]
        return [v for v in values if v in ("abc", "nan", "inf", "2.5") or not spec.is_valid(float(v) if
                                                                                            spec.kind == "float"
                                                                                            else int(float(v)))]
    return {"bool": ["maybe"], "choice": ["maybe"], "model": ["nope.txt"]}.get(spec.kind, [])


def _cli_cases() -> list[tuple[str, str, str]]:
    from privis import methods

    cases = []
    for name, cls in methods.available().items():
        for key, spec in cls.param_specs.items():
            cases += [(name, key, raw) for raw in _bad_cli_values(spec)]
        cases.append((name, "no_such_knob", "1"))
    return cases


def test_every_bad_param_is_exit_2_with_one_line_naming_method_and_parameter(tmp_path):
    """Every kind of bad --param value (abc, nan, inf, 1e308, -1, 1e11 for an int, 'maybe' for a bool or a
    choice, an unknown name) of every declared parameter of every method: exit 2, one stderr line naming the
    method and the parameter, no traceback, and nothing written."""
    out = tmp_path / "out"
    cases = _cli_cases()
    assert len(cases) > 150
    for method, key, raw in cases:
        result = runner.invoke(app, ["protect", method, "--data", "digits:test[:5]", "--out", str(out),
                                     "--param", f"{key}={raw}"])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (method, key, raw, result.output)
        assert len(lines) == 1 and "Traceback" not in result.output, (method, key, raw, result.output)
        assert method in lines[0] and key in lines[0], (method, key, raw, lines[0])
        assert not out.exists()


def test_issue_reproductions_end_in_one_line_not_a_traceback(tmp_path):
    """The exact commands of the report, in a real process: one stderr line, exit 2, in about a second."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    script = "import sys; from privis.cli.main import app; sys.argv[0] = 'privis'; app()"
    for method, pair, expected in [("blur", "sigma=abc", "sigma"), ("blur", "sigma=nan", "sigma"),
                                   ("noise", "sigma=inf", "sigma"), ("blur", "sigma=1e308", "sigma"),
                                   ("pixelate", "block=1e11", "block"),
                                   ("visualmixer", "channel_shuffle=maybe", "channel_shuffle")]:
        proc = subprocess.run([sys.executable, "-c", script, "protect", method, "--data", "digits:test[:5]",
                               "--out", str(out), "--param", pair], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"privis: error: {method}: parameter {expected} must be"), proc.stderr


def test_instahide_huge_k_is_refused_before_work_with_the_estimate(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr("privis.methods.base.available_memory_bytes", lambda device="cpu": 16 * 1024**3)
    t0 = time.perf_counter()
    result = runner.invoke(app, ["protect", "instahide", "--data", "digits:test[:300]", "--out",
                                 str(tmp_path / "out"), "--param", "k=1000000"])
    assert result.exit_code == 2, result.output
    assert "instahide k=1000000 on 256 images of 1x8x8 needs about" in result.stderr
    assert "more than the 16.0 GiB available" in result.stderr and "Traceback" not in result.output
    assert time.perf_counter() - t0 < 5.0


def test_methods_command_lists_each_parameter_with_type_range_and_default():
    from privis import methods

    for name, cls in methods.available().items():
        result = runner.invoke(app, ["methods", name])
        assert result.exit_code == 0, result.output
        for row in cls.param_table():
            assert f"{row['name']}" in result.output
            assert f"{row['type']}; default {row['default']}" in result.output
    shown = runner.invoke(app, ["methods", "pixelate"]).output
    assert "block  an integer in [1, 65536]; default 4" in shown
    assert "privis methods METHOD" in runner.invoke(app, ["protect", "--help"]).output
    unknown = runner.invoke(app, ["methods", "nope"])
    assert unknown.exit_code == 2 and "unknown method 'nope'" in unknown.stderr


def test_a_link_inside_the_input_to_the_output_folder_is_never_read(tmp_path):
    """The check of output paths compares real paths; a link inside the input tree that leads to OUT would
    otherwise make the run read (and protect again) its own outputs while writing them."""
    src = make_folder(tmp_path / "src", 6)
    out = tmp_path / "out"
    out.mkdir()
    cls = sorted(p for p in src.iterdir() if p.is_dir())[0]
    (cls / "link").symlink_to(out, target_is_directory=True)
    result = runner.invoke(app, ["protect", "blur", "--data", f"folder:{src}", "--out", str(out), "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert "leads into the output folder" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(written) == 6 and not any("link" in p for p in written)
    assert "found 7: done 6" in result.output and "ignored 1" in result.output
