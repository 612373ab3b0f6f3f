"""The empirical Lipschitz constant of one DP-Image step, ``psi(z) = clip(f(g(z)))``, next to the certified one.

Privacy amplification by iteration (V. Feldman, I. Mironov, K. Talwar and A. Thakurta, "Privacy Amplification
by Iteration", FOCS 2018, arXiv:1808.06651), behind Theorem 4.4.1 of H. Xue's thesis ("A Study on Image
Privacy Protection in Response to Artificial Intelligence Technology", University of Technology Sydney,
2023), assumes ``psi`` is 1-Lipschitz. :func:`measure_lipschitz` gives two lower bounds on its true L2
constant (no sample can prove an upper bound): the largest Jacobian spectral norm found by power iteration at
sampled latents (forward- and reverse-mode products, ``torch.func.jvp`` / ``torch.func.vjp``, never the full
Jacobian) and the largest difference quotient over sampled pairs, near and far. A codec that certifies a bound
(:class:`~privis.latent.contractive.ContractiveCodec`) must never be caught above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.latent.base import LatentCodec
from privis.random import torch_generator

__all__ = ["LipschitzEstimate", "measure_lipschitz"]

#: Near pairs differ by this fraction of the latent spread per coordinate.
NEAR_SCALE = 1e-2


@dataclass(frozen=True)
class LipschitzEstimate:
    """What :func:`measure_lipschitz` found (all in L2, latent units per latent unit).

    Attributes:
        jacobian_max: the largest power-iteration spectral norm of the Jacobian of ``psi`` over the samples.
        pair_ratio_max: the largest ``||psi(a) - psi(b)|| / ||a - b||`` over the sampled pairs.
        estimate: ``max(jacobian_max, pair_ratio_max)``, a lower bound on the true constant.
        certified_bound: the codec's :attr:`~privis.latent.LatentCodec.lipschitz_bound` (None: nothing proven).
        samples: latents the Jacobian was probed at; pairs: pairs compared.
    """

    jacobian_max: float
    pair_ratio_max: float
    estimate: float
    certified_bound: float | None
    samples: int
    pairs: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _psi(codec: LatentCodec, clip: float | None):  # type: ignore[no-untyped-def]
    def psi(z: Tensor) -> Tensor:
        out = codec._encode(codec._decode(z).clamp(0.0, 1.0))
        return out if clip is None else out.clamp(-clip, clip)
    return psi


def measure_lipschitz(codec: LatentCodec, *, samples: int = 64, pairs: int = 256, iterations: int = 20,
                      random_state: int | None = None, latents: Tensor | None = None,
                      images: Tensor | None = None, clip: float | None = None) -> LipschitzEstimate:
    """Estimate the Lipschitz constant of ``psi(z) = clip(f(g(z)))`` (``f`` the encoder, ``g`` the decoder).

    Args:
        codec: any codec whose modules ``torch.func`` can differentiate; run on its own device, in eval mode.
        samples: latents at which the Jacobian's spectral norm is estimated (``>= 1``).
        pairs: pairs of latents compared (``>= 2``): half near (``b = a + 0.01 s u``, ``u`` standard normal,
            ``s`` the latent spread), half far (two independent samples).
        iterations: power iterations per sample (``>= 1``).
        random_state: seed of the sampled latents and the start vectors; None draws from OS entropy.
        latents: ``(M, G, D)`` latents to sample from (rows drawn with replacement).
        images: ``(M, C, H, W)`` canonical images whose encodings are sampled from (when ``latents`` is None).
            With neither, latents are ``N(0, s^2 I)`` with ``s`` the standard deviation of ``f(g(w))`` over
            ``w ~ N(0, I)`` (the codec's own latent spread).
        clip: the box clip ``c`` of ``psi`` (None: no clip); DP-Image's ``f_c``.

    Returns:
        :class:`LipschitzEstimate`.

    Raises:
        InvalidInputError: bad counts, latents or images.
    """
    for key, value, low in (("samples", samples, 1), ("pairs", pairs, 2), ("iterations", iterations, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidInputError(f"{key} must be an integer >= {low}, got {value!r}")
    device = next((p.device for p in codec.parameters()), torch.device("cpu"))
    generator = torch_generator(random_state)
    psi = _psi(codec, clip)
    with torch.no_grad():
        if latents is None and images is not None:
            images = check_images(images, channels=None).to(device)
            latents = torch.cat([codec.encode(images[i:i + 512]) for i in range(0, images.shape[0], 512)])
        if latents is not None:
            pool = codec.check_latents(latents).to(device)

            def draw(k: int) -> Tensor:
                return pool[torch.randint(pool.shape[0], (k,), generator=generator).to(device)]
            spread = float(pool.std())
        else:
            shape = (max(samples, pairs), *codec.latent_shape)
            spread = float(psi(torch.randn(shape, generator=generator).to(device)).std())

            def draw(k: int) -> Tensor:
                return spread * torch.randn((k, *codec.latent_shape), generator=generator).to(device)

        # difference quotients: near pairs, then far pairs
        near = pairs // 2
        a = draw(pairs)
        b = torch.cat([a[:near] + NEAR_SCALE * max(spread, 1e-6)
                       * torch.randn((near, *codec.latent_shape), generator=generator).to(device),
                       draw(pairs - near)])
        gap = (a - b).flatten(1).norm(dim=1)
        moved = (psi(a) - psi(b)).flatten(1).norm(dim=1)
        ok = gap > 0
        pair_ratio = float((moved[ok] / gap[ok]).max()) if bool(ok.any()) else 0.0
        points = draw(samples)
        v = torch.randn(points.shape, generator=generator).to(device)
    # Jacobian spectral norms by power iteration on J^T J, batched: psi acts on each item independently
    norms = torch.zeros(samples, device=device)
    for _ in range(iterations):
        v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(-1, 1, 1)
        jv = torch.func.jvp(psi, (points,), (v,))[1]
        norms = jv.flatten(1).norm(dim=1)
        pullback = torch.func.vjp(psi, points)[1]
        (v,) = pullback(jv)
        v = v.detach()
    jacobian = float(norms.max())
    return LipschitzEstimate(jacobian_max=jacobian, pair_ratio_max=pair_ratio, estimate=max(jacobian, pair_ratio),
                             certified_bound=codec.lipschitz_bound, samples=samples, pairs=pairs)
