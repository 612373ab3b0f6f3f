"""privis.metrics: batched image metrics for torch tensors and numpy arrays.

Every function takes ``(N, C, H, W)`` batches (the canonical form is ``float32`` in ``[0, 1]``, but any
finite values are accepted) and returns one value per image (or per channel / pixel / region, as named).
Numpy inputs give numpy outputs; torch inputs give torch outputs that keep the autograd graph. Inputs must
be 4-D: add a batch dimension to a single ``(C, H, W)`` image. Bad inputs raise
:class:`privis.errors.InvalidInputError`.

- similarity: :func:`ssim`, :func:`ssim_map`, :func:`abs_ssim` (scikit-image conventions); :func:`ssim_window`,
  the window every caller uses for small images
- distortion: :func:`mse`, :func:`psnr`, :func:`l2`, :func:`ald` (ALD_p)
- Frechet distance (Heusel et al. 2017, Eq. 6): :func:`frechet_distance` of two feature sets,
  :func:`gaussian_frechet_distance` of two Gaussians, :func:`fd_privis` on a privis classifier's features
- visual feature entropy (VisualMixer Eq. 1-4): :func:`vfe_map`, :func:`vfe_regions`, :func:`vfe_channel`,
  :func:`vfe`
"""

from privis.metrics.distortion import ald, l2, mse, psnr
from privis.metrics.frechet import fd_privis, frechet_distance, gaussian_frechet_distance
from privis.metrics.ssim import abs_ssim, ssim, ssim_map, ssim_window
from privis.metrics.vfe import vfe, vfe_channel, vfe_map, vfe_regions

__all__ = [
    "abs_ssim",
    "ald",
    "fd_privis",
    "frechet_distance",
    "gaussian_frechet_distance",
    "l2",
    "mse",
    "psnr",
    "ssim",
    "ssim_map",
    "ssim_window",
    "vfe",
    "vfe_channel",
    "vfe_map",
    "vfe_regions",
]
