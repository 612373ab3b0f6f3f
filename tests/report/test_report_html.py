"""The report for people: grouped summary, folded flat keys, the cautions as a banner, verdicts against targets,
wide tables transposed, and a Result JSON that old readers still parse (the glossary, the value format and the
cautions themselves are tested in test_report_glossary.py)."""

from __future__ import annotations

import json

from privis.report import render_html
from privis.report.glossary import label
from privis.report.html import verdicts
from privis.results import Result


def _result(**kwargs):
    summary = {"protected_acc_original": 0.81, "images_per_second": 580249.0, "ssim_mean": 0.4,
               **{f"m{i}.attack.ssim_mean": 0.1 for i in range(30)}}
    return Result("evaluate-x", summary=summary, config={"protocol": {"data": "digits", "train_size": 5000,
                                                                      "test_size": 1000}}, **kwargs)


def test_summary_is_grouped_and_flat_keys_are_folded_after_the_tables():
    page = render_html(_result(tables={"t": [{"method": "a", "utility": 0.5}]}))
    utility, speed, privacy = (page.index(f"<h3>{g}</h3>") for g in ("Utility", "Speed and memory",
                                                                      "Privacy and leakage"))
    assert utility < privacy < speed  # accuracies are not beside throughput
    assert "Protection speed ↑" in page and "580,249 images/s" in page and "81.0 %" in page
    folded = page.index("<details><summary>All 30 per-part figures")
    assert folded > page.index("<h2>t</h2>") and page.count("m0 · attack · Mean |SSIM|") == 1
    assert page.index("<summary>Configuration</summary>") > folded  # config and raw JSON at the bottom


def test_wide_short_tables_are_transposed_long_ones_scroll_in_their_box():
    wide = [{"method": m, **{f"k{i}": float(i) for i in range(12)}, "note": ""} for m in ("a", "b")]
    page = render_html(Result("r", tables={"wide": wide, "long": wide * 10}))
    transposed = page[page.index("<h2>wide</h2>"):page.index("<h2>long</h2>")]
    assert transposed.count("<tr>") == 1 + 12 and "<th class=\"s\">a</th><th class=\"s\">b</th>" in transposed
    assert page[page.index("<h2>long</h2>"):].count("<tr>") >= 21
    assert page.count('<div class="box"><table>') == 2 and ">note<" not in page  # empty columns are left out


def test_cautions_are_a_banner_at_the_top():
    quick = Result("q", summary={"protected_acc_original": 0.12},
                   config={"quick": True, "train_size": 200, "test_size": 60, "num_classes": 10})
    page = render_html(quick)
    assert page.count('role="alert"') == 3 and page.index('role="alert"') < page.index("<h2>Summary</h2>")
    assert 'role="alert"' not in render_html(_result())


def test_verdicts_follow_the_direction_of_each_key():
    result = _result(targets={"protected_acc_original": 0.85, "ssim_mean": 0.5, "missing": 1.0})
    got = {v["label"]: v["met"] for v in verdicts(result)}
    assert got == {label("protected_acc_original"): False, label("ssim_mean"): True, "missing": False}
    page = render_html(result)
    assert "✘ missed" in page and "✔ met" in page and "(target ≥ 85.0 %)" in page


def test_headline_and_targets_are_optional_in_json():
    old = json.loads(Result("r").to_json())
    assert sorted(old) == ["config", "name", "notes", "seconds", "summary", "tables", "versions"]
    new = json.loads(Result("r", headline="What was measured", targets={"ssim_mean": 0.2}).to_json())
    assert new["headline"] == "What was measured" and new["targets"] == {"ssim_mean": 0.2}
    assert "<h1>What was measured</h1>" in render_html(Result("r", headline="What was measured"))
    assert "<h1>evaluate-x on digits</h1>" in render_html(_result())
