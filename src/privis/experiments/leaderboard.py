"""``privis experiment leaderboard``: every registered method x every registered attack, one report.

Protocol, on Fashion-MNIST (scikit-learn digits when it is absent):

1. The training split is cut into the owner's training slice and a disjoint auxiliary slice that only the
   attacker holds; the test split is the victim's data to attack.
2. Shared models: a baseline trained on the owner's originals (the membership-inference reference) and an
   auxiliary classifier trained on the attacker's originals (the "human" stand-in of every attack).
3. Per method (iterating :func:`privis.methods.available`, so a new method joins by registering): fit the
   protector on the owner's slice with the defender's seed, protect training and test data, train the
   service model on the protected training data (with the method's default training augmentation), and
   measure utility as the service model's accuracy on test data in the method's deployment
   (:attr:`Protector.deployment`): original test images for ``veil`` (the paper's use: train on veiled
   data, serve originals), protected ones for the others (the service receives protected inputs).
4. Every attack runs on the protected test images with an :class:`~privis.attacks.AttackContext` granting
   the method, its public parameters, its fitted protector (Kerckhoffs: fitted models are public, the
   defender's randomness is not; the attacker's seed differs from the defender's), the auxiliary data, the
   service model, the auxiliary classifier, and members/non-members for membership inference. An attack
   that does not apply says so in the table (``n/a``) with its reason.
5. The keyspace of each method's secret on the same test images is an analysis, not an attack
   (:func:`privis.privacy.keyspace_analysis`): it needs the originals and recovers nothing. It has its own
   table (``keyspace``) and column (``keyspace_bits``).
6. Leakage per method is the worst case over attacks of the mean |SSIM| of per-image restorations against
   the originals, and of the auxiliary classifier's accuracy on them. Model inversion yields class
   representatives compared with class means, a different target; it has its own column and is not part
   of the per-image worst case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from privis import attacks, methods
from privis import data as pdata
from privis.attacks import AttackContext, NotApplicableError
from privis.attacks.base import AttackOutcome, class_means
from privis.errors import InvalidInputError, PrivisError
from privis.experiments import register_experiment
from privis.experiments.evaluate import (
    EvalConfig,
    auto_epochs,
    load_train_test,
    timed_protect,
    train_classifier,
    utility_summary,
)
from privis.methods import Protector
from privis.privacy import keyspace_analysis
from privis.report import image_grid_png, scatter_png
from privis.results import Figure, Result

#: Method parameters for ``quick=True`` (a smoke run); the full run uses every method's defaults.
QUICK_METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "veil": {"steps": 10, "local_epochs": 1},
    "dp-image": {"codec_epochs": 2, "steps": 2},
    "perturbation": {"epochs": 1, "width": 4, "aux_arch": "lenet5", "classifier_epochs": 2},
    # pixel-space rates that de-identify (the thesis' latent-space rates do not, and run all N iterations),
    # fewer attribute steps: 97 % of Fashion-MNIST test images reach tau in about 8 iterations
    "fsap": {"N": 15, "k": 2, "lambda_I": 0.05, "lambda_P": 0.002, "identity_epochs": 3},
    # a diffusion autoencoder trained for one epoch on the owner's slice, few optimisation and DDIM steps
    "latent-anonymizer": {"codec_epochs": 1, "codec_base": 4, "codec_steps": 4, "identity_epochs": 5,
                          "attribute_epochs": 3, "iterations": 3, "decode_steps": 2},
}

#: Methods the face-identity columns leave out (``n/a``), with the reason.
FACE_NOT_APPLICABLE: dict[str, str] = {
    "latent-anonymizer": "a dataset anonymiser needs a diffusion autoencoder trained on the faces' distribution; "
                         "one trained on a dozen faces would not generate faces",
}

#: Attack budgets for ``quick=True``.
QUICK_ATTACK_PARAMS: dict[str, dict[str, Any]] = {
    "learned-inversion": {"epochs": 1},
    "model-inversion": {"steps": 15},
    "membership-inference": {"shadow_epochs": 3},
    "auxiliary-recognition": {"epochs": 2},
    "shredder": {"rounds": 5},
    "invariants": {"steps": 5},
    "filters": {"bank": (("median", 3), ("gaussian", 1.0), ("tv", 0.1), ("bilateral", 0.1), ("nl-means", 0.08))},
}

#: Attacks whose restorations are per image and count towards the worst-case leakage.
_PER_IMAGE = ("filters", "learned-inversion", "invariants", "shredder", "auxiliary-recognition")
_EXTRA_SCORES = ("auc", "tpr_at_1fpr", "adaptive_acc", "ssim_aux_class_means")
ATTACKER_SEED_OFFSET = 1_000_003


def default_dataset() -> str:
    return "fashion-mnist" if pdata.fashion_mnist_available() else "digits"


def _sizes(data: str, quick: bool, train_size: int, test_size: int, aux_size: int,
           attack_size: int) -> tuple[int, int, int, int]:
    if quick:
        return (200, 60, 120, 40) if data.startswith("digits") else (400, 150, 300, 150)
    if data.startswith("digits"):  # 1,347 training and 450 test images in all
        train_size = min(train_size, 847)
        aux_size, test_size = min(aux_size, 1347 - train_size), min(test_size, 450)
    return train_size, test_size, aux_size, min(attack_size, test_size)


def _public(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "random_state" and not isinstance(v, torch.nn.Module)}


@dataclass
class Setup:
    """Data and shared models of an attack run: owner's slice, attacker's slice, test data, two classifiers."""

    data: str
    cfg: EvalConfig
    train: pdata.Dataset
    aux: pdata.Dataset
    test: pdata.Dataset
    num_classes: int
    baseline: torch.nn.Module
    aux_classifier: torch.nn.Module
    attack_size: int
    seed: int

    def victims(self) -> tuple[Tensor, Tensor]:
        """The original test images the restoration attacks are scored on, and their labels."""
        return self.test.images[:self.attack_size], self.test.labels[:self.attack_size]


@dataclass
class Protected:
    """One method applied to a :class:`Setup`: the fitted protector, its service model's utility, the context."""

    protector: Protector
    test_images: Tensor
    util: dict[str, float]
    speed: dict[str, float]
    context: AttackContext


