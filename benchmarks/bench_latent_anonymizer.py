"""Latent anonymiser throughput: privis' batched Section 6.5 against a per-image transcription of it, same run.

The reference is the thesis' anonymisation written straightforwardly: the fake pool generated once (as
privis does per batch: ``pool_ratio`` times as many codes from the codec's density, decoded with
``x_T ~ N(0, I)``), then for each image: its nearest fake in the attribute encoder's penultimate space, the
DDIM inversion of its ``x_T``, ``iterations`` Adam steps (``torch.optim.Adam``, the step scaled per dimension
by the spread of ``z_bar`` as privis does) on its semantic code against
``|cos(E_A(x_A), E_A(x_R))| + lambda_att L_att`` (IIS, Eq. 6.7-6.8), each decoding one image through the DDIM
chain and back-propagating through it, and the release decode. privis runs the same codec, models, pool ratio,
steps and rates on a batch of ``--n`` images (one pool, one pairing, one vectorised Adam with per-image
masking). The identity model's threshold is set out of reach so that no image stops early on either side
(the work per image is then the same; with a calibrated threshold images stop once de-identified).

Codec: ``--codec FILE`` (a trained :class:`privis.latent.DiffusionAutoencoder`) or a seeded, untrained one for
28x28 grey images with ``--base`` channels and a Gaussian density fitted to random codes (throughput does not
depend on the weights). Identity model: a seeded LeNet-5's penultimate layer; attribute model: another seeded
LeNet-5. Each side runs in its own process so that its peak resident memory is its own. The figure is
anonymised images per second at ``--iterations`` Adam steps of ``--decode-steps`` DDIM steps.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_latent_anonymizer.py [--n 256] [--n-ref 8]
      [--iterations 5] [--decode-steps 5] [--codec FILE] [--threads 1]
      [--json benchmarks/results/latent_anonymizer.json]
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import torch
from torch import Tensor, nn

from isolated import compare_sides, side_figures, side_parser
from privis.identity import ClassifierIdentity, IdentityModel
from privis.latent import load_codec
from privis.latent.diffae import DiffusionAutoencoder, DiffusionCodec
from privis.methods.latent_anonymizer import LatentAnonymizer, last_conv_layer
from privis.models import FeatureExtractor, create_seeded, freeze, penultimate_layer
from privis.results import file_label

POOL_RATIO, LR, LAMBDA_ATT = 2.0, 0.1, 1.0
NEVER = -2.0  # a cosine threshold no score falls below: every image takes every iteration


def reference_anonymize(images: Tensor, codec: DiffusionCodec, identity: IdentityModel, attributes: nn.Module, *,
                        iterations: int, decode_steps: int, seed: int) -> Tensor:
    """Section 6.5 (IIS), one image at a time after one pool: pair, invert, ``iterations`` Adam steps, release."""
    patches = FeatureExtractor(attributes, last_conv_layer(attributes))
    token = FeatureExtractor(attributes, penultimate_layer(attributes))
    generator = torch.Generator().manual_seed(seed)
    scale = codec.density.scale.float()
    with torch.no_grad():
        codes = codec.sample_semantic(math.ceil(POOL_RATIO * images.shape[0]), generator)
        fake_tokens = token(codec.sample_images(codes, generator))
    out = torch.empty_like(images)
    for i in range(images.shape[0]):
        x = images[i:i + 1]
        with torch.no_grad():
            j = int((fake_tokens - token(x)).square().sum(1).argmin())
            x_T = codec.encode_stochastic(x, steps=decode_steps)
            x_T_release = codec.encode_stochastic(x)
            reference, reference_patches = identity.embed(x), patches(x)
        u = torch.zeros_like(codes[j:j + 1], requires_grad=True)  # the step in units of z_bar's spread
        optimizer = torch.optim.Adam([u], lr=LR)
        for _ in range(iterations):
            x_a = codec.decode_semantic(codes[j:j + 1] + scale * u, x_T, steps=decode_steps)
            loss = (nn.functional.cosine_similarity(identity.embed(x_a), reference).abs().sum()
                    + LAMBDA_ATT * (patches(x_a) - reference_patches).abs().mean())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            out[i] = codec.decode_semantic(codes[j:j + 1] + scale * u, x_T_release)[0]
    return out


def _codec(path: str | None, base: int, seed: int) -> DiffusionCodec:
    if path:
        codec = load_codec(path)
        if not isinstance(codec, DiffusionCodec):
            raise SystemExit(f"{path}: not a diffusion autoencoder")
        return codec
    torch.manual_seed(seed)
    codec = DiffusionAutoencoder(image_shape=(1, 28, 28), base=base)
    codec.fit_density(torch.randn(1024, codec.semantic_dim, generator=torch.Generator().manual_seed(seed)),
                      random_state=seed)
    return freeze(codec)


def _worker(kind: str, n: int, iterations: int, decode_steps: int, codec_path: str | None, base: int,
            threads: int, seed: int) -> dict:
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")  # the anonymiser warns that no image met its stop criterion: by design here
    codec = _codec(codec_path, base, seed)
    identity = ClassifierIdentity(freeze(create_seeded("lenet5", seed, num_classes=10, in_channels=1,
                                                       image_size=28)), threshold=NEVER)
    attributes = freeze(create_seeded("lenet5", seed + 1, num_classes=10, in_channels=1, image_size=28))
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    if kind == "reference":
        t0 = time.perf_counter()
        reference_anonymize(images, codec, identity, attributes, iterations=iterations, decode_steps=decode_steps,
                            seed=seed)
    else:
        protector = LatentAnonymizer(codec=codec, identity_model=identity, attribute_model=attributes,
                                     pool_ratio=POOL_RATIO, iterations=iterations, lr=LR, lambda_att=LAMBDA_ATT,
                                     decode_steps=decode_steps, batch_size=n, random_state=seed).fit(images[:8])
        protector.transform(images[:2])  # warm-up
        t0 = time.perf_counter()
        protector.transform(images)
        assert protector.diagnostics()["latent_anonymizer_iterations_mean"] == iterations
    return side_figures(kind, n, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = side_parser(__doc__, what="anonymised", n_ref=8)
    ap.add_argument("--iterations", type=int, default=5, help="Adam steps, the same for both (no early stop)")
    ap.add_argument("--decode-steps", type=int, default=5, help="DDIM steps of the decoding inside the optimisation")
    ap.add_argument("--codec", default=None, help="a trained diffusion autoencoder file (default: seeded, untrained)")
    ap.add_argument("--base", type=int, default=16, help="channels of the untrained codec's first level")
    args = ap.parse_args(argv)
    return compare_sides(_worker, args, args.iterations, args.decode_steps, args.codec, args.base,
                         images="1x28x28 grey",
                         codec=(file_label(args.codec) if args.codec
                                else f"DiffusionAutoencoder(base={args.base}), untrained"),
                         identity_model="lenet5 penultimate (seeded, untrained), never stops",
                         attribute_model="lenet5 (seeded, untrained)", scheme="iis", pool_ratio=POOL_RATIO, lr=LR,
                         lambda_att=LAMBDA_ATT, iterations=args.iterations, decode_steps=args.decode_steps)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
