"""privis: protect image data handed to deep-learning pipelines, and measure utility and leakage.

Canonical in-memory image form everywhere: ``torch.Tensor`` of shape ``(N, C, H, W)``, ``float32``,
values in ``[0, 1]``; labels are ``torch.long`` of shape ``(N,)`` (see ``docs/architecture.md``).

Examples:
    Load data, pick a method by name, protect, and measure how much of the image is left:

    >>> from privis import data, methods, metrics
    >>> digits = data.load("digits:test[:16]")
    >>> "veil" in methods.available()
    True
    >>> protector = methods.create("pixelate", block=4)
    >>> protected = protector.fit_transform(digits.images)
    >>> protected.shape == digits.images.shape
    True
    >>> bool(metrics.abs_ssim(digits.images, protected, win_size=3).mean() < 1.0)
    True
"""

__version__ = "0.1.0"
