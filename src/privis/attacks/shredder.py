"""``shredder``: greedy reassembly of shuffled regions from neighbouring-pixel gradients.

Section V-C of VisualMixer (Li et al., "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep
Neural Networks", NDSS 2024, arXiv:2404.04098; "Heuristic attacks by Shredder Challenge algorithm", Fig. 8)
restores shuffled images with the gradient information between pixels, after the DARPA Shredder Challenge
(2011): pieces are placed where their borders continue their neighbours'. Here a piece is one pixel (the
paper's point: "the fragment size is effectively 1").

Threat model: the attacker holds the protected images and knows the method's region windows (the fitted
protector's ``levels_``, public under Kerckhoffs's principle); the permutations are secret. Applicable to
region-shuffling methods only, i.e. protectors that expose ``levels_``.

Algorithm (vectorised over images, channels and regions). Inside a region any arrangement of its pixel
multiset is possible, so the attacker looks for the smoothest one:

1. start from the region means (the exact invariant of a shuffle);
2. each round, predict every pixel by the mean of its 8 neighbours in the current estimate, and give each
   region its own values in the order of those predictions (largest value where the neighbours predict the
   largest). For fixed neighbours this assignment minimises the squared gradient ``sum (x_p - pred_p)^2``
   over all arrangements of the region (rearrangement inequality): the greedy step;
3. repeat for ``rounds`` rounds (coordinate descent on the image's total squared gradient).

One candidate per window of the method's levels; :meth:`Attack.run` reports the best.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from privis import references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.attacks.invariants import region_index, region_means
from privis.errors import InvalidInputError
from privis.methods.base import int_param


def neighbour_mean(images: Tensor) -> Tensor:
    """Mean of the 8 neighbours of every pixel (edge replication at the border), ``(N, C, H, W)``."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    return (F.avg_pool2d(padded, 3, stride=1) * 9.0 - images) / 8.0


def reassemble(protected: Tensor, window: int, rounds: int) -> Tensor:
    """Rearrange each ``window x window`` region's pixels (per channel) to follow their neighbours."""
    n, c, h, w = protected.shape
    index, _ = region_index(h, w, window, protected.device)
    key_base = index.to(torch.float64)[None, None, :]
    flat = protected.reshape(n, c, h * w).to(torch.float64)
    scale = 0.5 / (1.0 + float(flat.abs().max()))  # keeps value keys inside their region's unit interval
    values = torch.gather(flat, 2, torch.argsort(key_base + flat * scale, dim=2))  # grouped by region, ascending
    estimate = region_means(protected, window).to(torch.float64)
    for _ in range(rounds):
        pred = neighbour_mean(estimate).reshape(n, c, h * w)
        positions = torch.argsort(key_base + pred * scale, dim=2)
        estimate = torch.empty_like(flat).scatter_(2, positions, values).reshape(n, c, h, w)
    return estimate.float()


@register_attack
class Shredder(Attack):
    """Greedy gradient-based reassembly of shuffled regions (VisualMixer Sec. V-C; see the module notes).

    Args:
        rounds: reassembly rounds per window.
    """

    name = "shredder"
    citation = references.SHREDDER_CHALLENGE
    param_specs = {"rounds": int_param("reassembly rounds", ge=1, le=100_000)}

    def __init__(self, rounds: int = 20) -> None:
        self.rounds = rounds

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Reassemble ``protected`` for every region window the method uses."""
        if self.rounds < 1:
            raise InvalidInputError(f"shredder rounds must be >= 1, got {self.rounds}")
        if context.protector is None and context.aux_images is None:
            raise NotApplicableError("shredder needs the method's region windows: a fitted protector or "
                                     "auxiliary data to fit one")
        levels = getattr(context.attacker_protector(self.name), "levels_", None)
        if not levels:
            raise NotApplicableError(f"method {context.method!r} does not shuffle pixels inside regions")
        candidates = {f"window-{s}": reassemble(protected, int(s), self.rounds) for s in levels}
        return AttackOutcome(self.name, context.method, candidates=candidates,
                             notes=[f"{self.rounds} greedy rounds per window {list(levels)}"])
