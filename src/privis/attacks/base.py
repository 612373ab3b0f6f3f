"""The ``Attack`` contract: what the attacker is granted, and how leakage is measured (``docs/architecture.md``).

An attack is ``run(originals, protected, *, context) -> AttackOutcome``. ``protected`` is what the attacker
holds; ``originals`` are the images behind it, used *only* to score the outcome (never by the attack
itself): |SSIM| and PSNR of the recovered images against the originals (:mod:`privis.metrics`) and, when
the context grants an auxiliary classifier, that classifier's accuracy on the recovered images. Every
attack scores the same way, so the worst case over attacks is one method's leakage figure.

:class:`AttackContext` carries what the threat model grants. Each attack's docstring says which fields it
uses. The common threat model of this package is Kerckhoffs's: the attacker knows the method, its public
parameters and any fitted state the method publishes (a model, a generator), and can run the method with
fresh randomness of its own; only the per-call randomness (masks, permutations, mixing partners, noise)
is the defender's secret.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from privis import metrics, models
from privis.errors import InvalidInputError, NotApplicableError
from privis.methods import Protector, check_images, check_labels
from privis.methods import create as create_method
from privis.methods.base import ParamsMixin
from privis.random import resolve_seed


def image_leakage(recovered: Tensor, targets: Tensor, labels: Tensor | None = None,
                  classifier: nn.Module | None = None) -> dict[str, float]:
    """Mean |SSIM| and PSNR of ``recovered`` against ``targets``; accuracy of ``classifier`` on ``recovered``.

    ``psnr_mean`` is capped at 100 dB (identical images); ``aux_acc`` is present only with a classifier and
    labels.
    """
    win = metrics.ssim_window(*targets.shape[-2:])
    # tensors in, tensors out (the metrics return numpy only for numpy inputs)
    ssim = cast(Tensor, metrics.abs_ssim(recovered, targets, win_size=win))
    psnr = cast(Tensor, metrics.psnr(recovered, targets))
    out = {"ssim_mean": float(ssim.mean()), "psnr_mean": float(psnr.clamp(max=100.0).mean())}
    if classifier is not None and labels is not None:
        out["aux_acc"] = models.evaluate(classifier, recovered, labels)
    return out


def class_means(images: Tensor, labels: Tensor, classes: Tensor) -> Tensor:
    """Mean image ``(len(classes), C, H, W)`` of each class in ``classes`` (one ``index_add`` for the batch),
    on the device of ``images``."""
    k = max(int(classes.max()), int(labels.max())) + 1
    labels, classes = labels.to(images.device), classes.to(images.device)
    sums = torch.zeros((k, *images.shape[1:]), dtype=images.dtype, device=images.device).index_add_(0, labels, images)
    counts = torch.bincount(labels, minlength=k).clamp_min(1).to(images.dtype)
    return (sums / counts.view(-1, 1, 1, 1))[classes]


def best_of(candidates: dict[str, Tensor], originals: Tensor) -> tuple[str, list[dict[str, Any]]]:
    """The candidate restoration with the highest mean |SSIM| against ``originals``, and one row per candidate.

    The choice looks at the originals, i.e. it is an oracle over the attacker's variants: the figure it
    gives is the worst case for the defender, as a leaderboard of leakage should report.
    """
    if not candidates:
        raise InvalidInputError("no candidate restorations to choose from")
    rows: list[dict[str, Any]] = [{"variant": name, **image_leakage(images, originals)}
                                  for name, images in candidates.items()]
    best = max(rows, key=lambda r: r["ssim_mean"])
    return str(best["variant"]), rows


@dataclass
class AttackContext:
    """What the threat model grants the attacker (fields an attack does not use may stay empty).

    Attributes:
        method: registry name of the protection method (the attacker knows the method).
        params: its public parameters (anything secret, such as a seed or a key file, must be left out).
        protector: the defender's *fitted* protector when its fitted state is public (Kerckhoffs): the
            attacker reuses its models but never its randomness (see :meth:`attacker_protector`).
        aux_images, aux_labels: the attacker's own data from the same distribution, disjoint from the
            victim's.
        labels: the victim images' labels (for the accuracy of the auxiliary classifier on recoveries).
        service_model: the model the service trained on protected data (white-box for model inversion,
            black-box outputs for membership inference).
        classifier: an independent classifier trained on original data, the stand-in for a person.
        reference_model: a model of the same architecture trained on the victim's *original* training data,
            for membership inference "protected vs original" comparisons (not given to the attacker as a
            tool; only its leakage is measured for reference).
        member_images, member_labels: originals of the service model's training set (membership candidates).
        holdout_images, holdout_labels: originals of the same distribution the service model never saw.
        seed: the attacker's randomness; None draws from OS entropy. Must differ from the defender's seed.
    """

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    protector: Protector | None = None
    aux_images: Tensor | None = None
    aux_labels: Tensor | None = None
    labels: Tensor | None = None
    service_model: nn.Module | None = None
    classifier: nn.Module | None = None
    reference_model: nn.Module | None = None
    member_images: Tensor | None = None
    member_labels: Tensor | None = None
    holdout_images: Tensor | None = None
    holdout_labels: Tensor | None = None
    seed: int | None = None
    _protected_aux: dict[int | None, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def require(self, *names: str, attack: str) -> None:
        """Raise :class:`NotApplicableError` naming the first of ``names`` the context does not grant."""
        for name in names:
            if getattr(self, name) is None:
                raise NotApplicableError(f"attack {attack!r} needs context.{name}, which the threat model "
                                         "did not grant here")

    def aux(self, attack: str, limit: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The attacker's auxiliary images (at most ``limit``) and their labels; error when none were granted."""
        self.require("aux_images", attack=attack)
        images = check_images(cast(Tensor, self.aux_images), name="aux_images")  # granted: require() raised otherwise
        labels = check_labels(self.aux_labels, images.shape[0])
        if limit is not None:
            images = images[:limit]
            labels = labels[:limit] if labels is not None else None
        return images, labels

    def attacker_protected_aux(self, attack: str, limit: int | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(protected aux, aux, labels)``: the auxiliary images protected once by :meth:`attacker_protector`.

        Cached per ``limit``, so attacks run on one context share the attacker's protected copy instead of
        paying for the method again (Veil's gradient iteration is the expensive case).
        """
        images, labels = self.aux(attack, limit)
        if limit not in self._protected_aux:
            self._protected_aux[limit] = self.attacker_protector(attack).transform(images, labels)
        return self._protected_aux[limit], images, labels

    def attacker_protector(self, attack: str) -> Protector:
        """The public method run with the attacker's own fresh randomness.

        With a fitted ``protector``: a shallow copy whose ``random_state`` is the attacker's seed (fitted models
        are shared, the defender's randomness is not: it never left the defender's transform call). Without:
        ``create(method, **params)`` fitted on the auxiliary data.
        """
        seed = resolve_seed(self.seed)
        if self.protector is not None:
            mine = copy.copy(self.protector)
            if mine.stochastic:
                mine.set_params(random_state=seed)
            return mine
        protector = create_method(self.method, **{**self.params, "random_state": seed})
        images, labels = self.aux(attack)
        return protector.fit(images, labels)


@dataclass
class AttackOutcome:
    """What an attack produced, and its leakage.

    Attributes:
        attack, method: names.
        recovered: restored images ``(M, C, H, W)`` float32 in ``[0, 1]``, or None for attacks that only score.
        candidates: several restorations by name (variants of the attack); :meth:`Attack.run` keeps the one
            with the highest |SSIM| against the originals as ``recovered`` (an oracle choice: the defender's
            worst case) and lists all in ``variants``.
        target_labels: None when ``recovered`` restores the originals one for one; else ``recovered[i]`` stands
            for class ``target_labels[i]`` and is compared with the mean of that class's originals (model
            inversion), and the auxiliary classifier is asked for that class.
        references: further image sets scored like ``recovered`` (``ssim_<name>`` in ``scores``), e.g. the
            same attack on a model trained on originals.
        variant: which of the attack's variants produced ``recovered`` (e.g. ``median-3``).
        scores: flat figures: the leakage (``ssim_mean``, ``psnr_mean``, ``aux_acc``), ``ssim_protected`` /
            ``psnr_protected`` (the protected input itself, for comparison) and attack-specific numbers.
        variants: one row per variant tried, with its leakage.
        notes: what the attack did and assumed, in words.
        seconds: wall-clock time of the attack.
    """

    attack: str
    method: str
    recovered: Tensor | None = None
    candidates: dict[str, Tensor] = field(default_factory=dict)
    target_labels: Tensor | None = None
    references: dict[str, Tensor] = field(default_factory=dict)
    variant: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Attack(ParamsMixin):
    """Base class of every attack.

    Subclasses set ``name``, store their ``__init__`` arguments verbatim (budgets, filter banks), implement
    :meth:`attack`, and state their threat model in the class docstring. :meth:`run` validates inputs, times
    the attack and adds the leakage figures, so every attack is scored identically.
    """

    name: ClassVar[str] = ""

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Do the attack on ``protected`` with what ``context`` grants (never with the originals)."""
        raise NotImplementedError

    def run(self, originals: Tensor, protected: Tensor, *, context: AttackContext) -> AttackOutcome:
        """Attack ``protected`` and score the outcome against ``originals`` (both ``(N, C, H, W)`` in [0, 1]).

        Raises:
            InvalidInputError: bad tensors or shapes that differ.
            NotApplicableError: the attack does not apply to ``context.method`` or lacks a granted resource.
        """
        self.validate_params()
        originals = check_images(originals, name="originals")
        protected = check_images(protected, name="protected")
        if originals.shape != protected.shape:
            raise InvalidInputError(f"originals {tuple(originals.shape)} and protected {tuple(protected.shape)} "
                                    "must have the same shape")
        labels = check_labels(context.labels, originals.shape[0])
        t0 = time.perf_counter()
        outcome = self.attack(protected, context)
        outcome.seconds = time.perf_counter() - t0
        base = image_leakage(protected, originals, labels, context.classifier)
        outcome.scores["ssim_protected"] = base["ssim_mean"]
        outcome.scores["psnr_protected"] = base["psnr_mean"]
        if outcome.candidates:
            candidates = {k: v.detach().float().clamp(0.0, 1.0) for k, v in outcome.candidates.items()}
            outcome.variant, outcome.variants = best_of(candidates, originals)
            outcome.recovered = candidates[outcome.variant]
            outcome.candidates = {}
        if outcome.recovered is not None:
            recovered = outcome.recovered.detach().float().clamp(0.0, 1.0)
            outcome.recovered = recovered
            targets, target_labels = originals, labels
            if outcome.target_labels is not None:
                if labels is None:
                    raise InvalidInputError(f"attack {self.name!r} needs context.labels to form class means")
                target_labels = outcome.target_labels.long()
                targets = class_means(originals, labels, target_labels)
            if recovered.shape != targets.shape:
                raise InvalidInputError(f"attack {self.name!r} recovered {tuple(recovered.shape)} for targets "
                                        f"{tuple(targets.shape)}")
            outcome.scores.update(image_leakage(recovered, targets, target_labels, context.classifier))
            for name, images in outcome.references.items():
                outcome.scores[f"ssim_{name}"] = image_leakage(images.float().clamp(0, 1), targets)["ssim_mean"]
            outcome.references = {}
        return outcome