def prepare(data: str | None, *, seed: int, quick: bool, train_size: int, test_size: int, aux_size: int,
            attack_size: int, epochs: int | None = None) -> Setup:
    """Load and split the data (owner | attacker's auxiliary slice | test) and train the two shared models:
    the baseline on the owner's originals and the auxiliary classifier on the attacker's originals.

    ``epochs`` trains every model of the run that long (default: 5 when ``quick``, else :func:`auto_epochs`)."""
    data = data or default_dataset()
    n_train, n_test, n_aux, n_attack = _sizes(data, quick, train_size, test_size, aux_size, attack_size)
    cfg = EvalConfig(data=data, train_size=n_train + n_aux, test_size=n_test, seed=seed,
                     epochs=epochs or (5 if quick else None))
    full, test = load_train_test(cfg)
    if len(full) < n_train + 20:
        raise InvalidInputError(f"{data}: {len(full)} training images; need more than {n_train + 20} to leave "
                                "the attacker an auxiliary slice (lower --train-size)")
    train, aux = full.subset(slice(0, n_train)), full.subset(slice(n_train, n_train + n_aux))
    k = max(full.num_classes, int(full.labels.max()) + 1)
    baseline = train_classifier(train.images, train.labels, k, cfg, desc="baseline model")
    aux_cfg = EvalConfig(**{**cfg.__dict__, "seed": seed + 1})
    aux_classifier = train_classifier(aux.images, aux.labels, k, aux_cfg, desc="auxiliary classifier")
    return Setup(data, cfg, train, aux, test, k, baseline, aux_classifier, min(n_attack, len(test)), seed)


def protect_for_attack(setup: Setup, method: str, params: dict[str, Any]) -> Protected:
    """Fit ``method`` with the defender's seed, protect, train the service model, build the attack context."""
    protector = methods.create(method, **{"random_state": setup.seed, **params})
    train, test = setup.train, setup.test
    protected_train, protected_test, speed = timed_protect(protector, train, test)
    service = train_classifier(protected_train, train.labels, setup.num_classes, setup.cfg,
                               augment=protector.training_augmentation("default"), desc=f"{method}: service model")
    context = AttackContext(
        method=method, params=_public(params), protector=protector, aux_images=setup.aux.images,
        aux_labels=setup.aux.labels, labels=setup.victims()[1], service_model=service,
        classifier=setup.aux_classifier, reference_model=setup.baseline, member_images=train.images,
        member_labels=train.labels, holdout_images=test.images, holdout_labels=test.labels,
        seed=setup.seed + ATTACKER_SEED_OFFSET)
    return Protected(protector, protected_test, utility_summary(setup.baseline, service, test, protected_test),
                     speed, context)


