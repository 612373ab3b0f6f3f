"""privis: protect image data handed to deep-learning pipelines, and measure utility and leakage.

Canonical in-memory image form everywhere: ``torch.Tensor`` of shape ``(N, C, H, W)``, ``float32``,
values in ``[0, 1]``; labels are ``torch.long`` of shape ``(N,)`` (see DESIGN.md).
"""

__version__ = "0.1.0"
