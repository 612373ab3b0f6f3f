"""``keyspace``: how many bits of secret stand between the attacker and an exhaustive search.

Threat model: the attacker knows the method and its parameters and would try every secret (VisualMixer
Sec. V-C, "Exhaustive search"). Reported per image, in bits (``log2`` of the number of equally likely
secrets, i.e. the entropy of the secret):

* ``visualmixer``: ``log2 prod_i (k_i!)^C`` over the image's actual regions (and the paper's
  ``log2 sum_i k_i!``), from :mod:`privis.privacy.keyspace` via the protector's record of its partition;
  the partition is computed from the originals, which only the defender has (it sizes the defender's key).
* ``veil``: the Bernoulli(``p``) flip mask of Eq. (1) has ``n * H(p)`` bits of entropy for ``n`` pixel
  values (``H`` the binary entropy) and ``n * -log2 max(p, 1 - p)`` bits of min-entropy. The gradient
  iteration that follows is deterministic given the mask.
* ``instahide``: the sign mask (``n`` bits at ``p = 1/2``) and the choice of ``k - 1`` partners among the
  ``N`` images of the batch, ``(k - 1) log2 N``; the continuous coefficients are not counted. The mask bits
  are moot against the ``invariants`` attack (``|x~|`` does not depend on them).
* ``blur``, ``pixelate``, ``perturbation``: deterministic given public parameters: 0 bits.
* ``noise``: continuous noise is not a permutation or a mask: not applicable.

``bits_mean``/``bits_min`` summarise; ``bits_at_least_128`` is the share of images with at least 128 bits.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.errors import InvalidInputError

_DETERMINISTIC = ("blur", "pixelate", "perturbation")


def binary_entropy(p: float) -> float:
    """``H(p) = -p log2 p - (1 - p) log2 (1 - p)`` in bits."""
    if not 0.0 <= p <= 1.0:
        raise InvalidInputError(f"probability must lie in [0, 1], got {p}")
    return -sum(q * math.log2(q) for q in (p, 1.0 - p) if q > 0)


@register_attack
class Keyspace(Attack):
    """Bits of search space per image where the method's secret is a permutation or a mask."""

    name = "keyspace"

    def run(self, originals: Tensor, protected: Tensor, *, context: AttackContext) -> AttackOutcome:
        """Size the keyspace of ``context.method`` for these images (see the module notes)."""
        self._originals = originals
        try:
            return super().run(originals, protected, context=context)
        finally:
            del self._originals

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Bits per image; VisualMixer's partition is computed on the originals held by :meth:`run`."""
        method, values = context.method, protected[0].numel()
        n = protected.shape[0]
        extra: dict[str, float] = {}
        if method == "visualmixer":
            mixer = context.attacker_protector(self.name)
            mixer.transform(getattr(self, "_originals", protected))
            bits = mixer.keyspace_bits()
            extra["bits_paper_mean"] = float(mixer.diagnostics().get("keyspace_bits_paper_mean", float("nan")))
            note = "prod over regions of (pixels!)^channels, from the actual partitions"
        elif method == "veil":
            p = float(context.params.get("flip_ratio", 0.5))
            bits = np.full(n, values * binary_entropy(p))
            extra["min_entropy_bits_mean"] = values * -math.log2(max(p, 1.0 - p))
            note = f"Bernoulli({p:g}) flip mask over {values} pixel values"
        elif method == "instahide":
            k = int(context.params.get("k", 4))
            mask = values if context.params.get("sign_flip", True) else 0
            bits = np.full(n, mask + (k - 1) * math.log2(max(n, 1)))
            extra["mask_bits"] = float(mask)
            note = f"sign mask ({mask} bits) and {k - 1} partners among {n} images; coefficients not counted"
        elif method in _DETERMINISTIC:
            bits = np.zeros(n)
            note = "deterministic given the public parameters: no secret"
        else:
            raise NotApplicableError(f"method {method!r} has no permutation or mask secret"
                                     + (" (continuous noise)" if method == "noise" else ""))
        scores = {"bits_mean": float(bits.mean()), "bits_min": float(bits.min()),
                  "bits_at_least_128": float((bits >= 128).mean()), **extra}
        return AttackOutcome(self.name, method, variant="exhaustive search", scores=scores, notes=[note])
