"""Empirical lower bounds on epsilon: run a mechanism on two neighbouring inputs and try to tell them apart.

The distinguishing game of M. Jagielski, J. Ullman and A. Oprea, "Auditing Differentially Private Machine
Learning: How Private is Private SGD?", NeurIPS 2020, arXiv:2006.07709 (and M. Nasr, S. Song, A. Thakurta,
N. Papernot and N. Carlini, "Adversary Instantiation: Lower Bounds for Differentially Private Machine
Learning", IEEE S&P 2021, arXiv:2101.04535). If a mechanism is ``(epsilon, delta)``-DP, every test ``S`` that
says "the input was ``x1``" obeys ``TPR <= e^epsilon FPR + delta`` and ``TNR <= e^epsilon FNR + delta``. So
observed rates give

``epsilon >= max(log((TPR - delta) / FPR), log((1 - FPR - delta) / (1 - TPR)))``,

and with Clopper-Pearson intervals ``[lo, hi]`` on both rates (each at level ``confidence``), the lower
bound that holds with probability at least ``1 - 2 (1 - confidence)``:

``epsilon_lower = max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo)))``, clipped at 0.

(Each rate enters at the end of its interval that makes the bound smaller: the second term takes
``FPR_hi`` and ``TPR_lo``.) An audit can refute a claimed epsilon ("violated": the lower bound exceeds it);
it can never prove one.

:func:`audit_mechanism` plays the game: it runs the mechanism ``trials`` times on each input, fits a
distinguisher on the first half of the outputs (projection of the flattened output onto the difference of
the class means, with the threshold that maximises the bound on that half) and counts on the second half.

Examples:
    >>> from privis.privacy.audit import epsilon_lower_bound
    >>> round(epsilon_lower_bound(950, 1000, 50, 1000, delta=1e-5), 3)
    2.66
    >>> epsilon_lower_bound(500, 1000, 500, 1000, delta=1e-5)
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from privis.data.checks import check_int
from privis.errors import InvalidInputError
from privis.privacy.rdp import check_number
from privis.random import resolve_seed

__all__ = ["AuditResult", "audit_mechanism", "clopper_pearson", "compare", "epsilon_lower_bound"]


def _check_confidence(confidence: float) -> float:
    confidence = check_number(confidence, "confidence")
    if confidence >= 1:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")
    return confidence


def _check_audit_delta(delta: float) -> float:
    delta = check_number(delta, "delta", allow_zero=True)
    if delta >= 1:
        raise InvalidInputError(f"delta must be in [0, 1), got {delta!r}")
    return delta


def _clopper_pearson(successes: np.ndarray, trials: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import beta

    k = np.asarray(successes, dtype=np.float64)
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, beta.ppf(tail, k, trials - k + 1), 0.0)
        hi = np.where(k < trials, beta.ppf(1.0 - tail, k + 1, trials - k), 1.0)
    return lo, hi


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval of a binomial proportion at level ``confidence``.

    Args:
        successes: ``k`` in ``[0, trials]``.
        trials: ``n >= 1``.
        confidence: in ``(0, 1)``.

    Returns:
        ``(lo, hi)`` with ``lo = 0`` when ``k = 0`` and ``hi = 1`` when ``k = n``.

    Raises:
        InvalidInputError: counts out of range, a confidence outside ``(0, 1)``.
    """
    trials = check_int(trials, "trials")
    successes = check_int(successes, "successes", minimum=0)
    if successes > trials:
        raise InvalidInputError(f"successes ({successes}) exceed trials ({trials})")
    lo, hi = _clopper_pearson(np.array(successes), trials, _check_confidence(confidence))
    return float(lo), float(hi)


