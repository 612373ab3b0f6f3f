"""Identity models: embeddings, a similarity and a match threshold, for identity-privacy metrics.

- :class:`IdentityModel`: the contract (embed, score, same_identity, metric, threshold)
- :class:`ClassifierIdentity`: a classifier's penultimate layer as the embedding (class = identity),
  calibrated at the equal error rate; :class:`TorchScriptIdentity`: a user's ArcFace or other face model
- :class:`DlibResNetIdentity` (privis' torch port of dlib's face ResNet, white-box) and :class:`DlibIdentity`
  (dlib itself, black-box), both Euclidean at 0.6, with dlib's 5-point chip alignment
- :func:`train_exemplar_identity`: an exemplar network (the individual image as the identity, for data without
  persons), calibrated like a :class:`ClassifierIdentity`; :func:`augment_exemplar` its augmentation
- :class:`AttributeModel`: MSE, SSIM and privis' perceptual feature distance (the attribute terms of FSAP)
- metrics: :func:`identity_similarity` (ISS), :func:`iss_and_fppsr` and :func:`protection_success_rate` (FPPSR / SPR)
"""

from privis.identity.attributes import AttributeModel
from privis.identity.base import IdentityModel
from privis.identity.classifier import ARCFACE_THRESHOLD, ClassifierIdentity, TorchScriptIdentity, equal_error_threshold
from privis.identity.dlib_identity import DlibIdentity, DlibResNetIdentity
from privis.identity.exemplar import augment_exemplar, train_exemplar_identity
from privis.identity.metrics import identity_similarity, iss_and_fppsr, protection_success_rate

__all__ = ["ARCFACE_THRESHOLD", "AttributeModel", "ClassifierIdentity", "DlibIdentity", "DlibResNetIdentity",
           "IdentityModel", "TorchScriptIdentity", "augment_exemplar", "equal_error_threshold",
           "identity_similarity", "iss_and_fppsr", "protection_success_rate", "train_exemplar_identity"]
