"""``invariants``: what a method declares its output keeps, used directly (no learning).

Threat model: the attacker holds the protected images and knows the method, its public parameters and
its published fitted state (Kerckhoffs); auxiliary data is used only where stated (a sign prior).
Each method declares its invariants (:meth:`privis.methods.Protector.invariants`); the attack knows
these kinds:

* ``sign_magnitude`` (Veil: S. Pang, R. Ma, B. Li, Y. Zhou and Y. Yao, "Veil Privacy on Visual Data:
  Concealing Privacy for Humans, Unveiling for DNNs", ECCV 2024, Eq. 1; InstaHide: Y. Huang, Z. Song,
  K. Li and S. Arora, "InstaHide: Instance-hiding Schemes for Private Distributed Learning", ICML 2020,
  arXiv:2010.02772): a sign flip in ``[-1, 1]`` keeps ``|2x - 1|``; Veil's gradient iteration that follows
  (Eq. 2-3) moves pixels only as far as the feature loss asks, so ``|2y - 1|`` of the released image stays
  close to ``|2x - 1|``. The sign is lost, so ``x`` is recovered as ``(1 - |2y - 1|) / 2`` (``sign-dark``:
  every pixel assumed below mid-grey, true of Fashion-MNIST's background), ``(1 + |2y - 1|) / 2``
  (``sign-bright``), or with the per-position majority sign of the auxiliary originals (``sign-prior``).
  For InstaHide this is the attack of N. Carlini et al., "Is Private Learning Possible with Instance
  Encoding?", IEEE S&P 2021, arXiv:2011.05315, Sec. 4: what is recovered is the *mixture*.
* ``region_multisets`` (VisualMixer: Q. Li, Y. Zhang, J. Ren, Q. Li and Y. Zhang, "You Can Use But Cannot
  Recognize: Preserving Visual Privacy in Deep Neural Networks", NDSS 2024, arXiv:2404.04098, Sec. IV-D):
  shuffles keep each region's pixel multiset, hence its mean colour; regions of the coarsest window are
  unions of final regions, so their means are exact, and means over finer windows estimate the region
  mean without bias. One candidate per declared window, on the grid of
  :func:`privis.metrics.regions.region_grid` (the method's own cut).
* ``public_generator`` (protective perturbation: M. Ye, Z. Tang, H. Phan, Y. Xie, B. Yuan and S. Wei,
  "Visual Privacy Protection in Mobile Image Recognition Using Protective Perturbation", ACM MMSys 2022,
  doi:10.1145/3524273.3528189, Sec. 3.2): the generator ``U`` is public, so the attacker solves
  ``clamp(x + U(x)) = y`` for ``x``: fixed-point iteration ``x <- clamp(y - U(x))`` and gradient descent on
  ``||clamp(x + U(x)) - y||^2``.
* ``point_spread`` (blur): the public kernel is the point spread function; Richardson-Lucy deconvolution
  (scikit-image) inverts it.
* ``cell_means`` (pixelate): the cell means are all that survives; bilinear interpolation between cell
  centres.

A method that declares nothing (pixel noise keeps only its expectation; the ``filters`` attack covers it)
is not applicable. Every candidate is returned; :meth:`Attack.run` reports the best by |SSIM| against the
originals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from skimage import restoration
from torch import Tensor

from privis import references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.methods import create as create_method
from privis.methods.base import int_param, to_signed
from privis.metrics.regions import region_grid
from privis.models import model_device

Candidates = dict[str, Tensor]


def region_index(height: int, width: int, window: int, device: torch.device | str = "cpu") -> tuple[Tensor, int]:
    """Region id ``(H * W,)`` int64 (on ``device``) of every pixel on the grid of
    :func:`privis.metrics.regions.region_grid` (``window x window`` tiles from the top left, the last tile
    along each axis absorbing the remainder: VisualMixer's cut), and the region count. ``window`` is clipped
    to ``[1, min(H, W)]``."""
    ids, count = region_grid(height, width, max(1, min(window, height, width)))
    return torch.from_numpy(ids).to(device), count


def region_means(images: Tensor, window: int) -> Tensor:
    """Every pixel replaced by the mean of its region (per image and channel), vectorised over the batch."""
    n, c, h, w = images.shape
    index, regions = region_index(h, w, window, images.device)
    flat = images.reshape(n, c, h * w)
    sums = torch.zeros(n, c, regions, dtype=flat.dtype, device=flat.device).index_add_(2, index, flat)
    counts = torch.bincount(index, minlength=regions).to(flat.dtype)
    return (sums / counts)[:, :, index].reshape(n, c, h, w)


def magnitude_candidates(protected: Tensor, context: AttackContext) -> tuple[Candidates, list[str]]:
    """Sign-invariant recovery: ``|2y - 1|`` with the sign chosen by a prior."""
    magnitude = to_signed(protected).abs()
    out = {"sign-dark": (1.0 - magnitude) * 0.5, "sign-bright": (1.0 + magnitude) * 0.5}
    notes = ["|2y - 1| survives the sign flips; the sign is taken from a prior"]
    if context.aux_images is not None:
        aux, _ = context.aux("invariants")
        positive = (to_signed(aux.to(protected.device)) > 0).float().mean(0, keepdim=True) > 0.5  # majority sign
        out["sign-prior"] = torch.where(positive, out["sign-bright"], out["sign-dark"])
        notes.append(f"sign-prior: majority sign per position over {aux.shape[0]} auxiliary originals")
    return out, notes


def region_mean_candidates(protected: Tensor, windows: Sequence[int]) -> tuple[Candidates, list[str]]:
    """Mean colour per region for each declared window."""
    if not windows:
        raise NotApplicableError("the protector declares region multisets but no window")
    return ({f"mean-window-{s}": region_means(protected, int(s)) for s in windows},
            [f"region means for windows {[int(s) for s in windows]}"])


def generator_candidates(protected: Tensor, generator: Any, steps: int = 30) -> tuple[Candidates, list[str]]:
    """Invert ``y = clamp(x + U(x))`` with the public generator ``U`` (an ``nn.Module`` with a
    ``perturbation(x)`` method giving ``U(x)``; on the generator's device; the candidates come back on the
    device of ``protected``)."""
    where = protected.device
    protected = protected.to(model_device(generator))
    with torch.no_grad():
        x = protected.clone()
        for _ in range(steps):
            x = (protected - generator.perturbation(x)).clamp(0.0, 1.0)
    fixed = x
    z = torch.logit(protected.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        loss = (generator(torch.sigmoid(z)) - protected).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return ({"fixed-point": fixed.to(where), "optimised": torch.sigmoid(z).detach().to(where)},
            [f"public generator inverted by {steps} fixed-point steps and {steps} Adam steps"])


def deconvolution_candidates(protected: Tensor, psf: Tensor) -> tuple[Candidates, list[str]]:
    """Richardson-Lucy deconvolution with the public point spread function ``(k, k)``."""
    kernel = psf.detach().cpu().double()[None].numpy()  # (1, k, k): one kernel per image plane, planes independent
    n, c, h, w = protected.shape
    stack = protected.detach().cpu().reshape(n * c, h, w).double().numpy()
    out = {}
    for iters in (10, 30):
        restored = restoration.richardson_lucy(stack, kernel, num_iter=iters, clip=True)
        out[f"richardson-lucy-{iters}"] = torch.from_numpy(restored).float().reshape(n, c, h, w).to(protected.device)
    return out, [f"Richardson-Lucy with the public point spread function ({psf.shape[-2]}x{psf.shape[-1]})"]


def cell_candidates(protected: Tensor, block: int) -> tuple[Candidates, list[str]]:
    """Bilinear interpolation between the cell centres."""
    cells = F.avg_pool2d(protected, kernel_size=block, stride=block, ceil_mode=True)
    smooth = F.interpolate(cells, scale_factor=block, mode="bilinear", align_corners=False)
    return {"cells-bilinear": smooth[..., :protected.shape[-2], :protected.shape[-1]]}, [
        f"cell means (block {block}) interpolated bilinearly"]


#: The kinds of invariant this attack exploits (:meth:`privis.methods.Protector.invariants`), each with the
#: function building its candidates from ``(protected, declared value, context, steps)``.
KINDS: dict[str, Callable[[Tensor, Any, AttackContext, int], tuple[Candidates, list[str]]]] = {
    "sign_magnitude": lambda protected, _, context, __: magnitude_candidates(protected, context),
    "region_multisets": lambda protected, windows, _, __: region_mean_candidates(protected, windows),
    "public_generator": lambda protected, generator, _, steps: generator_candidates(protected, generator, steps),
    "point_spread": lambda protected, psf, _, __: deconvolution_candidates(protected, psf),
    "cell_means": lambda protected, block, _, __: cell_candidates(protected, int(block)),
}


@register_attack
class Invariants(Attack):
    """Recover what the method declares its output keeps (its invariants; see the module notes).

    The method's declaration is :meth:`privis.methods.Protector.invariants`; the kinds known are :data:`KINDS`.

    Args:
        steps: iterations of each inversion of a public generator (``public_generator``).
    """

    name = "invariants"
    citation = references.INVARIANT_RECOVERY
    param_specs = {"steps": int_param("optimisation steps of the perturbation candidate", ge=1, le=100_000)}

    def __init__(self, steps: int = 30) -> None:
        self.steps = steps

    def _declared(self, context: AttackContext) -> dict[str, Any]:
        """The method's declared invariants: the granted protector's, else those of the public method run
        with the attacker's randomness (fitted on the auxiliary data only when a declared value needs it)."""
        probe = context.protector if context.protector is not None else create_method(context.method,
                                                                                      **context.params)
        declared = probe.invariants()
        if not declared:
            raise NotApplicableError(f"method {context.method!r} declares no invariant of its output")
        if context.protector is None and any(value is None for value in declared.values()):
            declared = context.attacker_protector(self.name).invariants()
        return declared

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Build every candidate recovery the method's declared invariants give."""
        candidates: Candidates = {}
        notes: list[str] = []
        for kind, value in self._declared(context).items():
            if kind not in KINDS:
                raise NotApplicableError(f"method {context.method!r} declares an invariant this attack does not "
                                         f"know: {kind!r}")
            if value is None:
                raise NotApplicableError(f"method {context.method!r} declares {kind!r} but exposes no value for it "
                                         "(not fitted?)")
            found, said = KINDS[kind](protected, value, context, int(self.steps))
            candidates.update(found)
            notes += said
        return AttackOutcome(self.name, context.method, candidates=candidates, notes=notes)
