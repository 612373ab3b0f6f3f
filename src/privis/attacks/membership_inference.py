"""``membership-inference``: was this original image in the service model's (protected) training set?

VisualMixer evaluates the shadow-model attack of Shokri et al. (S&P 2017, arXiv:1610.05820) on models trained
on shuffled data (Li et al., NDSS 2024, arXiv:2404.04098, Sec. V-C, Fig. 10). Two attacks, scored by ROC AUC
and by the true-positive rate at 1 % false positives (Carlini et al., S&P 2022: the low-FPR regime is what matters):

* threshold attacks (Yeom et al., CSF 2018; Salem et al., NDSS 2019): the score is the negative
  cross-entropy loss, or the confidence in the true class;
* shadow model (Shokri et al.): the attacker trains a model of the service's architecture on half of its
  auxiliary data, protected with the public method and fresh randomness, keeps the other half out, and fits
  a logistic regression (scikit-learn) from the model's outputs (sorted top-3 probabilities, true-class
  probability, loss) to "in"/"out"; the regression then scores the service model's outputs.

Threat model: black-box query access to the service model's output probabilities; the attacker holds
candidate records *in original form* with their labels (members: ``context.member_images``, the originals
of the service's training set; non-members: ``context.holdout_images``) and may query them as they are
(``original``) or protected by itself with fresh randomness (``protected``). Auxiliary data (for the shadow
model and the protected queries) as granted. For comparison, the loss attack is also run against
``context.reference_model`` (same architecture trained on the originals): ``reference_*`` scores.

``auc`` and ``tpr_at_1fpr`` in the scores are the maxima over attacks and query forms (worst case).
The outcome has no images (``recovered`` is None).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor, nn

from privis import models, references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome
from privis.errors import InvalidInputError
from privis.methods import Protector, check_images, check_labels
from privis.methods.base import bool_param, int_param
from privis.random import resolve_seed


def output_features(model: nn.Module, images: Tensor, labels: Tensor) -> np.ndarray:
    """Per-sample attack features ``(N, 5)``: top-3 probabilities (sorted), true-class probability, CE loss."""
    logits = models.predict(model, images)  # on the CPU
    labels = labels.cpu()
    probs = logits.softmax(1)
    k = min(3, probs.shape[1])
    top = probs.topk(k, dim=1).values
    if k < 3:
        top = F.pad(top, (0, 3 - k))
    true = probs.gather(1, labels.view(-1, 1))
    loss = F.cross_entropy(logits, labels, reduction="none").view(-1, 1)
    return torch.cat([top, true, loss], 1).double().numpy()


def roc_scores(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[float, float]:
    """ROC AUC and TPR at 1 % FPR of scores where larger means "member"."""
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(y, s)
    return float(roc_auc_score(y, s)), float(tpr[fpr <= 0.01].max())


@register_attack
class MembershipInference(Attack):
    """Loss/confidence-threshold and shadow-model membership inference (see the module notes).

    Args:
        max_candidates: members and non-members used (each, balanced).
        shadow: run the shadow-model attack when auxiliary data is granted.
        shadow_epochs: training epochs of the shadow model (mirror the service's if known).
        max_aux: at most this many auxiliary images (half in, half out of the shadow model).
    """

    name = "membership-inference"
    citation = references.MEMBERSHIP_INFERENCE
    param_specs = {
        "max_candidates": int_param("most members and non-members scored", ge=1, le=10_000_000),
        "shadow": bool_param("calibrate with a shadow model on attacker-protected auxiliary data"),
        "shadow_epochs": int_param("the shadow model's training epochs", ge=1, le=10_000),
        "max_aux": int_param("most auxiliary images used (none: all)", ge=1, le=10_000_000, optional=True),
    }

    def __init__(self, max_candidates: int = 1000, shadow: bool = True, shadow_epochs: int = 30,
                 max_aux: int | None = 4000) -> None:
        self.max_candidates = max_candidates
        self.shadow = shadow
        self.shadow_epochs = shadow_epochs
        self.max_aux = max_aux

    def _shadow(self, context: AttackContext, mine: Protector | None, num_classes: int,
                ) -> tuple[nn.Module, Tensor, Tensor, int] | None:
        """The shadow model trained on the first half of the (attacker-protected) auxiliary data, or None."""
        if not self.shadow or mine is None or context.aux_images is None or context.aux_labels is None:
            return None
        aux_protected, aux, aux_labels = context.attacker_protected_aux(self.name, self.max_aux)
        assert aux_labels is not None  # context.aux_labels was granted (checked above)
        half = aux.shape[0] // 2
        if half < 10:
            return None
        seed = resolve_seed(context.seed)
        arch = getattr(context.service_model, "arch", None) or "lenet5"
        shadow = models.create_seeded(arch, seed, num_classes=num_classes, in_channels=aux.shape[1],
                                      image_size=(aux.shape[-2], aux.shape[-1]))
        models.train(shadow, aux_protected[:half], aux_labels[:half],
                     epochs=self.shadow_epochs, seed=seed, desc="membership-inference: shadow")
        return shadow, aux, aux_labels, half

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Score members vs non-members against the service (and reference) model."""
        context.require("service_model", "member_images", "member_labels", "holdout_images", "holdout_labels",
                        attack=self.name)
        # granted: require() raised otherwise
        service_model = cast(nn.Module, context.service_model)
        members = check_images(cast(Tensor, context.member_images), name="member_images")
        holdout = check_images(cast(Tensor, context.holdout_images), name="holdout_images")
        m_labels = cast(Tensor, check_labels(context.member_labels, members.shape[0]))
        h_labels = cast(Tensor, check_labels(context.holdout_labels, holdout.shape[0]))
        n = min(members.shape[0], holdout.shape[0], self.max_candidates)
        if n < 10:
            raise InvalidInputError(f"membership inference needs >= 10 members and non-members, got {n}")
        members, m_labels, holdout, h_labels = members[:n], m_labels[:n], holdout[:n], h_labels[:n]
        num_classes = models.num_classes_of(service_model, members[:1]) or int(m_labels.max()) + 1
        mine = (context.attacker_protector(self.name)
                if context.protector is not None or context.aux_images is not None else None)
        forms: dict[str, Protector | None] = {"original": None}
        if mine is not None:
            forms["protected"] = mine
        shadow = self._shadow(context, mine, num_classes)
        scores: dict[str, float] = {}
        for form, protector in forms.items():
            if protector is None:
                q_in, q_out = members, holdout
            else:
                q_in, q_out = protector.transform(members, m_labels), protector.transform(holdout, h_labels)
            f_in = output_features(service_model, q_in, m_labels)
            f_out = output_features(service_model, q_out, h_labels)
            for attack, column in (("loss", 4), ("confidence", 3)):
                sign = -1.0 if attack == "loss" else 1.0
                auc, tpr = roc_scores(sign * f_in[:, column], sign * f_out[:, column])
                scores[f"{form}_{attack}_auc"], scores[f"{form}_{attack}_tpr_at_1fpr"] = auc, tpr
            if shadow is not None:
                model, aux, aux_labels, half = shadow
                queried = aux if protector is None else protector.transform(aux, aux_labels)
                y = np.r_[np.ones(half), np.zeros(aux.shape[0] - half)]
                regression = LogisticRegression(max_iter=1000).fit(output_features(model, queried, aux_labels), y)
                auc, tpr = roc_scores(regression.predict_proba(f_in)[:, 1], regression.predict_proba(f_out)[:, 1])
                scores[f"{form}_shadow_auc"], scores[f"{form}_shadow_tpr_at_1fpr"] = auc, tpr
        scores["auc"] = max(v for k, v in scores.items() if k.endswith("_auc"))
        scores["tpr_at_1fpr"] = max(v for k, v in scores.items() if k.endswith("_tpr_at_1fpr"))
        if context.reference_model is not None:
            r_in = output_features(context.reference_model, members, m_labels)[:, 4]
            r_out = output_features(context.reference_model, holdout, h_labels)[:, 4]
            scores["reference_loss_auc"], scores["reference_loss_tpr_at_1fpr"] = roc_scores(-r_in, -r_out)
        return AttackOutcome(self.name, context.method, variant="max over attacks", scores=scores,
                             notes=[f"{n} members and {n} non-members; query forms {list(forms)}"])
