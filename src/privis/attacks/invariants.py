"""``invariants``: what each method leaves unchanged, used directly (no learning).

Threat model: the attacker holds the protected images and knows the method, its public parameters and
its published fitted state (Kerckhoffs); auxiliary data is used only where stated (a sign prior).
Per method:

* ``veil`` (veil-privacy.md, Eq. 1): a sign flip in ``[-1, 1]`` keeps ``|2x - 1|``; the gradient iteration
  that follows (Eq. 2-3) moves pixels only as far as the feature loss asks, so ``|2y - 1|`` of the
  released image stays close to ``|2x - 1|``. The sign is lost, so ``x`` is recovered as
  ``(1 - |2y - 1|) / 2`` (``sign-dark``: every pixel assumed below mid-grey, true of Fashion-MNIST's
  background), ``(1 + |2y - 1|) / 2`` (``sign-bright``), or with the per-position majority sign of the
  auxiliary originals (``sign-prior``).
* ``instahide`` (Huang et al., ICML 2020): the same magnitude invariant, the attack of Carlini et al.
  (S&P 2021, Sec. 4): the sign mask leaves ``|sum_j lambda_j x_j|``; what is recovered is the *mixture*.
* ``visualmixer`` (visualmixer.md, Sec. IV-D): shuffles keep each region's pixel multiset, hence its mean
  colour; regions of the coarsest window are unions of final regions, so their means are exact, and means
  over finer windows estimate the region mean without bias. One candidate per window of the method's
  levels (tiles from the top left, the last one absorbing the remainder, as the method cuts).
* ``perturbation`` (protective-perturbation.md, Sec. 3.2): the generator ``U`` is public, so the attacker
  solves ``clamp(x + U(x)) = y`` for ``x``: fixed-point iteration ``x <- clamp(y - U(x))`` and gradient
  descent on ``||clamp(x + U(x)) - y||^2``.
* ``blur``: the public Gaussian kernel is the point spread function; Richardson-Lucy deconvolution
  (scikit-image) inverts it.
* ``pixelate``: the cell means are all that survives; bilinear interpolation between cell centres.
* ``noise``: no invariant beyond the expectation: not applicable (the ``filters`` attack covers it).

Every candidate is returned; :meth:`Attack.run` reports the best by |SSIM| against the originals.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from skimage import restoration
from torch import Tensor

from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome, NotApplicableError
from privis.methods.base import int_param, to_signed
from privis.methods.baselines import gaussian_kernel1d
from privis.models import model_device

Candidates = dict[str, Tensor]


def region_index(height: int, width: int, window: int, device: torch.device | str = "cpu") -> tuple[Tensor, int]:
    """Region id ``(H * W,)`` (on ``device``) of every pixel for ``window x window`` tiles from the top left, the
    last tile along each axis absorbing the remainder (VisualMixer's cut); returns the ids and the region count."""
    s = max(1, min(window, height, width))
    rows = (torch.arange(height, device=device) // s).clamp(max=height // s - 1)
    cols = (torch.arange(width, device=device) // s).clamp(max=width // s - 1)
    n_cols = width // s
    return (rows[:, None] * n_cols + cols[None, :]).reshape(-1), (height // s) * n_cols


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


def visualmixer_candidates(protected: Tensor, context: AttackContext) -> tuple[Candidates, list[str]]:
    """Mean colour per region for each window of the fitted method's levels."""
    mixer = context.attacker_protector("invariants")
    levels = getattr(mixer, "levels_", None)
    if not levels:
        raise NotApplicableError("the VisualMixer protector exposes no window levels (levels_)")
    return ({f"mean-window-{s}": region_means(protected, int(s)) for s in levels},
            [f"region means for windows {list(levels)}"])


def perturbation_candidates(protected: Tensor, context: AttackContext, steps: int = 30,
                            ) -> tuple[Candidates, list[str]]:
    """Invert ``y = clamp(x + U(x))`` with the public generator ``U`` (on the generator's device; the
    candidates come back on the device of ``protected``)."""
    generator = getattr(context.attacker_protector("invariants"), "generator_", None)
    if generator is None:
        raise NotApplicableError("the perturbation protector exposes no generator (generator_)")
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


def blur_candidates(protected: Tensor, context: AttackContext) -> tuple[Candidates, list[str]]:
    """Richardson-Lucy deconvolution with the public Gaussian kernel."""
    sigma = float(context.params.get("sigma", 2.0))
    k = gaussian_kernel1d(sigma)
    psf = torch.outer(k, k)[None].double().numpy()  # (1, k, k): one kernel per image plane, planes independent
    n, c, h, w = protected.shape
    stack = protected.detach().cpu().reshape(n * c, h, w).double().numpy()
    out = {}
    for iters in (10, 30):
        restored = restoration.richardson_lucy(stack, psf, num_iter=iters, clip=True)
        out[f"richardson-lucy-{iters}"] = torch.from_numpy(restored).float().reshape(n, c, h, w).to(protected.device)
    return out, [f"Richardson-Lucy with the public Gaussian kernel (sigma {sigma:g})"]


def pixelate_candidates(protected: Tensor, context: AttackContext) -> tuple[Candidates, list[str]]:
    """Bilinear interpolation between the cell centres."""
    block = int(context.params.get("block", 4))
    cells = F.avg_pool2d(protected, kernel_size=block, stride=block, ceil_mode=True)
    smooth = F.interpolate(cells, scale_factor=block, mode="bilinear", align_corners=False)
    return {"cells-bilinear": smooth[..., :protected.shape[-2], :protected.shape[-1]]}, [
        f"cell means (block {block}) interpolated bilinearly"]


_HANDLERS: dict[str, Callable[[Tensor, AttackContext], tuple[Candidates, list[str]]]] = {
    "veil": magnitude_candidates,
    "instahide": magnitude_candidates,
    "visualmixer": visualmixer_candidates,
    "perturbation": perturbation_candidates,
    "blur": blur_candidates,
    "pixelate": pixelate_candidates,
}


@register_attack
class Invariants(Attack):
    """Recover what the method leaves unchanged (per-method invariants; see the module notes).

    Args:
        steps: iterations of each inversion of a public generator (``perturbation``).
    """

    name = "invariants"
    param_specs = {"steps": int_param("optimisation steps of the perturbation candidate", ge=1, le=100_000)}

    def __init__(self, steps: int = 30) -> None:
        self.steps = steps

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Build every candidate recovery the method's invariant gives."""
        handler = _HANDLERS.get(context.method)
        if handler is None:
            raise NotApplicableError(f"no invariant is known for method {context.method!r}"
                                     + (": pixel noise keeps only its expectation (see filters)"
                                        if context.method == "noise" else ""))
        if handler is perturbation_candidates:
            candidates, notes = perturbation_candidates(protected, context, steps=self.steps)
        else:
            candidates, notes = handler(protected, context)
        return AttackOutcome(self.name, context.method, candidates=candidates, notes=notes)
