"""The short terminal summary: at most a screenful, the glossary's names and units, the cautions as warnings,
an attack's verdict against its baseline, and where all the figures went (the glossary, the value format and
the cautions themselves are tested in tests/report/test_report_glossary.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privis.cli.main import app
from privis.cli.summary import MAX_ROWS, summary_lines, verdict
from privis.report.glossary import label
from privis.results import Result

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
#: Most lines a command's summary may print (the brief's "about 25", a screen).
SCREEN = 25


def stored(name: str, **config: object) -> Result:
    """A Result measured here (``docs/results/NAME.json``), its config extended by ``config``."""
    doc = json.loads((ROOT / "docs" / "results" / f"{name}.json").read_text())
    return Result(doc["name"], summary=doc["summary"], tables=doc.get("tables", {}),
                  config={**doc["config"], **config}, seconds=doc.get("seconds", 0.0))


def test_the_leaderboard_is_one_row_per_method_not_one_line_per_figure():
    result = stored("leaderboard")
    assert len(result.summary) > 400  # what the terminal printed before, one line each
    lines = summary_lines(result)
    assert len(lines) == len(result.tables["leaderboard"]) + 2  # header, one per method, legend
    veil = next(line for line in lines if line.startswith("veil "))
    assert "0.7190" in veil and "0.5927 (learned-inversion)" in veil  # utility, worst |SSIM| with its attack


def test_the_demo_is_one_row_per_method_not_its_flat_keys():
    rows = [{"method": "blur", "deployment": "protected", "utility": 0.736, "leakage_ssim": 0.7349,
             "leakage_attack": "filters", "images_per_second": 250435.3, "note": ""},
            {"method": "veil", "deployment": "original", "utility": 0.716, "leakage_ssim": 0.5242,
             "leakage_attack": "learned-inversion", "images_per_second": 167.9, "note": "slow"}]
    summary = {"baseline_acc_original": 0.782, "blur.utility": 0.736, "blur.leakage_ssim": 0.7349,
               "veil.utility": 0.716, "veil.leakage_ssim": 0.5242}
    lines = summary_lines(Result("demo", summary=summary, tables={"methods": rows}))
    assert len(lines) == len(rows) + 2 and not any("blur.utility" in line for line in lines)
    veil = next(line for line in lines if line.startswith("veil "))
    assert "original" in veil and "0.7160" in veil and "0.5242 (learned-inversion)" in veil and veil.endswith("slow")
    assert "0.7820" in lines[-1]  # the baseline the utilities compare with


def test_long_summaries_are_cut_and_say_how_much_was_left_out():
    result = Result("x", summary={f"k{i}": float(i) for i in range(40)})
    lines = summary_lines(result)
    assert len(lines) == MAX_ROWS + 1 and lines[-1].strip() == f"... and {40 - MAX_ROWS} more figures"


def test_rows_use_the_glossary_names_and_units():
    lines = summary_lines(Result("x", summary={"veil.utility": 0.7, "peak_rss_mb": 391.32, "new_key": 2}))
    assert [line.split("  ")[-1].strip() for line in lines] == ["70.0 %", "391.32 MiB", "2"]
    assert lines[0].strip().startswith(label("veil.utility")) and lines[2].strip().startswith("new_key")


@pytest.mark.parametrize(("summary", "start", "end"), [
    ({"ssim_mean": 0.41, "ssim_protected": 0.05}, "recovered mean |SSIM| 0.4100 vs 0.0500", "recovers structure"),
    ({"ssim_mean": 0.48, "ssim_protected": 0.49}, "recovered mean |SSIM| 0.4800 vs 0.4900",
     "did not beat the baseline"),
    ({"ssim_mean": 0.17, "ssim_protected": 0.02, "ssim_aux_class_means": 0.3}, "representatives'",
     "did not beat the baseline"),
    ({"auc": 0.71}, "membership AUC 0.7100 vs 0.5 for guessing", "tells members from non-members"),
    ({"auc": 0.53}, "membership AUC 0.5300 vs 0.5", "did not beat the baseline"),
])
def test_an_attack_verdict_compares_with_what_the_attacker_had_without_it(summary, start, end):
    line = verdict(Result("attack-x-y", summary=summary))
    assert line is not None and line.startswith(start) and line.endswith(end)
    assert verdict(Result("evaluate-blur", summary={"ssim_mean": 0.3})) is None


def test_the_experiment_command_prints_a_screenful_with_the_quick_warning(monkeypatch):
    from privis import experiments

    class Board:
        @staticmethod
        def run(**kwargs: object) -> Result:
            return stored("leaderboard", quick=kwargs["quick"], num_classes=10)

    monkeypatch.setattr(experiments, "get", lambda name: Board)
    result = runner.invoke(app, ["experiment", "leaderboard", "--quick"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) <= SCREEN, result.output
    assert any(line.startswith("warning: Quick run: ") for line in lines), result.output
    assert lines[-1].endswith("add --json FILE or --report FILE")


def test_evaluate_warns_about_accuracies_near_chance_and_names_its_files(monkeypatch, tmp_path):
    import privis.experiments.evaluate as ev

    canned = Result("evaluate-blur", summary={"baseline_acc_original": 0.12, "protected_acc_protected": 0.07,
                                              "ssim_mean": 0.26, "images_per_second": 152421.5},
                    config={"protocol": {"train_size": 200, "test_size": 100, "num_classes": 10}})
    monkeypatch.setattr(ev, "evaluate", lambda method, cfg: canned)
    result = runner.invoke(app, ["evaluate", "blur", "--data", "digits", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "warning: Small run: 200 training / 100 test images" in out
    assert "warning: Accuracy near chance (10.0 % for 10 classes)" in out
    assert "Protection speed ↑" in out and "152,422 images/s" in out
    assert f"wrote {tmp_path / 'e.json'}" in out and out.rstrip().endswith(f"in {tmp_path / 'e.json'}")


def test_attack_says_whether_it_beat_its_baseline(monkeypatch):
    import privis.experiments.leaderboard as lb

    monkeypatch.setattr(lb, "run_attack", lambda *a, **k: stored("visualmixer_digits_inversion_capped"))
    result = runner.invoke(app, ["attack", "learned-inversion", "--method", "visualmixer", "--data", "digits"])
    assert result.exit_code == 0, result.output
    assert ("verdict: recovered mean |SSIM| 0.8919 vs 0.6143 for the protected images themselves: the attack "
            "recovers structure") in result.output
    assert len(result.output.splitlines()) <= SCREEN