def _bound(tp: np.ndarray, positives: int, fp: np.ndarray, negatives: int, delta: float,
           confidence: float) -> np.ndarray:
    tpr_lo, _ = _clopper_pearson(tp, positives, confidence)
    _, fpr_hi = _clopper_pearson(fp, negatives, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
        second = np.log(np.maximum(1.0 - fpr_hi - delta, 0.0) / (1.0 - tpr_lo))
    return np.maximum(np.maximum(first, second), 0.0)


def epsilon_lower_bound(true_positives: int, positives: int, false_positives: int, negatives: int, *,
                        delta: float = 0.0, confidence: float = 0.95) -> float:
    """A lower bound on epsilon from a test's counts (module docstring), ``>= 0``.

    Args:
        true_positives: outputs of ``x1`` the test called ``x1``; of ``positives`` runs on ``x1``.
        false_positives: outputs of ``x0`` the test called ``x1``; of ``negatives`` runs on ``x0``.
        delta: the ``delta`` of the claim audited, in ``[0, 1)``.
        confidence: level of each Clopper-Pearson interval, in ``(0, 1)``; the bound holds with probability
            at least ``1 - 2 (1 - confidence)``.

    Raises:
        InvalidInputError: counts out of range, a bad delta or confidence.
    """
    positives, negatives = check_int(positives, "positives"), check_int(negatives, "negatives")
    tp, fp = check_int(true_positives, "true_positives", minimum=0), check_int(false_positives, "false_positives",
                                                                               minimum=0)
    if tp > positives or fp > negatives:
        raise InvalidInputError(f"counts exceed their runs: {tp}/{positives} true, {fp}/{negatives} false positives")
    return float(_bound(np.array(tp), positives, np.array(fp), negatives, _check_audit_delta(delta),
                        _check_confidence(confidence)))


def compare(epsilon_lower: float, epsilon_claimed: float) -> Literal["violated", "consistent"]:
    """``"violated"`` when the audit's lower bound exceeds the claimed epsilon, else ``"consistent"`` (an audit
    never proves a claim; it can only refute one).

    Raises:
        InvalidInputError: a negative or non-finite lower bound, a negative or NaN claim (``inf`` is a claim
            of nothing, never violated).
    """
    epsilon_lower = check_number(epsilon_lower, "epsilon_lower", allow_zero=True)
    if isinstance(epsilon_claimed, bool) or not isinstance(epsilon_claimed, int | float) \
            or math.isnan(epsilon_claimed) or epsilon_claimed < 0:
        raise InvalidInputError(f"epsilon_claimed must be a number >= 0, got {epsilon_claimed!r}")
    return "violated" if epsilon_lower > epsilon_claimed else "consistent"


@dataclass(frozen=True)
class AuditResult:
    """Counts and the bound of one audit (evaluation half of the outputs).

    Attributes:
        trials: runs of the mechanism on each input (both halves).
        positives, negatives: evaluation runs on ``x1`` and on ``x0``.
        true_positives, false_positives: evaluation outputs of ``x1`` / ``x0`` the distinguisher called ``x1``.
        tpr, fpr: the observed rates.
        tpr_interval, fpr_interval: their Clopper-Pearson intervals at ``confidence``.
        epsilon_lower: the lower bound on epsilon (nats), ``>= 0``.
        delta, confidence: as given.
        threshold: the distinguisher's threshold on the projected output (fitted on the training half).
    """

    trials: int
    positives: int
    negatives: int
    true_positives: int
    false_positives: int
    tpr: float
    fpr: float
    tpr_interval: tuple[float, float]
    fpr_interval: tuple[float, float]
    epsilon_lower: float
    delta: float
    confidence: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        record = asdict(self)
        record["tpr_interval"], record["fpr_interval"] = list(self.tpr_interval), list(self.fpr_interval)
        return record


def _outputs(mechanism: Callable[[Tensor], Tensor], x: Tensor, runs: int, batch_size: int) -> Tensor:
    """``runs`` outputs of ``mechanism`` on ``x`` (repeated along the batch), flattened, float64 on the CPU."""
    chunks = []
    for start in range(0, runs, batch_size):
        count = min(batch_size, runs - start)
        out = mechanism(x.expand(count, *x.shape[1:]).clone())
        if not isinstance(out, Tensor) or out.shape[0] != count:
            raise InvalidInputError(f"the mechanism must return a tensor with one output per input ({count}), got "
                                    f"{getattr(out, 'shape', type(out).__name__)}")
        chunks.append(out.detach().reshape(count, -1).to("cpu", torch.float64))
    return torch.cat(chunks)


def audit_mechanism(mechanism: Callable[[Tensor], Tensor], x0: Tensor, x1: Tensor, *, trials: int = 1000,
                    delta: float = 0.0, confidence: float = 0.95, random_state: int | None = None,
                    batch_size: int = 256) -> AuditResult:
    """Lower-bound the epsilon of a randomised mechanism on one neighbouring pair (Jagielski et al. 2020).

    Args:
        mechanism: maps a batch ``(b, ...)`` to a batch of ``b`` outputs of any shape, drawing fresh randomness
            from torch's global generator on every call (e.g. ``protector.transform`` without a seed).
        x0, x1: the two inputs, each with a leading batch dimension of 1 (``(1, C, H, W)`` images, or
            ``(1, k)`` vectors), same shape; they are repeated along the batch.
        trials: runs on each input, ``>= 4``; the first half fits the distinguisher, the second is counted.
        delta: the ``delta`` of the claim audited, in ``[0, 1)``.
        confidence: level of each Clopper-Pearson interval, in ``(0, 1)``.
        random_state: seeds torch's global generator for the runs (the caller's generator state is restored
            afterwards); None draws the seed from OS entropy.
        batch_size: inputs per call of ``mechanism``.

    Returns:
        :class:`AuditResult` for the evaluation half. Memory: the training half's outputs, ``trials x`` the
        output size in float64, are held at once.

    Raises:
        InvalidInputError: inputs of other shapes, bad counts, a mechanism that does not return one output per
            input.
    """
    trials = check_int(trials, "trials", minimum=4)
    batch_size = check_int(batch_size, "batch_size")
    delta, confidence = _check_audit_delta(delta), _check_confidence(confidence)
    if not isinstance(x0, Tensor) or not isinstance(x1, Tensor) or x0.shape != x1.shape or x0.ndim < 1 \
            or x0.shape[0] != 1:
        raise InvalidInputError("x0 and x1 must be tensors of the same shape with a leading batch dimension of 1, "
                                f"got {getattr(x0, 'shape', x0)} and {getattr(x1, 'shape', x1)}")
    train, test = trials // 2, trials - trials // 2
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(resolve_seed(random_state))
        fit0, fit1 = _outputs(mechanism, x0, train, batch_size), _outputs(mechanism, x1, train, batch_size)
        direction = fit1.mean(0) - fit0.mean(0)
        scores0, scores1 = (fit0 @ direction).numpy(), (fit1 @ direction).numpy()
        del fit0, fit1
        test0 = (_outputs(mechanism, x0, test, batch_size) @ direction).numpy()
        test1 = (_outputs(mechanism, x1, test, batch_size) @ direction).numpy()
    threshold = _best_threshold(scores0, scores1, delta, confidence)
    tp, fp = int((test1 > threshold).sum()), int((test0 > threshold).sum())
    tpr_lo, tpr_hi = _clopper_pearson(np.array(tp), test, confidence)
    fpr_lo, fpr_hi = _clopper_pearson(np.array(fp), test, confidence)
    return AuditResult(trials=trials, positives=test, negatives=test, true_positives=tp, false_positives=fp,
                       tpr=tp / test, fpr=fp / test, tpr_interval=(float(tpr_lo), float(tpr_hi)),
                       fpr_interval=(float(fpr_lo), float(fpr_hi)),
                       epsilon_lower=float(_bound(np.array(tp), test, np.array(fp), test, delta, confidence)),
                       delta=delta, confidence=confidence, threshold=threshold)


def _best_threshold(scores0: np.ndarray, scores1: np.ndarray, delta: float, confidence: float) -> float:
    """The threshold (test: score > threshold means ``x1``) that maximises the bound on the training half,
    among the midpoints of consecutive distinct scores (and below / above all of them)."""
    values = np.unique(np.concatenate([scores0, scores1]))
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1.0]])
    sorted0, sorted1 = np.sort(scores0), np.sort(scores1)
    fp = scores0.size - np.searchsorted(sorted0, candidates, side="right")
    tp = scores1.size - np.searchsorted(sorted1, candidates, side="right")
    bounds = _bound(tp, scores1.size, fp, scores0.size, delta, confidence)
    return float(candidates[int(np.argmax(bounds))])
