"""keyspace: bits of the secret per method, checked against closed forms."""

from __future__ import annotations

import math

import pytest

from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.keyspace import binary_entropy
from privis.methods import create as create_method
from privis.privacy import log2_factorial


def bits(method, x, protector=None, **params):
    ctx = AttackContext(method=method, params=params, protector=protector)
    return create("keyspace").run(x, x, context=ctx).scores


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


def test_deterministic_and_not_applicable(digits_test):
    x = digits_test.images[:10]
    assert bits("blur", x)["bits_mean"] == 0.0
    assert bits("instahide", x, k=4)["bits_mean"] == pytest.approx(64 + 3 * math.log2(10))
    with pytest.raises(NotApplicableError, match="continuous noise"):
        bits("noise", x)
