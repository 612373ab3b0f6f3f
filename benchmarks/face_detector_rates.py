"""How often each shipped face detector finds the faces privis measures hiding on, and how fast.

Images: scikit-image's 100 LFW face crops (25x25 grey) upscaled to 100x100 (bilinear) and padded with 30 grey
pixels to 160x160, the 100 LFW non-face crops prepared the same way (false detections), and the astronaut
photograph (one face). Detectors: MTCNN (torch), CenterFace (ONNX Runtime), dlib HOG and MMOD, each at its
default settings. A hit is an image with at least one face detection.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/face_detector_rates.py
      [--json benchmarks/results/face_detector_rates.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from privis.data import astronaut, lfw_subset
from privis.detectors import REGISTRY
from privis.fsutil import atomic_write_text
from privis.metrics.detection import image_detection_rate


def prepared(images: torch.Tensor) -> torch.Tensor:
    """25x25 crops -> 100x100, padded to 160x160 with grey."""
    up = F.interpolate(images, size=(100, 100), mode="bilinear", align_corners=False).clamp(0, 1)
    return F.pad(up, (30, 30, 30, 30), value=0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    lfw = lfw_subset()
    faces, non_faces, photo = prepared(lfw.images[:100]), prepared(lfw.images[100:]), astronaut().images
    rows = []
    for name in ("mtcnn", "centerface", "dlib-hog", "dlib-mmod"):
        det = REGISTRY.create(name)
        started = time.perf_counter()
        face_rate = image_detection_rate(det.detect(faces))
        seconds = time.perf_counter() - started
        rows.append({"detector": name, "lfw_face_rate": face_rate,
                     "lfw_non_face_rate": image_detection_rate(det.detect(non_faces)),
                     "astronaut_faces": len(det.detect(photo)[0]),
                     "faces_per_second": 100 / seconds})
        print(json.dumps(rows[-1]))
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "torch_threads": torch.get_num_threads()}, indent=1))


if __name__ == "__main__":
    main()
