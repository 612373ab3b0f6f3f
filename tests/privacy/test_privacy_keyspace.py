"""Keyspace of VisualMixer shuffles in bits (Sec. V-C), and the keyspace analysis of every method checked
against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privis.attacks import NotApplicableError
from privis.methods import create as create_method
from privis.privacy import (
    binary_entropy,
    keyspace_analysis,
    keyspace_bits,
    keyspace_bits_from_counts,
    keyspace_bits_paper,
    log2_factorial,
)


def test_small_cases_by_hand() -> None:
    assert log2_factorial(4) == pytest.approx(math.log2(24))
    # two 2x2 regions: product 24 * 24 = 576, the paper's sum 24 + 24 = 48
    assert keyspace_bits([4, 4]) == pytest.approx(math.log2(576))
    assert keyspace_bits_paper([4, 4]) == pytest.approx(math.log2(48))
    # per-channel shuffles of 3 channels cube the product
    assert keyspace_bits([4, 4], channels=3) == pytest.approx(3 * math.log2(576))


def test_paper_claim_ws6_exceeds_128_bits() -> None:
    # Sec. V-C: "when some WS_i >= 6, N exceeds 2^128": 36! is about 2^138.
    assert keyspace_bits_paper([36]) > 128
    assert keyspace_bits_paper([25]) < 128 < keyspace_bits_paper([36])


def test_batch_counts_match_the_lists() -> None:
    counts = np.array([[2, 1, 0], [0, 0, 3]])
    sizes = [4, 16, 64]
    bits, paper = keyspace_bits_from_counts(counts, sizes, channels=1)
    assert bits[0] == pytest.approx(keyspace_bits([4, 4, 16]))
    assert paper[0] == pytest.approx(keyspace_bits_paper([4, 4, 16]))
    assert bits[1] == pytest.approx(keyspace_bits([64, 64, 64]))
    assert paper[1] == pytest.approx(keyspace_bits_paper([64, 64, 64]))


def bits(method, x, protector=None, **params):
    return keyspace_analysis(method, x, params=params, protector=protector).scores


def test_binary_entropy():
    assert binary_entropy(0.5) == 1.0 and binary_entropy(0.0) == 0.0
    assert math.isclose(binary_entropy(0.1), 0.4689955935892812)


def test_veil_mask_bits(digits_test):
    x = digits_test.images[:10]
    assert bits("veil", x, flip_ratio=0.5)["bits_mean"] == 64.0
    scores = bits("veil", x, flip_ratio=0.1)
    assert math.isclose(scores["bits_mean"], 64 * binary_entropy(0.1))
    assert math.isclose(scores["min_entropy_bits_mean"], 64 * -math.log2(0.9))


def test_visualmixer_bits_match_the_closed_form(digits_test):
    x = digits_test.images[:10]
    mixer = create_method("visualmixer", window=2, random_state=0).fit(x)
    scores = bits("visualmixer", x, protector=mixer)
    assert math.isclose(scores["bits_mean"], 16 * float(log2_factorial(4)), rel_tol=1e-9)  # 16 regions of 4 px
    assert scores["bits_at_least_128"] == 0.0
    assert mixer.diagnostics() == {}  # the analysis shuffles a copy: the given protector's figures are untouched


def test_deterministic_and_not_applicable(digits_test):
    x = digits_test.images[:10]
    assert bits("blur", x)["bits_mean"] == 0.0
    assert bits("instahide", x, k=4)["bits_mean"] == pytest.approx(64 + 3 * math.log2(10))
    with pytest.raises(NotApplicableError, match="continuous noise"):
        bits("noise", x)
