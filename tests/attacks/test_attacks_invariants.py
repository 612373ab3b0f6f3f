"""invariants: |2y - 1| undoes sign flips, region means survive shuffles, deconvolution undoes blur; noise fails."""

from __future__ import annotations

import pytest
import torch

from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.invariants import region_means
from privis.methods import create as create_method


def run(method, protector, originals, protected, aux=None, **params):
    ctx = AttackContext(method=method, params=params, protector=protector, aux_images=aux, seed=3)
    return create("invariants").run(originals, protected, context=ctx)


def test_sign_flips_are_undone_by_the_magnitude(digits_train, digits_test, digits_lenet):
    x = digits_test.images[:100]
    veil = create_method("veil", steps=0, local_model=digits_lenet, random_state=0).fit(x)
    out = run("veil", veil, x, veil.transform(x), aux=digits_train.images)
    assert out.scores["ssim_protected"] < 0.3
    # the sign of mid-grey stroke pixels is a guess, the magnitude is exact: far above the protected images
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"] + 0.3
    assert out.variant in ("sign-prior", "sign-dark")


def test_instahide_mixture_magnitude_leaks(digits_train, digits_test):
    x = digits_test.images[:100]
    hide = create_method("instahide", k=2, random_state=0)
    out = run("instahide", hide, x, hide.transform(x), aux=digits_train.images, k=2)
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"] + 0.2


def test_visualmixer_region_means_survive(digits_test):
    x = digits_test.images[:100]
    mixer = create_method("visualmixer", window=2, random_state=0).fit(x)
    shuffled = mixer.transform(x)
    assert torch.allclose(region_means(shuffled, 2), region_means(x, 2), atol=1e-5)  # the invariant itself
    out = run("visualmixer", mixer, x, shuffled)
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"]


def test_blur_deconvolution(digits_test):
    x = digits_test.images[:100]
    out = run("blur", create_method("blur", sigma=0.8), x, create_method("blur", sigma=0.8).transform(x), sigma=0.8)
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"]


def test_no_invariant_in_pure_noise(digits_test):
    x = digits_test.images[:100]
    pure = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    mixer = create_method("visualmixer", window=2, random_state=0).fit(x)
    assert run("visualmixer", mixer, x, pure).scores["ssim_mean"] < 0.15
    with pytest.raises(NotApplicableError, match="noise"):
        run("noise", None, x, x)


def test_the_attack_asks_the_method_not_its_name(digits_test):
    """A method the attack has never heard of joins by declaring what its output keeps."""
    from privis.methods import Protector

    class CellShuffle(Protector):  # not registered: the attack knows it only through its declaration
        name = "cell-shuffle"

        def __init__(self) -> None:
            self.inner = create_method("visualmixer", window=2, random_state=0)

        def transform(self, images, labels=None):
            return self.inner.fit(images).transform(images)

        def invariants(self):
            return {"region_multisets": (2,)}

    x = digits_test.images[:50]
    method = CellShuffle()
    out = run("cell-shuffle", method, x, method.transform(x))
    assert out.variant == "mean-window-2" and out.scores["ssim_mean"] > out.scores["ssim_protected"]
    assert torch.allclose(out.recovered, region_means(x, 2).clamp(0, 1), atol=1e-5)  # exactly the invariant
    with pytest.raises(NotApplicableError, match="declares no invariant"):
        run("cell-shuffle", create_method("noise", sigma=0.1), x, x)


def test_every_registered_method_declares_known_kinds():
    from privis.attacks.invariants import KINDS
    from privis.methods import available

    declared = {name: set(cls().invariants()) for name, cls in available().items()}
    assert all(kinds <= set(KINDS) for kinds in declared.values()), declared
    assert declared["noise"] == set() and declared["visualmixer"] == {"region_multisets"}
    assert declared["veil"] == declared["instahide"] == {"sign_magnitude"}
