"""The :class:`VisualMixer` protector: Algorithm 1's bounds and levels, keys, and the Protector contract
around :func:`~privis.methods.visualmixer.permute.shuffle_regions`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from privis import references
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import (
    NotFittedError,
    Protector,
    bool_param,
    check_images,
    check_labels,
    choice_param,
    float_param,
    int_param,
    path_param,
    seed_param,
)
from privis.methods.visualmixer.keys import item_tag, key_check_value, read_key, seed_secret, stored_pixels
from privis.methods.visualmixer.partition import Statistic, _vfe_density_map, window_levels
from privis.methods.visualmixer.permute import PERMUTATIONS, ShuffleStats, _checked_array, shuffle_regions
from privis.methods.visualmixer.service import WindowSort
from privis.privacy import keyspace_bits_from_counts
from privis.privacy.visualmixer_bounds import (
    alpha0,
    window_lower_bound,
    window_upper_bound,
    window_variances,
)
from privis.random import resolve_seed

__all__ = ["VisualMixer"]


@register
class VisualMixer(Protector):
    """VisualMixer: VFE-guided spatial and per-channel pixel shuffling (Li et al., NDSS 2024, arXiv:2404.04098).

    Algorithm 1 of Q. Li, Y. Zhang, J. Ren, Q. Li and Y. Zhang, "You Can Use But Cannot Recognize: Preserving
    Visual Privacy in Deep Neural Networks", NDSS 2024; the choices beyond the paper are in the notes of
    :mod:`privis.methods.visualmixer`.

    Args:
        target_vfe: the VFE the shuffled image must reach, which sets ``WS_l`` (Sec. IV-B). Default 4.0 in
            ``"normalized"`` units, the mean VFE of a 2x2 shuffle (Eq. 12 at WS = 2); at 95% confidence
            this gives ``WS_l = 3``, which line 12 floors to the 2x2 window.
        vfe_units: ``"normalized"`` (Eq. 12's units) or ``"image"`` (Eq. 3 on ``[0, 1]`` pixels, the units of
            :func:`privis.metrics.vfe`; the window variances are then measured on the ``fit`` data).
        confidence: probability with which the target must be reached.
        bound_method: ``"chi2"`` (exact chi-square tail) or ``"normal"`` (Eq. 12 approximation).
        bias_d, alpha: the output bias ``d`` and confidence ``alpha`` of Sec. IV-C, in units of the kernel
            weights' standard deviation. The paper gives no values; 3.0 and 0.3 give ``alpha_0 = 0.81`` and
            ``WS_u = 3 + 2 * 2 = 7``, so the windows are 4 and 2 (``bias_d=3.5`` gives ``WS_u = 9`` and, with
            ``max_window_fraction=None``, windows 8, 4, 2, which on Fashion-MNIST cost LeNet-5 5.5 accuracy
            points instead of 0.6).
        kernel_mu, kernel_sigma: the normal law of kernel weights of the Monte Carlo.
        ws0: ``WS_0`` of Algorithm 1 line 1 (3, the base case).
        mc_samples: Monte Carlo draws for ``alpha_0`` (seeded: the bounds are deterministic).
        ws_lower, ws_upper: give ``WS_l`` / ``WS_u`` directly instead of deriving them.
        max_window_fraction: the derived ``WS_u`` is capped at this fraction of the image's shorter side (never
            below the smallest window). Beyond the paper: ``WS_u`` bounds a 3x3 kernel's output bias and does
            not depend on image size, but the paper's smallest images (28x28 MNIST) meet ``WS_u = 7`` at a
            quarter of their side, and 0.25 keeps every size the paper uses unchanged (28: 7, 32: 8, 224: 56).
            On 8x8 digits the uncapped ``WS_u = 7`` shuffles quarter-image 4x4 windows, which no model learns
            from (see docs/results.md); capped, the windows are 2x2. None: no cap. An explicit ``ws_upper`` is
            never capped.
        window: uniform mode: shuffle every region of this size (any size; edges absorb remainders) instead
            of Algorithm 1 -- the fixed-window baselines of Fig. 3. ``None``: Algorithm 1.
        statistic: the split test: ``"vfe"`` (the paper), ``"variance"`` (shuffle-invariant, needed to invert),
            ``"auto"`` (``"variance"`` with a key, else ``"vfe"``).
        low_vfe_window: ``"current"`` or ``"half"``, see the module notes.
        channel_shuffle: independent permutations per channel (the paper); False shares one permutation.
        key_file: path of a 32-byte key (:func:`generate_key`): keyed, invertible mode. Images are quantised
            to 8 bits first (``round(255 x) / 255``, see the module notes), so :meth:`inverse_transform` of a
            stored output gives those 8-bit values back exactly. The key is read from this file at ``fit``
            and again after unpickling; it is never pickled and never recorded next to the outputs (the
            path is not recorded either).
        n_jobs: worker threads (default: ``torch.get_num_threads()``).
        permutations: how the permutations are drawn (see the module notes): ``"table"`` (per-image ``PCG64``
            streams and permutation tables, numpy on the CPU: the fastest on a CPU; images on a GPU are moved
            to the CPU and back), ``"counter"`` (sort keys from a keyed hash of each position: everything runs
            on the images' device, with the same output on the CPU and on CUDA), or ``"auto"``: ``"counter"``
            in keyed mode (on every device, so that a keyed output is the same bit for bit wherever it was made
            and restores anywhere) and for unkeyed images on a GPU or other device; ``"table"`` for unkeyed
            images on the CPU. The two schemes give different outputs for the same seed or key; a keyed output
            restores only with the scheme it was made with, which the engine records next to the outputs
            (:meth:`public_record`). Keyed outputs made before keyed ``"auto"`` meant ``"counter"`` used the
            table scheme: ``privis unprotect`` finds that from their manifest; through Python, pass
            ``permutations="table"`` to invert them.
        random_state: None draws permutations from OS entropy; an int makes every image's permutation a
            function of the image (or its id) and the seed.

    Examples:
        >>> import torch
        >>> x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> vm = VisualMixer(random_state=0).fit(x)
        >>> vm.levels_, vm.transform(x).shape
        ((4, 2), torch.Size([2, 1, 28, 28]))
    """

    name = "visualmixer"
    accepts_ids = True
    citation = references.VISUALMIXER
    param_specs = {
        "target_vfe": float_param("VFE the shuffled image must reach (sets WS_l), in vfe_units", ge=0, le=1e6),
        "vfe_units": choice_param("normalized (Eq. 12) or image (Eq. 3 on [0, 1] pixels)", ("normalized", "image")),
        "confidence": float_param("probability with which the target VFE must be reached", gt=0, lt=1),
        "bound_method": choice_param("chi2 (exact tail) or normal (Eq. 12 approximation)", ("chi2", "normal")),
        "bias_d": float_param("output bias d of Sec. IV-C, in kernel-weight standard deviations", ge=0, le=1e3),
        "alpha": float_param("confidence alpha of Sec. IV-C", gt=0, lt=1),
        "kernel_mu": float_param("mean of the kernel weights of the Monte Carlo", ge=-1e6, le=1e6),
        "kernel_sigma": float_param("standard deviation of those weights", gt=0, le=1e6),
        "ws0": int_param("WS_0 of Algorithm 1 line 1, pixels", ge=2, le=65_536),
        "mc_samples": int_param("Monte Carlo draws for alpha_0 (memory grows with it)", ge=100, le=10_000_000),
        "ws_lower": int_param("WS_l given directly, pixels (none: derived)", ge=2, le=65_536, optional=True),
        "ws_upper": int_param("WS_u given directly, pixels (none: derived)", ge=1, le=65_536, optional=True),
        "max_window_fraction": float_param("cap of the derived WS_u, share of the shorter side (none: no cap)",
                                           gt=0, le=1, optional=True),
        "window": int_param("uniform mode: shuffle regions of this side, pixels (none: Algorithm 1)", ge=2,
                            le=65_536, optional=True),
        "statistic": choice_param("split test: vfe (the paper), variance (invertible) or auto",
                                  ("auto", "vfe", "variance")),
        "low_vfe_window": choice_param("window of low-VFE regions: current or half", ("current", "half")),
        "channel_shuffle": bool_param("independent permutations per channel (the paper)"),
        "key_file": path_param("32-byte key file of the keyed, invertible mode (none: not keyed)", optional=True),
        "n_jobs": int_param("worker threads (none: torch's thread count)", ge=1, le=1024, optional=True),
        "permutations": choice_param("permutation scheme: table (numpy, CPU), counter (on the images' device) "
                                     "or auto", ("auto", *PERMUTATIONS)),
        "random_state": seed_param(),
    }
    private_params = frozenset({"key_file"})
    stochastic = True

    def __init__(
        self,
        target_vfe: float = 4.0,
        vfe_units: Literal["normalized", "image"] = "normalized",
        confidence: float = 0.95,
        bound_method: Literal["chi2", "normal"] = "chi2",
        bias_d: float = 3.0,
        alpha: float = 0.3,
        kernel_mu: float = 0.0,
        kernel_sigma: float = 1.0,
        ws0: int = 3,
        mc_samples: int = 20000,
        ws_lower: int | None = None,
        ws_upper: int | None = None,
        max_window_fraction: float | None = 0.25,
        window: int | None = None,
        statistic: Statistic = "auto",
        low_vfe_window: str = "current",
        channel_shuffle: bool = True,
        key_file: str | None = None,
        n_jobs: int | None = None,
        permutations: Literal["auto", "table", "counter"] = "auto",
        random_state: int | None = None,
    ) -> None:
        self.target_vfe = target_vfe
        self.vfe_units = vfe_units
        self.confidence = confidence
        self.bound_method = bound_method
        self.bias_d = bias_d
        self.alpha = alpha
        self.kernel_mu = kernel_mu
        self.kernel_sigma = kernel_sigma
        self.ws0 = ws0
        self.mc_samples = mc_samples
        self.ws_lower = ws_lower
        self.ws_upper = ws_upper
        self.max_window_fraction = max_window_fraction
        self.window = window
        self.statistic = statistic
        self.low_vfe_window = low_vfe_window
        self.channel_shuffle = channel_shuffle
        self.key_file = key_file
        self.n_jobs = n_jobs
        self.permutations = permutations
        self.random_state = random_state

    # -------------------------------------------------------------------------------- fitting
    def _check_params(self) -> None:
        if self.key_file is not None and self.statistic == "vfe":
            raise InvalidInputError("visualmixer: keyed mode needs statistic='variance' (or 'auto'): the VFE of "
                                    "the original regions cannot be recomputed from protected images, so the "
                                    "output could not be inverted")

    def fit(self, images: Tensor, labels: Tensor | None = None) -> VisualMixer:
        """Compute ``WS_u`` (Sec. IV-C) and ``WS_l`` for the images' size (Sec. IV-B); load the key.

        Fitted attributes: ``ws_upper_``, ``ws_lower_``, ``alpha0_`` (None when ``ws_upper`` was given),
        ``window_variances_`` (``units="image"`` only), ``image_size_``, ``statistic_``, ``keyed_``,
        ``key_check_`` (:func:`key_check_value` of the key, None without one).

        Raises:
            InvalidInputError: bad parameters or images, an unreadable key file.
        """
        self.validate_params()
        images = check_images(images)
        check_labels(labels, images.shape[0])
        h, w = images.shape[-2:]
        self.keyed_ = self.key_file is not None
        self._key = read_key(self.key_file) if self.key_file is not None else None
        self.key_check_ = key_check_value(self._key) if self._key is not None else None
        self.statistic_ = ("variance" if self.keyed_ else "vfe") if self.statistic == "auto" else self.statistic
        if self.keyed_ and self.vfe_units == "image" and self.ws_lower is None and self.window is None:
            raise InvalidInputError("keyed mode with vfe_units='image' needs ws_lower: the window variances of the "
                                    "originals cannot be measured again on protected data when inverting")
        self.image_size_ = (int(h), int(w))
        self.window_variances_ = None
        if self.vfe_units == "image" and self.window is None and self.ws_lower is None:
            sample = images[: min(images.shape[0], 2000)].cpu().numpy()
            self.window_variances_ = window_variances(sample, range(2, min(h, w) + 1))
        if self.ws_upper is not None:
            self.alpha0_, self.ws_upper_ = None, int(self.ws_upper)
        else:
            self.alpha0_ = _cached_alpha0(float(self.bias_d), float(self.kernel_mu), float(self.kernel_sigma),
                                          int(self.mc_samples))
            self.ws_upper_ = window_upper_bound(self.alpha, self.alpha0_, ws0=self.ws0, max_ws=max(h, w))
        self.ws_lower_ = self._lower_bound(int(h), int(w))
        self.levels_ = self._levels(int(h), int(w))
        self._entropy = np.random.SeedSequence(resolve_seed(None))
        self._calls = 0
        self._diag: dict[str, float] = {}
        self._warned_depth = False
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state without the raw key: it stays in ``key_file`` and is read again when needed."""
        state = self.__dict__.copy()
        if "_key" in state:
            state["_key"] = None
        return state

    def _lower_bound(self, h: int, w: int) -> int:
        if self.ws_lower is not None:
            return int(self.ws_lower)
        if self.window is not None:
            return int(self.window)
        return window_lower_bound(float(self.target_vfe), h, w, confidence=float(self.confidence),
                                  method=self.bound_method, units=self.vfe_units,
                                  sigma2=self.window_variances_)

    def _levels(self, h: int, w: int) -> tuple[int, ...]:
        if self.window is not None:  # uniform mode; a window at least the image size is the whole image
            return (min(self.window, h, w),)
        ws_lower = self.ws_lower_ if (h, w) == self.image_size_ else self._lower_bound(h, w)
        fraction = self.max_window_fraction if self.ws_upper is None else None  # an explicit WS_u is not capped
        return window_levels(h, w, ws_lower, self.ws_upper_, max_side_fraction=fraction)

    def _check_fitted(self) -> None:
        if not hasattr(self, "ws_upper_"):
            raise NotFittedError("VisualMixer must be fitted before transform; call fit(images) first")

    # ------------------------------------------------------------------------------- transform
    def _key_bytes(self) -> bytes:
        """The key: kept in memory after ``fit``, read again from ``key_file`` after unpickling."""
        key = getattr(self, "_key", None)
        if key is None:
            if self.key_file is None:
                raise InvalidInputError("VisualMixer without key_file has no key")
            try:
                key = read_key(self.key_file)
            except InvalidInputError as exc:
                raise InvalidInputError(f"keyed VisualMixer cannot read its key again ({exc}); the key is kept "
                                        "only in its file, never in a pickled protector") from exc
            if getattr(self, "key_check_", None) not in (None, key_check_value(key)):
                raise InvalidInputError(f"key file {self.key_file} no longer holds the key this protector was "
                                        "fitted with")
            self._key = key
        return key

    def _secret(self) -> bytes | None:
        if self.keyed_:
            return self._key_bytes()
        if self.random_state is None:
            return None
        return seed_secret(self.random_state)

    def _run(self, images: Tensor, ids: Any, *, inverse: bool) -> Tensor:
        self._check_fitted()
        device = images.device if isinstance(images, Tensor) else None
        if inverse and not self.keyed_:
            raise InvalidInputError("inverse_transform needs the keyed mode (key_file=...); without a key the "
                                    "permutations are not recoverable")
        if self.keyed_:  # the 8-bit values a file stores (see the package notes)
            images = self._stored_values(check_images(images).detach().float(), note=not inverse)
        elif not isinstance(images, Tensor) or images.ndim != 4:
            check_images(images)  # raises the precise error before the shape is used
        scheme = self._scheme(images.device)
        h, w = images.shape[-2:]
        levels = self._levels(int(h), int(w))
        self._calls += 1
        stats = ShuffleStats()
        out = shuffle_regions(images, levels, statistic=self.statistic_, low_vfe_window=self.low_vfe_window,
                              channel_shuffle=self.channel_shuffle, secret=self._secret(), ids=ids,
                              entropy=np.random.SeedSequence(self._entropy.entropy, spawn_key=(self._calls,)),
                              inverse=inverse, n_jobs=self.n_jobs, stats=stats, permutations=scheme)
        if not inverse:
            self._record(out[:16].cpu().numpy(), stats, levels, images.shape[1] if self.channel_shuffle else 1)
        return out.to(device)

    def _scheme(self, device: torch.device) -> str:
        """The permutation scheme ``"auto"`` resolves to for images on ``device`` (see ``permutations``)."""
        scheme = getattr(self, "permutations", "auto")  # protectors pickled before the parameter existed
        if scheme != "auto":
            return scheme
        return "counter" if self.keyed_ or device.type != "cpu" else "table"

    def _stored_values(self, x: Tensor, *, note: bool) -> Tensor:
        """``round(255 x) / 255`` as a new float32 tensor on ``x``'s device (the values of :func:`stored_pixels`):
        the keyed mode shuffles what an 8-bit file stores.

        With ``note``, the first batch holding finer values (16-bit or float data) gets a warning that they
        are stored and restored at 8 bits.
        """
        scaled = x.clamp(0.0, 1.0) * 255
        levels = torch.round(scaled)
        if (note and not self._warned_depth and x.numel()
                and float((scaled - levels).abs().max()) > 1e-3):
            self._warned_depth = True
            warnings.warn("keyed VisualMixer stores and restores images at 8 bits: these images hold finer values "
                          "(16-bit or float data), which are rounded to round(255 x)/255 before shuffling; "
                          "the restored images are those 8-bit values", UserWarning, stacklevel=4)
        return levels / 255

    def _record(self, head: np.ndarray, stats: ShuffleStats, levels: tuple[int, ...], planes: int) -> None:
        """Keep the figures :meth:`diagnostics` reports (VFE after is measured on ``head``, the first 16 outputs)."""
        counts, sizes = stats.region_counts, stats.region_sizes
        bits, paper_bits = keyspace_bits_from_counts(counts, sizes, planes)
        pixels = counts * sizes  # (n, R) pixels per region class
        diag = {
            "vfe_before_mean": float(stats.vfe_before.mean()),
            "vfe_after_mean": float(_vfe_density_map(head).mean(dtype=np.float64)),
            "keyspace_bits_mean": float(bits.mean()),
            "keyspace_bits_paper_mean": float(paper_bits.mean()),
            "regions_mean": float(counts.sum(1).mean()),
            "ws_lower": float(self.ws_lower_),
            "ws_upper": float(self.ws_upper_),
            "window_largest": float(levels[0]),
        }
        total = float(pixels.sum())
        for li, s in enumerate(levels):
            diag[f"pixel_share_window_{s}"] = float(pixels[:, stats.region_levels == li].sum() / total)
        self._keyspace_bits = bits
        self._diag = diag

    def transform(self, images: Tensor, labels: Tensor | None = None, *,
                  ids: Sequence[Any] | Tensor | np.ndarray | None = None) -> Tensor:
        """Shuffle ``images`` ``(N, C, H, W)`` by Algorithm 1; returns the same shape, dtype float32.

        Args:
            images: canonical images in ``[0, 1]``.
            labels: ignored (the method is task-agnostic), but checked: ``(N,)`` integers or None.
            ids: optional per-image ids (ints, strings or bytes) for the seeded and keyed modes, combined with
                the shuffle-invariant content id (see the module notes). Ignored when drawing from OS entropy.
        """
        if labels is not None and isinstance(images, Tensor) and images.ndim == 4:  # else _run names the images
            check_labels(labels, images.shape[0])
        return self._run(images, ids, inverse=False)

    def inverse_transform(self, protected: Tensor, *, ids: Sequence[Any] | Tensor | np.ndarray | None = None,
                          ) -> Tensor:
        """Undo :meth:`transform` exactly with the key (keyed mode only); ``ids`` as given to ``transform``.

        Args:
            protected: ``(N, C, H, W)`` keyed outputs in ``[0, 1]`` (8-bit values, as stored in a PNG).

        Returns:
            ``(N, C, H, W)`` float32: ``round(255 x) / 255`` of the originals ``x`` when ``protected``, the key
            and the ids are the ones used; a wrong key, wrong ids or edited pixels give a wrong image, which
            only :func:`item_tag` detects.

        Raises:
            InvalidInputError: not fitted in keyed mode, or bad images/ids.
        """
        return self._run(protected, ids, inverse=True)

    def needs_exact_output(self) -> bool:
        """True in keyed mode: only losslessly stored outputs can be restored."""
        return self.key_file is not None

    def item_tags(self, images: Tensor, ids: Sequence[str]) -> list[str] | None:
        """Keyed mode: :func:`item_tag` of each image's 8-bit values ``round(255 x)`` under its id; else None.

        Args:
            images: ``(N, C, H, W)`` originals in ``[0, 1]`` (or restored images, to check them).
            ids: ``N`` item ids (strings, ints or bytes), the ones the engine records with each item.

        Raises:
            InvalidInputError: bad images, ids of another length or type, an unreadable key file.
        """
        if self.key_file is None:
            return None
        x = stored_pixels(_checked_array(images))
        if len(ids) != x.shape[0]:
            raise InvalidInputError(f"ids must have one entry per image ({x.shape[0]}), got {len(ids)}")
        key = self._key_bytes()
        return [item_tag(key, ident, pixels) for ident, pixels in zip(ids, x, strict=True)]

    def public_record(self) -> dict[str, Any]:
        """Keyed mode: ``{"key_check": key_check_value(key), "restore_params": {"permutations": scheme}}`` (never
        the key): the check value and the permutation scheme the outputs were made with; else ``{}``."""
        if self.key_file is None:
            return {}
        return {"key_check": key_check_value(self._key_bytes()),
                "restore_params": {"permutations": self._scheme(torch.device("cpu"))}}

    @classmethod
    def legacy_restore_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Keyed outputs whose manifest records no ``restore_params`` were made when keyed ``"auto"`` (or a
        version without the parameter) meant the table scheme: restore them with it."""
        return {"permutations": "table"} if params.get("permutations", "auto") == "auto" else {}

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``.

        Mean VFE before/after (Eq. 3-4 on ``[0, 1]`` pixels; before on all images, after on the first 16),
        mean keyspace bits per image (product and the paper's sum formula), mean number of regions, the
        bounds, and the share of pixels shuffled at each window size.
        """
        return dict(getattr(self, "_diag", {}))

    def keyspace_bits(self) -> np.ndarray:
        """Per-image keyspace of the last ``transform``, ``(N,)`` float64 bits: ``log2 prod_i (k_i!)^C`` over
        each image's actual regions (:func:`privis.privacy.keyspace_bits_from_counts`); empty before the
        first call. A figure of the call, like :meth:`diagnostics`, not fitted state."""
        return np.array(getattr(self, "_keyspace_bits", np.empty(0)), dtype=np.float64)

    def service_input_layer(self) -> nn.Module:
        """A :class:`WindowSort` on the smallest window: the server's model sees each cell sorted.

        Beyond the paper. The information a VisualMixer image keeps is each region's pixel multiset; the
        order inside a region is noise that a model otherwise has to learn to ignore from one random draw
        per image. Sorting the smallest-window cells (every region is a union of them) removes that noise
        inside each cell. It needs only the protected image and the public grid, so it reveals nothing
        more; where all regions are smallest-window cells (8x8 digits) the model sees a deterministic image.
        """
        self._check_fitted()
        return WindowSort(self.levels_[-1])

    def invariants(self) -> dict[str, Any]:
        """``{"region_multisets": levels_}`` (None before ``fit``): shuffles keep each final region's per-channel
        pixel multiset; regions of the coarsest window are unions of final regions, so their multisets (and
        means) are exact, and finer windows' means estimate them without bias (see
        :meth:`Protector.invariants`)."""
        levels = getattr(self, "levels_", None)
        return {"region_multisets": tuple(int(s) for s in levels) if levels else None}


@lru_cache(maxsize=16)
def _cached_alpha0(d: float, mu: float, sigma: float, samples: int) -> float:
    return alpha0(d, mu_w=mu, sigma_w=sigma, samples=samples, seed=0)
