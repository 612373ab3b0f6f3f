"""Keyspace of VisualMixer shuffles in bits (Sec. V-C)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privis.privacy import keyspace_bits, keyspace_bits_from_counts, keyspace_bits_paper, log2_factorial


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
