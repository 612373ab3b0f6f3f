"""The one glossary the terminal summary and the HTML report share: names, units and directions of the figures,
how a value is written, and the cautions for quick, small and near-chance runs."""

from __future__ import annotations

import math

import pytest

from privis.report.glossary import (
    ARROWS,
    GLOSSARY,
    GROUPS,
    MUST_BE_HIGH,
    PRIVACY,
    SMALL_RUN,
    SPEED,
    UTILITY,
    cautions,
    fmt,
    label,
    term,
)
from privis.results import Result


def test_every_term_is_well_formed():
    for key, t in GLOSSARY.items():
        assert t.label and t.label != key and t.group in GROUPS and t.better in ARROWS, key
    # the accuracies a run needs high are accuracies, none of which is better low
    assert all(GLOSSARY[k].unit == "%" and GLOSSARY[k].better != "lower" for k in MUST_BE_HIGH)


@pytest.mark.parametrize(("key", "unit", "arrow", "group"), [
    ("images_per_second", "images/s", "↑", SPEED),
    ("psnr_mean", "dB", "↓", PRIVACY),
    ("veil.filters.ssim_mean", "", "↓", PRIVACY),  # the last dotted part is looked up
    ("utility", "%", "↑", UTILITY),
    ("baseline_acc_protected", "%", "", UTILITY),  # low is protection working, high is utility: no direction
    ("iss_mean", "", "↓", PRIVACY),
    ("fppsr", "%", "↑", PRIVACY),
    ("fd_privis", "", "↓", UTILITY),  # realism of the protected images, not privacy
    ("epsilon_claimed", "", "↓", PRIVACY),
    ("epsilon_post_processing_tight", "", "↓", PRIVACY),
    ("epsilon_rdp", "", "↓", PRIVACY),  # patterns cover keys the glossary does not name
    ("fetch_seconds", "s", "↓", SPEED),
    ("val_acc", "%", "↑", UTILITY),
    ("aux_acc_attack_free", "%", "↓", PRIVACY),
])
def test_terms_name_unit_direction_and_section(key, unit, arrow, group):
    t = term(key)
    assert (t.unit, t.arrow, t.group) == (unit, arrow, group)


def test_labels_keep_the_prefix_and_unknown_keys_show_as_they_are():
    assert term("veil.filters.ssim_mean") == GLOSSARY["ssim_mean"]
    assert label("veil.utility") == f"veil · {GLOSSARY['utility'].label} ↑"
    assert label("epsilon_claimed") == "ε (claimed, needs a contractive codec) ↓"
    assert label("baseline_acc_protected") == GLOSSARY["baseline_acc_protected"].label  # no arrow without one
    assert label("a.something_new") == "a.something_new" and term("something_new").label == "something_new"


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.8532, "%", "85.3 %"), (580249.3, "images/s", "580,249 images/s"), (15.137, "dB", "15.14 dB"),
    (391.32, "MiB", "391.32 MiB"), (0.123456, "", "0.1235"), (0.5, "", "0.5000"), (3e-6, "s", "3.00e-06 s"),
    (0.0, "", "0.0000"), (-2.5, "", "-2.5000"), (1234567.0, "", "1,234,567"), (1200, "images", "1,200 images"),
    (None, "", "—"), (float("nan"), "", "nan"), (float("inf"), "s", "inf"), (True, "", "True"), ("veil", "", "veil"),
    (2.5, "%", "2.5000"),  # not a fraction: shown as it is
])
def test_fmt(value, unit, text):
    assert fmt(value, unit) == text


GOOD = {"baseline_acc_original": 0.8}
BIG = {"train_size": 5000, "test_size": 2000}


@pytest.mark.parametrize(("config", "summary", "expected"), [
    ({"quick": True, **BIG}, GOOD, ["Quick run"]),
    ({"train_size": 200, "test_size": 100}, GOOD, ["Small run: 200 training / 100 test images"]),
    ({"quick": True, "train_size": 200, "test_size": 100}, GOOD, ["Quick run", "Small run"]),
    ({"protocol": {"train_size": 10000, "test_size": 10000}}, GOOD, []),  # evaluate nests its sizes
    ({"protocol": {"train_size": 200, "test_size": 5000}}, GOOD, ["Small run: 200 training / 5,000 test"]),
    ({"train_size": 10000}, {**GOOD, "train_size": 1347, "test_size": 450}, ["Small run: 1,347 training"]),  # used
    ({"train_size": SMALL_RUN, "test_size": SMALL_RUN}, GOOD, []),
    ({}, GOOD, []),
])
def test_quick_and_small_runs_are_cautioned(config, summary, expected):
    said = cautions(Result("x", summary=summary, config=config))
    assert len(said) == len(expected) and all(s.startswith(e) for s, e in zip(said, expected, strict=True)), said


@pytest.mark.parametrize("test", [100, 450, 999])
def test_a_small_run_states_the_standard_error_of_an_accuracy(test):
    said = cautions(Result("x", summary=GOOD, config={"train_size": 5000, "test_size": test}))
    assert f"±{100 * 0.5 / math.sqrt(test):.1f} points (one standard error)" in said[0]


def near(summary, **config):
    """The near-chance caution for ``summary`` on a big run of ``config``, or None."""
    said = [s for s in cautions(Result("x", summary=summary, config={**BIG, **config}))
            if s.startswith("Accuracy near chance")]
    return said[0] if said else None


def test_only_the_accuracies_that_must_be_high_are_checked_for_chance():
    line = near({"baseline_acc_original": 0.82, "protected_acc_original": 0.13, "protected_acc_protected": 0.11},
                num_classes=10)
    assert line is not None and line.startswith("Accuracy near chance (10.0 % for 10 classes): ")
    assert "protected_acc (the better of on originals and on protected) 13.0 %" in line
    assert "baseline_acc_original" not in line
    board = near({"veil.baseline_acc_original": 0.83, "veil.utility": 0.12, "blur.utility": 0.7}, num_classes=10)
    assert board is not None and "veil.utility 12.0 %" in board and "blur" not in board
    for key in ("target_acc_original", "aux_acc_original"):  # other models trained and tested on originals
        assert near({key: 0.1}, num_classes=10) is not None, key
    # protection working is not a failed run: the original model failing on protected images, an attack failing
    assert near({"baseline_acc_original": 0.82, "baseline_acc_protected": 0.1, "target_acc_protected": 0.1,
                 "protected_acc_protected": 0.8, "aux_acc": 0.11, "aux_acc_protected": 0.1}, num_classes=10) is None


def test_chance_and_its_margin():
    # two classes: chance 0.5, margin 0.05 on a big test set
    assert near({"protected_acc_original": 0.53}, num_classes=2) is not None
    assert near({"protected_acc_original": 0.56}, num_classes=2) is None
    # a small test set widens the margin to two standard errors of a guessing model: 2 sqrt(0.25 / 100) = 0.1
    assert near({"utility": 0.58}, num_classes=2, test_size=100) is not None
    assert near({"utility": 0.61}, num_classes=2, test_size=100) is None
    # a run that does not record its classes is taken to have 10, and the caution says it assumed so
    assumed = near({"utility": 0.12})
    assert assumed is not None and "10 classes, assumed" in assumed
    assert near({"utility": 0.12}, num_classes=100) is None
    many = near({f"m{i}.utility": 0.1 for i in range(7)}, num_classes=10)
    assert many is not None and "m3.utility" in many and "m4.utility" not in many and "and 3 more" in many