def run_attack(attack: str, method: str, *, data: str | None = None, params: dict[str, Any] | None = None,
               attack_params: dict[str, Any] | None = None, seed: int = 0, train_size: int = 3000,
               test_size: int = 1000, aux_size: int = 2000, attack_size: int = 500) -> Result:
    """``privis attack ATTACK --method METHOD``: one attack on one method with the leaderboard's protocol.

    Raises:
        NotApplicableError: the attack does not apply to the method.
    """
    t_start = time.perf_counter()
    runner = attacks.create(attack, **(attack_params or {}))  # unknown names fail before any training
    setup = prepare(data, seed=seed, quick=False, train_size=train_size, test_size=test_size, aux_size=aux_size,
                    attack_size=attack_size)
    protected = protect_for_attack(setup, method, dict(params or {}))
    victims, _ = setup.victims()
    outcome = runner.run(victims, protected.test_images[:setup.attack_size], context=protected.context)
    deployment = protected.protector.deployment
    summary = {**outcome.scores, "utility": protected.util[f"protected_acc_{deployment}"], **protected.util,
               "attack_seconds": outcome.seconds}
    result = Result(f"attack-{attack}-{method}", summary=summary,
                    tables={"variants": outcome.variants} if outcome.variants else {},
                    config={"attack": attack, "attack_params": runner.get_params(), "method": method,
                            "params": _public(protected.protector.get_params()), "data": setup.data,
                            "train_size": len(setup.train), "aux_size": len(setup.aux),
                            "test_size": len(setup.test), "num_classes": setup.num_classes,
                            "attack_size": setup.attack_size, "seed": seed,
                            "deployment": deployment, "variant": outcome.variant},
                    notes=list(outcome.notes))
    if outcome.recovered is not None:
        columns = {"original": victims, "protected": protected.test_images[:setup.attack_size],
                   "recovered": outcome.recovered}
        if outcome.target_labels is not None:
            columns = {"class mean": class_means(victims, setup.victims()[1], outcome.target_labels),
                       "representative": outcome.recovered}
        result.figures.append(Figure(f"{attack} on {method}", image_grid_png(columns),
                                     f"variant {outcome.variant}: mean |SSIM| {outcome.scores['ssim_mean']:.3f}"))
    result.seconds = time.perf_counter() - t_start
    return result


#: Real faces the identity column protects in a full run (none in a quick run).
LEADERBOARD_FACES = 12


def _face_na(method: str, note: str) -> dict[str, Any]:
    return {"method": method, "status": "n/a", "face_match_protected": None, "face_match_recovered": None,
            "note": note}


