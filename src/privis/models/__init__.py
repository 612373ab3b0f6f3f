"""privis.models: the model zoo, feature extraction, training/evaluation loops and checkpoints.

Every model takes canonical images (``(N, C, H, W)`` float32 in ``[0, 1]``), normalises them internally
with mean 0.5 and std 0.5, and returns logits ``(N, num_classes)``::

    model = create("lenet5", num_classes=10, in_channels=1, image_size=28)
    model = create_seeded("lenet5", 0, num_classes=10, in_channels=1, image_size=28)  # global RNG untouched
    history = train(model, images, labels, epochs=5)
    run = train_from_spec("fashion-mnist:train[:5000]", "model.pt", model="lenet5", epochs=5)  # privis train
    accuracy = evaluate(model, test_images, test_labels)
    save_checkpoint(model, "model.pt", extra={"history": history.to_dict()})
    model, info = load_checkpoint("model.pt")
"""

# Imported for their registrations: the built-in architectures (zoo), the optimizer "st-adam"
# (VisualMixer Sec. IV-E) and the perturbation generator "unet-perturbation".
from privis.models import st_adam, unet, zoo  # noqa: F401
from privis.models.build import create_seeded, freeze, seeded_rng
from privis.models.checkpoint import export_torchscript, load_checkpoint, require_kind, save_checkpoint
from privis.models.features import LOGITS, FeatureExtractor, layer_names, penultimate_layer
from privis.models.optim import available_optimizers, make_optimizer, register_optimizer
from privis.models.registry import available, create, kind_of, register_model
from privis.models.training import (
    SpecTraining,
    TrainHistory,
    evaluate,
    model_device,
    num_classes_of,
    predict,
    train,
    train_from_spec,
)
from privis.models.zoo import INPUT_MEAN, INPUT_STD, ImageClassifier

__all__ = [
    "INPUT_MEAN",
    "INPUT_STD",
    "LOGITS",
    "FeatureExtractor",
    "ImageClassifier",
    "SpecTraining",
    "TrainHistory",
    "available",
    "available_optimizers",
    "create",
    "create_seeded",
    "evaluate",
    "export_torchscript",
    "freeze",
    "kind_of",
    "layer_names",
    "load_checkpoint",
    "make_optimizer",
    "model_device",
    "num_classes_of",
    "penultimate_layer",
    "predict",
    "register_model",
    "register_optimizer",
    "require_kind",
    "save_checkpoint",
    "seeded_rng",
    "train",
    "train_from_spec",
]
