"""``auxiliary-recognition``: can a recogniser tell what the protected images show?

The adversary of Ye et al., "Visual Privacy Protection in Mobile Image Recognition Using Protective
Perturbation" (ACM MMSys 2022, doi:10.1145/3524273.3528189, Sec. 3.3, Eq. 2): an
auxiliary classifier trained on *original* data stands in for a person looking at the protected image.

Threat model: the attacker holds the protected images and a classifier trained on originals of the same
distribution (``context.classifier``). Two figures:

* ``aux_acc``: that classifier's accuracy on the protected images as they are (the recovered images of this
  attack *are* the protected images, so its |SSIM| is the protected images' own);
* ``adaptive_acc`` (when auxiliary data is granted): a classifier of the same architecture trained on the
  attacker's auxiliary images protected with the public method and fresh randomness, tested on the victim's
  protected images -- a recogniser that has learnt what protected images of each class look like.

Accuracy on the restorations of the other attacks is measured by every attack itself (``aux_acc``).
"""

from __future__ import annotations

from typing import cast

from torch import Tensor

from privis import models, references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome
from privis.methods.base import bool_param, choice_param, int_param
from privis.models import available as available_models
from privis.random import resolve_seed


@register_attack
class AuxiliaryRecognition(Attack):
    """A classifier trained on originals (and one trained on attacker-protected data) reads protected images.

    Args:
        adaptive: also train the adaptive recogniser when auxiliary data is granted.
        arch, epochs: its architecture (default: the auxiliary classifier's) and training epochs.
        max_aux: at most this many auxiliary images are used.
    """

    name = "auxiliary-recognition"
    citation = references.PROTECTIVE_PERTURBATION
    param_specs = {
        "adaptive": bool_param("also train a recogniser on attacker-protected auxiliary data"),
        "arch": choice_param("architecture of that recogniser (none: the context's)", available_models, optional=True),
        "epochs": int_param("its training epochs", ge=1, le=10_000),
        "max_aux": int_param("most auxiliary images used (none: all)", ge=1, le=10_000_000, optional=True),
    }

    def __init__(self, adaptive: bool = True, arch: str | None = None, epochs: int = 15,
                 max_aux: int | None = 4000) -> None:
        self.adaptive = adaptive
        self.arch = arch
        self.epochs = epochs
        self.max_aux = max_aux

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Score the recognisers on ``protected``; the protected images are the 'recovered' ones."""
        context.require("classifier", "labels", attack=self.name)
        labels = cast(Tensor, context.labels)  # granted: require() raised otherwise
        scores: dict[str, float] = {}
        notes = ["recovered = the protected images as a person would see them"]
        if self.adaptive and context.aux_images is not None and context.aux_labels is not None:
            aux_protected, aux, aux_labels = context.attacker_protected_aux(self.name, self.max_aux)
            assert aux_labels is not None  # context.aux_labels was granted (checked above)
            seed = resolve_seed(context.seed)
            arch = self.arch or getattr(context.classifier, "arch", None) or "lenet5"
            k = max(int(aux_labels.max()), int(labels.max())) + 1
            net = models.create_seeded(arch, seed, num_classes=k, in_channels=aux.shape[1],
                                       image_size=(aux.shape[-2], aux.shape[-1]))
            models.train(net, aux_protected, aux_labels, epochs=self.epochs, seed=seed,
                         desc="auxiliary-recognition: adaptive")
            scores["adaptive_acc"] = models.evaluate(net, protected, labels)
            notes.append(f"adaptive recogniser: {arch} trained {self.epochs} epochs on {aux.shape[0]} "
                         "attacker-protected auxiliary images")
        return AttackOutcome(self.name, context.method, recovered=protected, variant="as-is", scores=scores,
                             notes=notes)
