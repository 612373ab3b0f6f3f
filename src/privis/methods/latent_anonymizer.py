"""Dataset anonymisation in a diffusion autoencoder's latent space (the thesis's "Diffusion De-ID").

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Chapter 6, Section 6.5 (Eq. 6.7-6.9, Table 6.3), after the latent
optimisation of FALCO (S. Barattin, C. Tzelepis, I. Patras and N. Sebe, "Attribute-Preserving Face Dataset
Anonymization via Latent Code Optimization", CVPR 2023). With a diffusion autoencoder (semantic code
``z_bar`` plus the DDIM-inverted noise map ``x_T``), an identity encoder ``E_A`` and an attribute encoder
``E_I``, for a real dataset ``X_R``::

    X_F = decode(z_F, x_T ~ N(0, I)),  z_F ~ density of z_bar,   |X_F| > |X_R|        (Section 6.5.2)
    pair each x_R with its nearest x_F in E_I's pooled-feature space (kNN, Euclidean)   (Section 6.5.3)
    z_A = z_F(pair);  minimise L_id + lambda_att L_att over z_A with Adam, x_A = decode(z_A, x_T(x_R))
        IIS: L_id = |cos(E_A(x_A), E_A(x_R))|                                             (Eq. 6.7)
        IRS: L_id = 1 - |cos(E_A(x_A), E_A(x_F))|                                         (Eq. 6.9)
        L_att = || E_I(x_A) - E_I(x_R) ||_1 over the flattened patch-level features       (Eq. 6.8)
    release x_A = decode(z_A, x_T(x_R))

The thesis uses ArcFace as ``E_A`` and FaRL's ViT (class token for pairing, 14 x 14 patch tokens for
``L_att``) as ``E_I``; on data without faces privis uses an exemplar identity network
(:func:`privis.identity.train_exemplar_identity`) and a classifier of the dataset's labels, its penultimate
activation in the class token's place and its last convolutional feature map in the patch tokens'.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from torch import Tensor, nn

from privis import references
from privis.errors import InvalidInputError
from privis.identity.base import IdentityModel
from privis.identity.exemplar import train_exemplar_identity
from privis.latent.base import LatentCodec
from privis.latent.diffae import DiffusionCodec
from privis.latent.training import load_codec, train_codec
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Param,
    Protector,
    check_images,
    check_labels,
    choice_param,
    codec_param,
    fitted_models_on,
    float_param,
    int_param,
    model_param,
    seed_param,
)
from privis.models.build import create_seeded, freeze
from privis.models.features import FeatureExtractor, layer_names, penultimate_layer
from privis.models.optim import adam_update
from privis.models.training import train
from privis.random import resolve_seed

__all__ = ["SCHEMES", "LatentAnonymizer", "last_conv_layer", "pair_nearest"]

#: Identity-loss schemes of Section 6.6.3: identity indistinguishable (Eq. 6.7) and identity replacement (Eq. 6.9).
SCHEMES = ("iis", "irs")
#: The anonymiser warns when more than this share of a call's images leave without meeting the stop criterion.
WARN_KEPT_FRACTION = 0.01


def pair_nearest(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Index of the nearest fake for every real image, by Euclidean distance (thesis Section 6.5.3).

    scikit-learn's ``NearestNeighbors`` (one neighbour) fitted on the fakes, queried with the reals (in float64
    on the CPU); several real images may share one fake.

    Args:
        real_features: ``(N, E)`` features of the real images.
        fake_features: ``(M, E)`` features of the fake images, ``M >= 1``.

    Returns:
        ``(N,)`` int64 indices into the fakes, on ``real_features``' device.

    Raises:
        InvalidInputError: features that are not 2-D of one width, no fakes, or non-finite values.
    """
    if real_features.dim() != 2 or fake_features.dim() != 2 or real_features.shape[1] != fake_features.shape[1]:
        raise InvalidInputError(f"features must be (N, E) and (M, E), got {tuple(real_features.shape)} and "
                                f"{tuple(fake_features.shape)}")
    if fake_features.shape[0] < 1:
        raise InvalidInputError("pairing needs at least one fake image")
    real = real_features.detach().double().cpu().numpy()
    fake = fake_features.detach().double().cpu().numpy()
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise InvalidInputError("features for pairing contain NaN or infinite values")
    index = NearestNeighbors(n_neighbors=1).fit(fake).kneighbors(real, return_distance=False)[:, 0]
    return torch.from_numpy(index).long().to(real_features.device)


