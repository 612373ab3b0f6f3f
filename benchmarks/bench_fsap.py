"""FSAP throughput: privis' batched Algorithm 7 against a per-image transcription of it, same run.

The reference is the thesis' Algorithm 7 written straightforwardly: for each image, ``N`` times, one identity
sign step, then ``k`` attribute steps, each taking the sign of the gradient of every attribute term with its
own forward and backward pass, and the stopping test. privis runs the same identity model, attribute model and
rates on a whole batch (one forward per step, one backward per term, stopped images masked). ``tau`` is set
out of reach so both sides take exactly ``N`` iterations (the work per image is then the same; with the
thesis' tau an image stops as soon as it is de-identified). Pixel space (FSAP's default), 28x28 grey images,
a seeded LeNet-5 as the identity model (throughput does not depend on its weights). Each side runs in its own
process so that its peak resident memory is its own. The figure is images per second at ``N`` iterations.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fsap.py [--n 256] [--n-ref 8] [--iterations 10]
      [--threads 1] [--json benchmarks/results/fsap.json]
"""

from __future__ import annotations

import sys
import time

import torch

from isolated import compare_sides, side_figures, side_parser
from privis.identity import AttributeModel, ClassifierIdentity, IdentityModel
from privis.methods.fsap import FSAP, id_loss
from privis.models import create_seeded, freeze

TAU = 1e6  # never reached: every image takes N iterations on both sides
K, LAMBDA_I, LAMBDA_P = 6, 0.02, 0.008


def reference_fsap(images: torch.Tensor, identity: IdentityModel, attributes: AttributeModel, *, iterations: int,
                   k: int, tau: float, lambda_i: float, lambda_p: float) -> torch.Tensor:
    """Algorithm 7 in pixel space, one image at a time, one forward and backward pass per loss term."""
    out = torch.empty_like(images)
    for i in range(images.shape[0]):
        x = images[i:i + 1]
        reference = identity.embed(x).detach()
        w = x.clone()
        for _ in range(iterations):
            w.requires_grad_(True)
            (g,) = torch.autograd.grad(id_loss(identity, reference, w).sum(), w)
            w = (w.detach() + lambda_i * g.sign()).clamp(0, 1)
            for _ in range(k):
                step = torch.zeros_like(w)
                for part in ("mse", "feature", "ssim"):
                    w.requires_grad_(True)
                    (g,) = torch.autograd.grad(attributes.parts(x, w)[part].sum(), w)
                    step += g.sign()
                    w = w.detach()
                w = (w - lambda_p * step).clamp(0, 1)
            if float(id_loss(identity, reference, w.detach())) > tau:
                break
        out[i] = w.detach()[0]
    return out


def _worker(kind: str, n: int, iterations: int, threads: int, seed: int) -> dict:
    torch.set_num_threads(threads)
    identity = ClassifierIdentity(freeze(create_seeded("lenet5", seed, num_classes=10, in_channels=1,
                                                       image_size=28)))
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    if kind == "reference":
        attributes = AttributeModel(channels=1)
        t0 = time.perf_counter()
        reference_fsap(images, identity, attributes, iterations=iterations, k=K, tau=TAU, lambda_i=LAMBDA_I,
                       lambda_p=LAMBDA_P)
    else:
        protector = FSAP(identity_model=identity, N=iterations, k=K, tau=TAU, lambda_I=LAMBDA_I, lambda_P=LAMBDA_P,
                         batch_size=n, random_state=seed).fit(images[:8])
        protector.transform(images[:8])  # warm-up
        t0 = time.perf_counter()
        protector.transform(images)
    return side_figures(kind, n, time.perf_counter() - t0, iterations=iterations)


def main(argv: list[str] | None = None) -> dict:
    ap = side_parser(__doc__, what="protected", n_ref=8)
    ap.add_argument("--iterations", type=int, default=10, help="N, the same for both (tau is out of reach)")
    args = ap.parse_args(argv)
    return compare_sides(_worker, args, args.iterations, images="1x28x28 grey, pixel space",
                         identity_model="lenet5 penultimate (seeded, untrained)", k=K, lambda_I=LAMBDA_I,
                         lambda_P=LAMBDA_P, iterations=args.iterations)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