def face_identity(names: list[str], *, count: int, seed: int,
                  method_params: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per method: how often dlib's recogniser still matches protected and filter-restored faces to their originals
    (step 7 of the module notes); one row per method with ``status`` ``ok`` or ``n/a`` and the reason.
    ``method_params`` (method -> parameters, e.g. :data:`QUICK_METHOD_PARAMS`) override the defaults."""
    from privis.experiments.fsap_tables import FACE_PARAMS, face_total, faces, protect_faces
    from privis.identity import identity_similarity

    f = faces(count)
    rows: list[dict[str, Any]] = []
    for name in names:
        if name in FACE_NOT_APPLICABLE:
            rows.append(_face_na(name, FACE_NOT_APPLICABLE[name]))
            continue
        params: dict[str, Any] = {**FACE_PARAMS.get(name, {}), **(method_params or {}).get(name, {})}
        if name == "fsap":
            params["identity_model"] = f.port
        matched = {"protected": 0.0, "recovered": 0.0}
        t0 = time.perf_counter()
        try:
            kept, protected, note = protect_faces(name, f.groups, seed=seed, params=params)
        except PrivisError as exc:
            rows.append(_face_na(name, str(exc)))
            continue
        originals = [f.groups[i] for i in kept]
        for x, y in zip(originals, protected, strict=True):
            recovered = attacks.create("filters").run(x, y, context=AttackContext(method=name)).recovered
            f.dlib.locate(x)  # type: ignore[operator]  # the original face's position
            for key, images in (("protected", y), ("recovered", recovered)):
                same = f.dlib.same_identity(identity_similarity(f.dlib, x, cast(Tensor, images)))
                matched[key] += float(same.float().sum())
        total = face_total(originals)
        rows.append({"method": name, "status": "ok", "face_match_protected": matched["protected"] / total,
                     "face_match_recovered": matched["recovered"] / total, "faces": total,
                     "seconds": round(time.perf_counter() - t0, 1), **({"note": note} if note else {})})
    return rows


def _keyspace_row(method: str, protected: Protected, victims: Tensor) -> dict[str, Any]:
    """The keyspace analysis of one method on the victims' originals, as a table row (``n/a`` with the
    reason where the method has no permutation or mask secret)."""
    t0 = time.perf_counter()
    try:
        analysis = keyspace_analysis(method, victims, params=_public(protected.protector.get_params()),
                                     protector=protected.protector)
    except NotApplicableError as exc:
        return {"method": method, "status": "n/a", "bits_mean": None, "note": str(exc), "seconds": 0.0}
    return {"method": method, "status": "ok", **analysis.scores, "note": analysis.note,
            "seconds": round(time.perf_counter() - t0, 2)}


def _row(method: str, attack: str, status: str, outcome: AttackOutcome | None = None, note: str = "",
         seconds: float = 0.0) -> dict[str, Any]:
    s = outcome.scores if outcome else {}
    row = {"method": method, "attack": attack, "status": status, "variant": outcome.variant if outcome else "",
           "ssim": s.get("ssim_mean"), "psnr": s.get("psnr_mean"), "aux_acc": s.get("aux_acc"),
           "ssim_protected": s.get("ssim_protected")}
    row.update({k: s.get(k) for k in _EXTRA_SCORES})
    row.update({"seconds": round(seconds, 2), "note": note})
    return row


@register_experiment("leaderboard", "Every method x every attack: utility, worst-case leakage, privacy-utility "
                                    "scatter and best recoveries.")
def leaderboard(*, data: str | None = None, seed: int = 0, quick: bool = False, train_size: int = 3000,
                test_size: int = 1000, aux_size: int = 2000, attack_size: int = 500,
                only: list[str] | None = None, faces: int | None = None) -> Result:
    """Run the leaderboard (see the module notes).

    Args:
        data: dataset name (default Fashion-MNIST, digits when absent).
        seed: the defender's seed (models, protectors); the attacker's is ``seed + 1000003``.
        quick: smoke-run sizes and budgets (:data:`QUICK_METHOD_PARAMS`, :data:`QUICK_ATTACK_PARAMS`).
        train_size, test_size, aux_size: owner's training slice, test slice (members/non-members and victims)
            and the attacker's auxiliary slice (digits: at most 847, 450 and the rest of its 1,347 training images).
        attack_size: protected test images each restoration attack works on.
        only: restrict to these methods (default: every registered method protecting against classification,
            ``task == "classification"``).
        faces: real faces of the identity columns (step 7); None: :data:`LEADERBOARD_FACES`, or 0 when ``quick``;
            0 leaves the columns out.
    """
    t_start = time.perf_counter()
    setup = prepare(data, seed=seed, quick=quick, train_size=train_size, test_size=test_size, aux_size=aux_size,
                    attack_size=attack_size)
    data, train, aux, test, n_attack = setup.data, setup.train, setup.aux, setup.test, setup.attack_size
    victims, victim_labels = setup.victims()
    registry = methods.available()
    names = list(only) if only else [n for n, cls in registry.items() if cls.task == "classification"]
    attack_names = list(attacks.available())
    service_epochs = setup.cfg.epochs or auto_epochs(len(train))

    rows: list[dict[str, Any]] = []
    keyspace_rows: list[dict[str, Any]] = []
    board: list[dict[str, Any]] = []
    figures: list[Figure] = []
    summary: dict[str, float] = {}
    representatives: dict[str, Tensor] = {}
    used_params: dict[str, dict[str, Any]] = {}
    for name in names:
        t_method = time.perf_counter()
        protected = protect_for_attack(setup, name, dict(QUICK_METHOD_PARAMS.get(name, {})) if quick else {})
        used_params[name] = _public(protected.protector.get_params())
        util, speed, context = protected.util, protected.speed, protected.context
        protected_test = protected.test_images
        deployment = protected.protector.deployment
        best: tuple[float, str, Tensor] | None = None
        method_rows = []
        for attack_name in attack_names:
            attack_params = dict(QUICK_ATTACK_PARAMS.get(attack_name, {})) if quick else {}
            if attack_name == "membership-inference" and not quick:
                attack_params["shadow_epochs"] = service_epochs  # mirror the service model's training
            t0 = time.perf_counter()
            try:
                outcome = attacks.create(attack_name, **attack_params).run(victims, protected_test[:n_attack],
                                                                           context=context)
            except NotApplicableError as exc:
                method_rows.append(_row(name, attack_name, "n/a", note=str(exc)))
                continue
            except PrivisError as exc:  # recorded, not hidden: the table says the attack failed and why
                method_rows.append(_row(name, attack_name, "error", note=str(exc),
                                        seconds=time.perf_counter() - t0))
                continue
            method_rows.append(_row(name, attack_name, "ok", outcome, "; ".join(outcome.notes), outcome.seconds))
            for key, value in outcome.scores.items():
                summary[f"{name}.{attack_name}.{key}"] = value
            if attack_name == "model-inversion" and outcome.recovered is not None:
                representatives[name] = outcome.recovered
            if attack_name in _PER_IMAGE and outcome.recovered is not None:
                score = outcome.scores["ssim_mean"]
                if best is None or score > best[0]:
                    best = (score, f"{attack_name} ({outcome.variant})", outcome.recovered)
        rows += method_rows
        keyspace = _keyspace_row(name, protected, victims)
        keyspace_rows.append(keyspace)
        summary.update({f"{name}.keyspace.{key}": value for key, value in keyspace.items()
                        if key not in ("seconds", "method", "status", "note") and value is not None})
        ok = [r for r in method_rows if r["status"] == "ok" and r["attack"] in _PER_IMAGE and r["ssim"] is not None]
        worst_ssim = max(ok, key=lambda r: r["ssim"]) if ok else None
        with_acc = [r for r in ok if r["aux_acc"] is not None]
        worst_acc = max(with_acc, key=lambda r: r["aux_acc"]) if with_acc else None

        def score_of(attack: str, key: str, rows: list[dict[str, Any]] = method_rows) -> float | None:
            return next((r[key] for r in rows if r["attack"] == attack and r["status"] == "ok"), None)

        entry = {
            "method": name, "deployment": deployment, "utility": util[f"protected_acc_{deployment}"], **util,
            "ssim_protected": ok[0]["ssim_protected"] if ok else None,
            "leakage_ssim": worst_ssim["ssim"] if worst_ssim else None,
            "leakage_ssim_attack": worst_ssim["attack"] if worst_ssim else "",
            "leakage_aux_acc": worst_acc["aux_acc"] if worst_acc else None,
            "leakage_aux_acc_attack": worst_acc["attack"] if worst_acc else "",
            "adaptive_acc": score_of("auxiliary-recognition", "adaptive_acc"),
            "model_inversion_ssim": score_of("model-inversion", "ssim"),
            "mia_auc": score_of("membership-inference", "auc"),
            "mia_tpr_at_1fpr": score_of("membership-inference", "tpr_at_1fpr"),
            "keyspace_bits": keyspace["bits_mean"],
            "images_per_second": speed["images_per_second"],
            "seconds": round(time.perf_counter() - t_method, 1),
        }
        board.append(entry)
        summary.update({f"{name}.{key}": value for key, value in entry.items()
                        if isinstance(value, float | int) and not isinstance(value, bool)})
        if best is not None:
            figures.append(Figure(
                f"{name}: original | protected | best recovery",
                image_grid_png({"original": victims, "protected": protected_test[:n_attack],
                                "best recovery": best[2]}),
                f"best per-image recovery by |SSIM|: {best[1]}, mean |SSIM| {best[0]:.3f}"))
    points = [{"method": e["method"], "leakage_ssim": e["leakage_ssim"], "utility": e["utility"]}
              for e in board if e["leakage_ssim"] is not None]
    points_acc = [{"method": e["method"], "leakage_aux_acc": e["leakage_aux_acc"], "utility": e["utility"]}
                  for e in board if e["leakage_aux_acc"] is not None]
    baseline_acc = board[0]["baseline_acc_original"] if board else None
    hline = {"baseline (originals)": baseline_acc} if baseline_acc is not None else None
    figures.insert(0, Figure("privacy-utility: worst-case |SSIM| vs utility",
                             scatter_png(points, x="leakage_ssim", y="utility", label="method", hlines=hline,
                                         xlabel="leakage: worst mean |SSIM| of a recovery (← more private)",
                                         ylabel="utility: service-model accuracy (↑)"),
                             "x: worst mean |SSIM| of a per-image recovery over attacks (lower is more private); "
                             "y: service-model accuracy in the method's deployment"))
    figures.insert(1, Figure("privacy-utility: worst-case auxiliary accuracy vs utility",
                             scatter_png(points_acc, x="leakage_aux_acc", y="utility", label="method", hlines=hline,
                                         xlabel="leakage: best auxiliary accuracy on recoveries (← more private)",
                                         ylabel="utility: service-model accuracy (↑)"),
                             "x: best accuracy of the auxiliary classifier (trained on originals) on recovered or "
                             "protected images; y: utility"))
    if representatives:
        classes = torch.unique(victim_labels)
        figures.append(Figure("model inversion: class means | representatives per method",
                              image_grid_png({"class mean": class_means(victims, victim_labels, classes),
                                              **representatives}, max_rows=len(classes)),
                              "one row per class; each method column inverts its own service model"))
    notes = [
        f"{data}: owner's training slice {len(train)}, attacker's auxiliary slice {len(aux)} (disjoint), test "
        f"{len(test)} (members: the training slice; non-members: the test slice); restorations on the first "
        f"{n_attack} protected test images.",
        "Threat model: Kerckhoffs. The attacker knows each method, its public parameters and its fitted models; "
        "the defender's randomness stays secret (the attacker's seed is different).",
        "Restoration attacks that try several variants report the best by |SSIM| against the originals (an "
        "oracle choice): the defender's worst case.",
        "Model inversion compares class representatives with class means; 'ssim_aux_class_means' is what the "
        "attacker's own class means score against the same targets without any model.",
        "adaptive_acc (a recogniser trained on attacker-protected auxiliary data) measures machine "
        "recognisability of protected images, which a useful method must keep; it is shown, not counted as leakage.",
    ]
    if quick:
        notes.append(f"quick run: reduced method parameters {QUICK_METHOD_PARAMS} and attack budgets "
                     f"{list(QUICK_ATTACK_PARAMS)}; figures are a smoke test, not results.")
    face_count = (0 if quick else LEADERBOARD_FACES) if faces is None else faces
    tables = {"leaderboard": board, "attacks": rows, "keyspace": keyspace_rows}
    if face_count > 0:
        face_rows = face_identity(names, count=face_count, seed=seed,
                                  method_params=QUICK_METHOD_PARAMS if quick else None)
        tables["face identity"] = face_rows
        for entry, face_row in zip(board, face_rows, strict=True):
            entry.update({k: face_row[k] for k in ("face_match_protected", "face_match_recovered")})
            summary.update({f"{entry['method']}.{k}": face_row[k] for k in ("face_match_protected",
                                                                            "face_match_recovered")
                            if face_row[k] is not None})
        notes.append(f"face identity: {face_count} real faces; dlib's recogniser (0.6) decides a match")
    summary["methods"] = len(board)
    summary["attacks"] = len(attack_names)
    return Result(
        "leaderboard", summary=summary,
        tables=tables,
        config={"data": data, "faces": face_count, "seed": seed, "quick": quick, "train_size": len(train),
                "test_size": len(test),
                "num_classes": setup.num_classes,
                "aux_size": len(aux), "attack_size": n_attack, "service_model": setup.cfg.model,
                "service_epochs": service_epochs, "deployment": {n: registry[n].deployment for n in names},
                "method_params": used_params, "attacks": attack_names,
                "attack_params": QUICK_ATTACK_PARAMS if quick else {"membership-inference": {
                    "shadow_epochs": service_epochs}}},
        notes=notes, figures=figures, seconds=time.perf_counter() - t_start)
