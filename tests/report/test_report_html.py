"""The report for people: glossary names, units and directions, grouped summary, folded flat keys, cautions,
verdicts against targets, wide tables transposed, and a Result JSON that old readers still parse."""

from __future__ import annotations

import json

import pytest

from privis.report import render_html
from privis.report.html import GLOSSARY, SPEED, UTILITY, cautions, fmt, term, verdicts
from privis.results import Result


def test_glossary_names_units_and_directions():
    assert term("images_per_second") == GLOSSARY["images_per_second"]
    assert (term("images_per_second").unit, term("images_per_second").arrow) == ("images/s", "↑")
    assert (term("psnr_mean").unit, term("psnr_mean").arrow) == ("dB", "↓")
    assert term("veil.filters.ssim_mean") == term("ssim_mean")  # the last dotted part is looked up
    assert term("epsilon_rdp").better == "lower" and term("fetch_seconds").group == SPEED
    assert term("val_acc").group == UTILITY and term("aux_acc_attack_free").better == "lower"
    assert term("something_new").label == "something_new"  # unknown keys show as they are


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.8532, "%", "85.3 %"), (580249.3, "images/s", "580,249 images/s"), (15.137, "dB", "15.14 dB"),
    (0.123456, "", "0.1235"), (0.5, "", "0.5000"), (3e-6, "s", "3.00e-06 s"),
    (None, "", "—"), (1200, "images", "1,200 images"), (float("nan"), "", "nan"),
    (2.5, "%", "2.5000"),  # not a fraction: shown as it is
])
def test_fmt(value, unit, text):
    assert fmt(value, unit) == text


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
    assert "Throughput ↑" in page and "580,249 images/s" in page and "81.0 %" in page
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


def test_cautions_for_quick_small_and_near_chance_runs():
    assert cautions(_result()) == []
    quick = Result("q", summary={"protected_acc_original": 0.12, "baseline_acc_protected": 0.1},
                   config={"quick": True, "train_size": 200, "test_size": 60})
    said = cautions(quick)
    assert len(said) == 3 and said[0].startswith("Quick run") and "200 training" in said[1]
    # only accuracies meant to be high count: a baseline failing on protected images is the point
    assert "protected_acc_original" in said[2] and "baseline_acc_protected" not in said[2]
    assert cautions(Result("k", summary={"protected_acc_original": 0.53}, config={"num_classes": 2}))
    assert not cautions(Result("k", summary={"protected_acc_original": 0.6}, config={"num_classes": 2}))
    assert 'role="alert"' in render_html(quick)


def test_verdicts_follow_the_direction_of_each_key():
    result = _result(targets={"protected_acc_original": 0.85, "ssim_mean": 0.5, "missing": 1.0})
    got = {v["label"]: v["met"] for v in verdicts(result)}
    assert got == {"Service model on original images ↑": False, "Mean |SSIM| to the originals ↓": True,
                   "missing": False}
    page = render_html(result)
    assert "✘ missed" in page and "✔ met" in page and "(target ≥ 85.0 %)" in page


def test_headline_and_targets_are_optional_in_json():
    old = json.loads(Result("r").to_json())
    assert sorted(old) == ["config", "name", "notes", "seconds", "summary", "tables", "versions"]
    new = json.loads(Result("r", headline="What was measured", targets={"ssim_mean": 0.2}).to_json())
    assert new["headline"] == "What was measured" and new["targets"] == {"ssim_mean": 0.2}
    assert "<h1>What was measured</h1>" in render_html(Result("r", headline="What was measured"))
    assert "<h1>evaluate-x on digits</h1>" in render_html(_result())
