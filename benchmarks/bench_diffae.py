"""A trained diffusion autoencoder: its densities of ``z_bar`` compared, and its decoding speed.

Loads a codec written by ``privis train-codec --kind diffae``, encodes the training images (``--data``) and
held-out images (``--held``), and reports, for a Gaussian (Ledoit-Wolf) and a Gaussian mixture fitted to the
training codes (:func:`privis.latent.compare_densities`):

- ``code_fd``: Frechet distance of ``--samples`` sampled codes to the held-out codes;
- ``image_fd``: ``fd_privis`` of the held-out images to the sampled codes decoded with ``x_T ~ N(0, I)``, on the
  penultimate features of a LeNet-5 trained on the training images' labels (``--classifier-epochs``); as a
  floor, the same distance for the held-out images reconstructed from their own ``(z_bar, x_T)``
  (``recon_image_fd``) and decoded from their own ``z_bar`` with ``x_T ~ N(0, I)`` (``semantic_image_fd``).

It also times ``decode_semantic`` and ``encode_stochastic`` (images per second at batch ``--batch``) and can
write a PNG of real images, their reconstructions and fakes of both densities (``--png``).

Run:  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_diffae.py --codec diffae.pt
          --data "fashion-mnist:train[:15000]" --held "fashion-mnist:test[:500]" [--samples 500]
          [--json benchmarks/results/diffae.json] [--png diffae.png]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from privis import data, models
from privis.experiments.perturbation_tables import load_average
from privis.fsutil import atomic_write_bytes, atomic_write_text
from privis.latent import DiffusionCodec, LatentDensity, compare_densities, load_codec
from privis.metrics import fd_privis
from privis.results import file_label


def _codes(codec: DiffusionCodec, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([codec.encode_semantic(chunk) for chunk in images.split(512)])


def _grid(rows: list[torch.Tensor]) -> bytes:
    """PNG bytes of image rows ``(n, C, H, W)`` in ``[0, 1]``, side by side, rows stacked."""
    strips = [torch.cat(list(row), dim=-1) for row in rows]
    grid = (torch.cat(strips, dim=-2).clamp(0, 1) * 255).round().to(torch.uint8)
    array = grid.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", required=True)
    parser.add_argument("--data", required=True, help="training images (the density's codes) with labels")
    parser.add_argument("--held", required=True, help="held-out images")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    parser.add_argument("--png")
    args = parser.parse_args(argv)

    codec = load_codec(args.codec)
    if not isinstance(codec, DiffusionCodec):
        print(f"{args.codec}: not a diffusion autoencoder", file=sys.stderr)
        return 2
    train, held = data.load(args.data), data.load(args.held)
    started = time.perf_counter()
    train_codes, held_codes = _codes(codec, train.images), _codes(codec, held.images)
    encode_s = time.perf_counter() - started

    torch.manual_seed(args.seed)
    classifier = models.create("lenet5", num_classes=int(train.labels.max()) + 1,
                               in_channels=codec.image_shape[0], image_size=codec.image_shape[1])
    models.train(classifier, train.images, train.labels, epochs=args.classifier_epochs, seed=args.seed,
                 device="cpu")
    classifier.eval()

    started = time.perf_counter()
    densities: dict[str, LatentDensity] = {}
    report = compare_densities(train_codes, held_codes, components=args.components, samples=args.samples,
                               random_state=args.seed, codec=codec, model=classifier, real_images=held.images,
                               fitted=densities)
    compare_s = time.perf_counter() - started

    batch = held.images[:args.batch]
    started = time.perf_counter()
    x_T = codec.encode_stochastic(batch)
    invert_s = time.perf_counter() - started
    started = time.perf_counter()
    with torch.no_grad():
        recon = codec.decode_semantic(codec.encode_semantic(batch), x_T)
    decode_s = time.perf_counter() - started
    own = codec.sample_images(held_codes[:args.batch], torch.Generator().manual_seed(args.seed))
    floors = {"recon_image_fd": fd_privis(classifier, batch, recon),
              "semantic_image_fd": fd_privis(classifier, batch, own)}

    result = {"codec": file_label(args.codec), "data": args.data, "held": args.held, "samples": args.samples,
              "components": args.components, "steps": codec.steps, "densities": report, **floors,
              "encode_stochastic_images_per_s": batch.shape[0] / invert_s,
              "decode_semantic_images_per_s": batch.shape[0] / decode_s,
              "encode_semantic_seconds_all": encode_s, "compare_seconds": compare_s,
              "torch_threads": torch.get_num_threads(), "load_average": load_average()}
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result, indent=2))
    if args.png:
        n = 12
        rows = [batch[:n], recon[:n], own[:n]]
        for density in densities.values():
            generator = torch.Generator().manual_seed(args.seed)
            rows.append(codec.sample_images(density.sample(n, generator), generator))
        atomic_write_bytes(Path(args.png), _grid(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