def last_conv_layer(model: nn.Module) -> str:
    """The name of ``model``'s last ``nn.Conv2d`` (its last convolutional feature map, ``L_att``'s features).

    Raises:
        InvalidInputError: the model has no ``nn.Conv2d``.
    """
    convs = [name for name in layer_names(model)[:-1] if isinstance(model.get_submodule(name), nn.Conv2d)]
    if not convs:
        raise InvalidInputError(f"attribute_model {type(model).__name__} has no nn.Conv2d layer: the attribute loss "
                                f"compares its last convolutional feature map")
    return convs[-1]


class _Models(nn.Module):
    """The fitted models one device runs: the codec, ``E_A`` and the attribute encoder's two feature views."""

    def __init__(self, codec: DiffusionCodec, identity: IdentityModel, attributes: nn.Module) -> None:
        super().__init__()
        self.codec = codec
        self.identity = identity
        #: ``E_I``: the flattened last convolutional feature map (Eq. 6.8)
        self.patches = FeatureExtractor(attributes, last_conv_layer(attributes))
        #: the pairing feature: the penultimate activation (FaRL's class token's role)
        self.token = FeatureExtractor(attributes, penultimate_layer(attributes))


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return nn.functional.cosine_similarity(a, b, dim=1)


@register
class LatentAnonymizer(Protector):
    """Anonymise a dataset by optimising each image's semantic code in a diffusion autoencoder (Section 6.5).

    **Per batch** of ``batch_size`` real images ``X_R`` (all steps vectorised over the batch):

    1. *Fake pool* (Section 6.5.2): ``ceil(pool_ratio |X_R|)`` codes ``z_F`` drawn from the codec's fitted
       density of ``z_bar`` (privis' closed-form density in place of the thesis's latent DDIM), decoded with
       ``x_T ~ N(0, I)`` and the codec's DDIM steps.
    2. *Pairing* (Section 6.5.3): each real image's nearest fake by Euclidean distance between the attribute
       model's penultimate activations (:func:`pair_nearest`).
    3. *Optimisation* (Section 6.5.4, 6.6.3): ``z_A`` starts at the paired fake's ``z_F`` (the thesis's
       "meaningful initial values"); the real image's own ``x_T`` (DDIM inversion, Eq. 6.6) is kept; Adam
       (its step scaled per dimension by the standard deviation of ``z_bar`` in the codec's density)
       minimises ``L_id + lambda_att L_att`` per image for at most ``iterations`` steps, decoding with
       ``decode_steps`` DDIM steps. IIS: ``L_id = |cos(E_A(x_A), E_A(x_R))|`` (Eq. 6.7); IRS:
       ``L_id = 1 - |cos(E_A(x_A), E_A(x_F))|`` with ``x_F`` the paired fake (Eq. 6.9). ``L_att`` is the mean
       absolute difference of the attribute model's last convolutional feature maps, flattened (Eq. 6.8 as
       a mean, so ``lambda_att`` does not depend on the map's size).
    4. *Release*: ``decode_semantic(z_A, x_T)`` with the codec's DDIM steps.

    **Per-image stopping** (privis' criterion; the thesis states none). Before every step (and after the last)
    an image is checked with the optimised identity model ``E_A``: IIS stops it once ``E_A`` clearly no longer
    matches ``x_A`` to its real source (cosine ``< threshold - margin``; for a distance model
    ``> threshold + margin``); IRS once, in addition, ``E_A`` matches ``x_A`` to its paired fake (at the
    plain threshold: the identity is *replaced*, not just removed). The ``margin`` makes the release robust
    to other recognisers (a held-out identity model) and leaves ``L_att`` steps to act. A stopped
    image's ``z_A`` is frozen where the check passed: it leaves the computation (the batch shrinks, Adam's
    moments with it), so neither later steps nor the other images of the batch change it. With
    ``decode_steps`` equal to the codec's steps (``decode_steps=None``) the released image is exactly the one
    checked; with fewer (the default 5) the release is decoded again with the codec's steps and the margin
    absorbs most of the difference.
    An image that never meets the criterion is released after ``iterations`` steps (:meth:`diagnostics`,
    and a warning when more than 1% of a call's images do).

    **Models fit trains when none is given.** The codec: a :class:`~privis.latent.DiffusionAutoencoder`
    (``codec_epochs`` epochs, :func:`privis.latent.train_codec`, density fitted on the fit images' codes).
    ``E_A``: a LeNet-5 exemplar network (:func:`~privis.identity.train_exemplar_identity`, each fit image is an
    identity, ``identity_epochs`` epochs), calibrated at the equal error rate on the fit images and their
    augmented copies. ``E_I``: a LeNet-5 trained on the fit labels (``attribute_epochs`` epochs). A given
    codec without a fitted density gets one (Gaussian) on the fit images' codes.

    **Defaults** (the thesis gives no step count, learning rate, loss weight or stopping rule): ``iterations=30``,
    ``lr=0.3``, ``lambda_att=1.0``, ``margin=0.3``, ``decode_steps=5``, ``pool_ratio=2`` are privis' choice from
    a small sweep on Fashion-MNIST (a 15,000-image codec, the exemplar LeNet-5): ``lr=1`` leaves the code's
    distribution within a step (noise images), ``lr=0.1`` protects fewer images even in 60 steps; without a
    margin the releases sit at the threshold; 5 optimisation steps instead of 20 are about 8 times faster at a
    similar protection rate. On 500 Fashion-MNIST images IIS leaves 80% of the images unmatched by the
    optimised model, and a classifier trained on them reaches 63% test accuracy against 76% for the
    originals; IRS (whose paired fake is, for 39% of the images, already the same identity to the model)
    leaves far fewer unmatched (24-37% at ``lr=0.1``) and keeps more accuracy (61-72%): the thesis's
    ordering (Table 6.3: IIS protects more, IRS keeps more).

    Args:
        codec: a :class:`~privis.latent.diffae.DiffusionCodec` (a trained
            :class:`~privis.latent.DiffusionAutoencoder` or a user's TorchScript one) or a codec file/folder
            (:func:`privis.latent.save_codec`); None: ``fit`` trains one.
        codec_epochs: epochs of that training.
        codec_base: base channel width of the U-Net of that codec (16: the width measured on Fashion-MNIST).
        codec_steps: DDIM steps of that codec (its encoding, the fake pool and the release).
        identity_model: the identity encoder ``E_A``, an :class:`~privis.identity.IdentityModel`; None: ``fit``
            trains the exemplar network.
        identity_epochs: epochs of the exemplar network's training.
        attribute_model: the attribute encoder ``E_I``, a classifier (``nn.Module`` with an ``nn.Conv2d`` and a
            final ``nn.Linear``) taking canonical images; None: ``fit`` trains a LeNet-5 on the fit labels.
        attribute_epochs: epochs of that training.
        scheme: ``"iis"`` (Eq. 6.7) or ``"irs"`` (Eq. 6.9).
        pool_ratio: ``|X_F| / |X_R|`` per batch, ``> 1`` (the thesis requires ``|X_F| > |X_R|``).
        iterations: most Adam steps on ``z_A`` per image.
        lr: Adam's learning rate in units of the codec density's per-dimension standard deviation of ``z_bar``
            (Adam's step is about ``lr`` standard deviations per coordinate, whatever the codec's scale).
        lambda_att: weight of ``L_att`` next to ``L_id``.
        decode_steps: DDIM steps of the decoding inside the optimisation, at most the codec's (fewer is
            faster; the optimisation then runs on ``x_T`` inverted with as many steps, and the released image,
            decoded with the codec's steps, differs slightly from the checked one); None: the codec's steps.
        margin: how far past the identity model's threshold (similarity units) the source match must fall
            before an image stops (``>= 0``).
        batch_size: images anonymised together (the pool and the optimisation are per batch).
        random_state: seed of the models fit trains, of the fake pool and of its noise maps; None: OS entropy.

    Examples:
        >>> from privis import data
        >>> from privis.methods.latent_anonymizer import LatentAnonymizer
        >>> digits = data.load("digits:train[:24]")
        >>> anonymizer = LatentAnonymizer(codec_epochs=1, identity_epochs=1, attribute_epochs=1, iterations=2,
        ...                               random_state=0).fit(digits.images, digits.labels)
        >>> out = anonymizer.transform(digits.images[:4])
        >>> tuple(out.shape), tuple(anonymizer.iterations_per_image().shape)
        ((4, 1, 8, 8), (4,))
    """

    name = "latent-anonymizer"
    citation = references.LATENT_ANONYMIZER
    param_specs: ClassVar[dict[str, Param]] = {
        "codec": codec_param("diffusion autoencoder codec file or folder (none: fit trains one)"),
        "codec_epochs": int_param("epochs of the codec fit trains when codec is none", ge=1, le=10_000),
        "codec_base": int_param("U-Net base width of the codec fit trains", ge=1, le=1024),
        "codec_steps": int_param("DDIM steps of the codec fit trains", ge=1, le=1000),
        "identity_model": model_param("identity encoder E_A, an IdentityModel (none: fit trains a LeNet-5 "
                                      "exemplar network)"),
        "identity_epochs": int_param("epochs of the exemplar network's training", ge=1, le=10_000),
        "attribute_model": model_param("attribute encoder E_I, a classifier (none: fit trains a LeNet-5 on the "
                                       "labels)"),
        "attribute_epochs": int_param("epochs of the attribute classifier's training", ge=1, le=10_000),
        "scheme": choice_param("identity loss: iis (Eq. 6.7, away from the source) or irs (Eq. 6.9, towards the "
                               "paired fake)", SCHEMES),
        "pool_ratio": float_param("fake pool size over batch size (> 1)", gt=1, le=1_000),
        "iterations": int_param("most Adam steps on z_bar per image", ge=0, le=100_000),
        "lr": float_param("Adam learning rate, in standard deviations of z_bar per dimension", gt=0, le=1e3),
        "lambda_att": float_param("weight of the attribute loss L_att", ge=0, le=1e6),
        "decode_steps": int_param("DDIM steps while optimising, at most the codec's (none: the codec's)", ge=1,
                                  le=100_000, optional=True),
        "margin": float_param("stop an image once its similarity to the source is this far past the identity "
                              "model's threshold", ge=0, le=1e3),
        "batch_size": int_param("images anonymised together (pool and pairing per batch)", ge=1, le=65_536),
        "random_state": seed_param(),
    }
    requires_fit = True
    stochastic = True
    #: the codec's path is the owner's
    private_params = frozenset({"codec"})

    def __init__(self, codec: str | Path | LatentCodec | None = None, codec_epochs: int = 10, codec_base: int = 16,
                 codec_steps: int = 20, identity_model: IdentityModel | None = None, identity_epochs: int = 30,
                 attribute_model: nn.Module | None = None, attribute_epochs: int = 20, scheme: str = "iis",
                 pool_ratio: float = 2.0, iterations: int = 30, lr: float = 0.3, lambda_att: float = 1.0,
                 decode_steps: int | None = 5, margin: float = 0.3, batch_size: int = 256,
                 random_state: int | None = None) -> None:
        self.codec = codec
        self.codec_epochs = codec_epochs
        self.codec_base = codec_base
        self.codec_steps = codec_steps
        self.identity_model = identity_model
        self.identity_epochs = identity_epochs
        self.attribute_model = attribute_model
        self.attribute_epochs = attribute_epochs
        self.scheme = scheme
        self.pool_ratio = pool_ratio
        self.iterations = iterations
        self.lr = lr
        self.lambda_att = lambda_att
        self.decode_steps = decode_steps
        self.margin = margin
        self.batch_size = batch_size
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.identity_model is not None and not isinstance(self.identity_model, IdentityModel):
            raise InvalidInputError(f"latent-anonymizer: identity_model must be an IdentityModel "
                                    f"(privis.identity), got {type(self.identity_model).__name__}")

    def _fit_codec(self, images: Tensor, seed: int) -> DiffusionCodec:
        codec: LatentCodec
        if isinstance(self.codec, LatentCodec):
            codec = freeze(copy.deepcopy(self.codec).to(images.device))
        elif self.codec is not None:
            codec = load_codec(self.codec, device=images.device)
        else:
            codec = train_codec(images, "diffae", epochs=int(self.codec_epochs), random_state=seed,
                                base=int(self.codec_base), steps=int(self.codec_steps))
        if not isinstance(codec, DiffusionCodec):
            raise InvalidInputError(f"latent-anonymizer needs a diffusion autoencoder codec (a DiffusionCodec such as "
                                    f"privis.latent.DiffusionAutoencoder), got {type(codec).__name__}")
        if tuple(codec.image_shape) != tuple(images.shape[1:]):
            raise InvalidInputError(f"latent-anonymizer: the codec expects images of shape {tuple(codec.image_shape)}, "
                                    f"got {tuple(images.shape[1:])}")
        if not codec.has_density:
            with torch.no_grad():
                codes = torch.cat([codec.encode_semantic(chunk) for chunk in images.split(512)])
            codec.fit_density(codes, random_state=seed)
        return codec

    def _fit_attributes(self, images: Tensor, labels: Tensor | None, seed: int) -> nn.Module:
        if self.attribute_model is not None:
            model = freeze(copy.deepcopy(self.attribute_model).to(images.device))
        else:
            if labels is None:
                raise InvalidInputError("latent-anonymizer: fit needs labels to train the attribute model, or pass "
                                        "attribute_model= a classifier")
            model = create_seeded("lenet5", seed, num_classes=int(labels.max()) + 1, in_channels=images.shape[1],
                                  image_size=(images.shape[-2], images.shape[-1]))
            train(model, images, labels, epochs=int(self.attribute_epochs), seed=seed, device=images.device,
                  desc="latent-anonymizer: attribute model")
            model = freeze(model)
        last_conv_layer(model)
        penultimate_layer(model)
        return model

    def fit(self, images: Tensor, labels: Tensor | None = None) -> LatentAnonymizer:
        """Load or train the codec, the identity encoder ``E_A`` and the attribute encoder ``E_I``.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]``: the training set of the models fit trains (``N >= 2``
                for the exemplar network) and the codes a density is fitted on where the codec has none.
            labels: ``(N,)`` class ids; needed unless ``attribute_model`` is given.

        Raises:
            InvalidInputError: bad parameters, images or labels; no labels where they are needed; a codec that
                is not a diffusion autoencoder, cannot be loaded or expects another image shape; an attribute
                model without a convolution or a final linear layer.
        """
        self.validate_params()
        images = check_images(images, channels=None)
        labels = check_labels(labels, images.shape[0])
        if self.attribute_model is None and labels is None:
            raise InvalidInputError("latent-anonymizer: fit needs labels to train the attribute model, or pass "
                                    "attribute_model= a classifier")
        codec_seed, identity_seed, attribute_seed = np.random.SeedSequence(
            resolve_seed(self.random_state)).generate_state(3, dtype=np.uint64) >> np.uint64(1)
        codec = self._fit_codec(images, int(codec_seed))
        if isinstance(self.identity_model, IdentityModel):
            identity = freeze(copy.deepcopy(self.identity_model).to(images.device))
        else:
            identity = train_exemplar_identity(images, "lenet5", epochs=int(self.identity_epochs),
                                               random_state=int(identity_seed), calibrate_on=images)
        attributes = self._fit_attributes(images, labels, int(attribute_seed))
        self.models_ = _Models(codec, identity, attributes)
        return self

    def identity_objective(self) -> IdentityModel:
        """The identity encoder ``E_A`` the anonymiser optimises against (and stops by).

        Raises:
            NotFittedError: before ``fit``.
        """
        return self._models().identity

    def _models(self, device: torch.device | None = None) -> _Models:
        """The fitted models (on ``device`` when given); :class:`NotFittedError` before ``fit``."""
        if not hasattr(self, "models_"):
            raise NotFittedError("latent-anonymizer must be fitted first (fit sets the codec and the models)")
        return self.models_ if device is None else fitted_models_on(self, device)

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Anonymise ``images``, ``batch_size`` at a time (fake pool, pairing, optimisation, release).

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]`` of the codec's image shape.
            labels: unused (checked).

        Returns:
            ``(N, C, H, W)`` float32 in ``[0, 1]`` on the images' device. :meth:`diagnostics`,
            :meth:`iterations_per_image` and :meth:`paired_fakes` report the call.

        Raises:
            NotFittedError: before ``fit``.
            InvalidInputError: bad images or labels, or a shape the codec does not take.
        """
        self.validate_params()
        images = check_images(images, channels=None)
        check_labels(labels, images.shape[0])
        m = self._models(images.device)
        if tuple(m.codec.image_shape) != tuple(images.shape[1:]):
            raise InvalidInputError(f"latent-anonymizer: the codec expects images of shape "
                                    f"{tuple(m.codec.image_shape)}, got {tuple(images.shape[1:])}")
        generator = torch.Generator().manual_seed(resolve_seed(self.random_state))
        n = images.shape[0]
        out, fakes = torch.empty_like(images), torch.empty_like(images)
        taken = torch.zeros(n, dtype=torch.long)
        reached = torch.zeros(n, dtype=torch.bool)
        cos_real, cos_fake = torch.zeros(n), torch.zeros(n)
        for start in range(0, n, int(self.batch_size)):
            part = slice(start, start + int(self.batch_size))
            x = images[part]
            with torch.no_grad():
                z_fake, x_fake = self._paired_fakes(m, x, generator)
                z_real = m.codec.encode_semantic(x)
                x_T = m.codec.encode_stochastic(x, z_real)
                opt_steps = self._decode_steps(m.codec)
                x_T_opt = (x_T if opt_steps == m.codec.steps
                           else m.codec.encode_stochastic(x, z_real, steps=opt_steps))
                real_id, fake_id = m.identity.embed(x), m.identity.embed(x_fake.to(x.device))
            z, steps, met = self._optimise(m, x, x_T_opt, z_fake, real_id, fake_id)
            with torch.no_grad():
                released = m.codec.decode_semantic(z, x_T).to(images.device)
                embedded = m.identity.embed(released)
                cos_real[part] = _cos(embedded, real_id).cpu()
                cos_fake[part] = _cos(embedded, fake_id).cpu()
            out[part], fakes[part] = released, x_fake.to(images.device)
            taken[part], reached[part] = steps.cpu(), met.cpu()
        self._stats = (taken, reached, cos_real, cos_fake, fakes)
        self._warn_if_kept(reached)
        return out

    def _paired_fakes(self, m: _Models, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw the batch's fake pool (codes, then noise maps, from ``generator``) and return each real image's
        paired fake: its code ``(N, D)`` and image ``(N, C, H, W)``."""
        pool = math.ceil(float(self.pool_ratio) * x.shape[0])
        codes = m.codec.sample_semantic(pool, generator)
        pool_images = m.codec.sample_images(codes, generator).to(x.device)
        index = pair_nearest(m.token(x), m.token(pool_images))
        return codes[index.to(codes.device)], pool_images[index]

    def _decode_steps(self, codec: DiffusionCodec) -> int:
        """DDIM steps while optimising: ``decode_steps``, at most the codec's own (None: the codec's)."""
        return codec.steps if self.decode_steps is None else min(int(self.decode_steps), codec.steps)

    @staticmethod
    def _matched(identity: IdentityModel, reference: Tensor, embedded: Tensor, margin: float = 0.0) -> Tensor:
        """Which pairs ``identity`` matches with its threshold moved ``margin`` towards "different" (a cosine
        threshold lowered, a distance threshold raised): ``~_matched(..., margin)`` is a clear non-match."""
        scores = identity.score(reference, embedded)
        if identity.metric == "cosine":
            return scores >= identity.threshold - margin
        return scores <= identity.threshold + margin

    def _optimise(self, m: _Models, x: Tensor, x_T: Tensor, z_start: Tensor, ref_id: Tensor,
                  fake_id: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Adam on ``z_A`` from ``z_start`` with per-image stopping; returns ``(z_A, steps taken, criterion met)``.

        Each active image's loss term depends on its own code alone and Adam's update is element-wise, so the
        active set is compacted as images stop (``rows`` maps it to the batch)."""
        identity, codec = m.identity, m.codec
        irs = self.scheme == "irs"
        steps = self._decode_steps(codec)
        lr, lam = float(self.lr), float(self.lambda_att)
        target_id = fake_id if irs else ref_id
        with torch.no_grad():
            ref_patches = m.patches(x)
        n = x.shape[0]
        z = z_start.detach().clone().float()
        scale = codec.density.scale.to(z.device).float()  # per-dimension spread of z_bar: lr's unit
        moment1, moment2 = torch.zeros_like(z), torch.zeros_like(z)
        rows = torch.arange(n, device=z.device)
        taken = torch.full((n,), int(self.iterations), dtype=torch.long, device=z.device)
        met = torch.zeros(n, dtype=torch.bool, device=z.device)
        for step in range(int(self.iterations) + 1):
            code = z[rows].requires_grad_(True)
            decoded = codec.decode_semantic(code, x_T[rows], steps=steps).to(x.device)
            embedded = identity.embed(decoded)
            done = ~self._matched(identity, ref_id[rows], embedded.detach(), float(self.margin))
            if irs:
                done &= self._matched(identity, target_id[rows], embedded.detach())
            done = done.to(z.device)
            met[rows[done]] = True
            taken[rows[done]] = step
            keep = ~done
            if step == int(self.iterations) or not bool(keep.any()):
                break
            if irs:
                id_loss = 1.0 - _cos(embedded, target_id[rows]).abs()
            else:
                id_loss = _cos(embedded, ref_id[rows]).abs()
            att_loss = (m.patches(decoded) - ref_patches[rows]).abs().mean(1)
            loss = (id_loss + lam * att_loss).to(z.device)
            (grad,) = torch.autograd.grad(loss[keep].sum(), code)
            rows, grad = rows[keep], grad[keep]
            moment1, moment2 = moment1[keep], moment2[keep]
            z[rows] = z[rows] - adam_update(moment1, moment2, grad, step + 1, lr * scale)
        return z, taken, met

    def _warn_if_kept(self, reached: Tensor) -> None:
        """One warning line when images leave without meeting the criterion: they may still be recognised."""
        kept = int((~reached).sum())
        if reached.numel() == 0 or kept <= WARN_KEPT_FRACTION * reached.numel():
            return
        goal = ("still matched to their source, or not yet to their paired fake," if self.scheme == "irs"
                else "still matched to their source")
        warnings.warn(f"latent-anonymizer: {kept} of {reached.numel()} images were {goal} by the identity "
                      f"model within {int(self.iterations)} iterations and may still be recognised (raise "
                      f"iterations or lr)", UserWarning, stacklevel=3)

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``: ``stop_reached_fraction`` (share of images that met the stop
        criterion), ``latent_anonymizer_iterations_mean`` (Adam steps taken), ``latent_anonymizer_id_cos_mean``
        (cosine of ``E_A`` between each released image and its source) and ``latent_anonymizer_fake_cos_mean``
        (between each released image and its paired fake); empty before the first call."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            return {}
        taken, reached, cos_real, cos_fake, _ = stats
        return {"stop_reached_fraction": float(reached.float().mean()),
                "latent_anonymizer_iterations_mean": float(taken.float().mean()),
                "latent_anonymizer_id_cos_mean": float(cos_real.mean()),
                "latent_anonymizer_fake_cos_mean": float(cos_fake.mean())}

    def iterations_per_image(self) -> Tensor:
        """``(N,)`` int64: the Adam steps each image of the last ``transform`` took before it stopped.

        Raises:
            InvalidInputError: no ``transform`` yet.
        """
        return self._last("iterations_per_image")[0]

    def paired_fakes(self) -> Tensor:
        """``(N, C, H, W)`` float32 in ``[0, 1]``: each image's paired fake in the last ``transform`` (the
        optimisation's start with the fake's own noise map; generated images, no real data).

        Raises:
            InvalidInputError: no ``transform`` yet.
        """
        return self._last("paired_fakes")[4]

    def _last(self, what: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        stats = getattr(self, "_stats", None)
        if stats is None:
            raise InvalidInputError(f"latent-anonymizer: {what} reports the last transform; call transform first")
        return stats
