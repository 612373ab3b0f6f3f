"""Training, evaluation and the optimizer registry."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.models import (
    TrainHistory,
    available_optimizers,
    create,
    evaluate,
    make_optimizer,
    predict,
    register_optimizer,
    train,
)


def two_patterns(n: int, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: bright left half; class 1: bright right half; plus noise, clipped to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    images = torch.full((n, 1, size, size), 0.2)
    half = size // 2
    images[labels == 0, :, :, :half] = 0.8
    images[labels == 1, :, :, half:] = 0.8
    images += 0.1 * torch.randn(images.shape, generator=gen)
    return images.clamp(0, 1), labels


def test_lenet5_learns_a_separable_task() -> None:
    torch.manual_seed(0)
    images, labels = two_patterns(160)
    test_images, test_labels = two_patterns(100, seed=1)
    model = create("lenet5", num_classes=2, image_size=12)
    history = train(model, images, labels, epochs=3, batch_size=32, val=(test_images, test_labels))
    assert isinstance(history, TrainHistory)
    assert len(history.loss) == len(history.train_acc) == len(history.val_acc) == 3
    assert history.loss[-1] < history.loss[0]
    assert history.val_acc[-1] > 0.95
    assert evaluate(model, test_images, test_labels) > 0.95
    assert history.seconds > 0 and history.seed == 0


@pytest.mark.parametrize(("name", "options"), [("lenet5", {}), ("vgg", {"width": 4, "hidden": 16})])
def test_same_seed_gives_identical_weights(name: str, options: dict[str, int]) -> None:
    # vgg has BatchNorm and dropout, so this also covers the dropout RNG
    images, labels = two_patterns(40)

    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(123)
        model = create(name, num_classes=2, image_size=12, **options)
        train(model, images, labels, epochs=1, batch_size=16, seed=seed, device="cpu")
        return model.state_dict()

    first, second, other = run(7), run(7), run(8)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_train_does_not_touch_global_rng() -> None:
    images, labels = two_patterns(20)
    model = create("lenet5", num_classes=2, image_size=12)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train(model, images, labels, epochs=1, batch_size=8)
    torch.testing.assert_close(torch.rand(3), expected)


def test_augment_cosine_sgd_and_mode_restored() -> None:
    images, labels = two_patterns(30)
    model = create("lenet5", num_classes=2, image_size=12).eval()
    seen: list[int] = []

    def augment(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.shape[0])
        return batch.flip(-2)

    history = train(
        model, images, labels, epochs=2, batch_size=16, optimizer="sgd", lr=0.1, cosine=True, augment=augment
    )
    assert sum(seen) == 60
    assert history.lr == pytest.approx([0.1, 0.05])
    assert history.val_acc == []
    assert not model.training


def test_trailing_single_sample_batch_is_merged() -> None:
    images, labels = two_patterns(9)
    model = create("vgg", num_classes=2, image_size=12, width=4, hidden=8)
    history = train(model, images, labels, epochs=1, batch_size=4)
    assert len(history.loss) == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda x, y: (
                x.masked_fill(
                    torch.zeros_like(x, dtype=torch.bool).index_fill(0, torch.tensor([0]), True), float("nan")
                ),
                y,
            ),
            "NaN",
        ),
        (lambda x, y: (x, torch.full_like(y, 2)), "class indices in \\[0, 1\\]"),
        (lambda x, y: (x, y[:-1]), "entries but there are"),
        (lambda x, y: (x * 3, y), "must lie in \\[0, 1\\]"),
        (lambda x, y: (x[0], y), "shape \\(N, C, H, W\\)"),
        (lambda x, y: (x, y.float()), "integer class indices"),
    ],
)
def test_train_validates_inputs(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    images, labels = two_patterns(8)
    model = create("lenet5", num_classes=2, image_size=12)
    bad_images, bad_labels = mutate(images, labels)
    with pytest.raises(InvalidInputError, match=message):
        train(model, bad_images, bad_labels, epochs=1)


def test_train_rejects_bad_settings() -> None:
    images, labels = two_patterns(8)
    model = create("lenet5", num_classes=2, image_size=12)
    with pytest.raises(InvalidInputError, match="unknown optimizer"):
        train(model, images, labels, optimizer="nadam-ish")
    with pytest.raises(InvalidInputError, match="batch_size"):
        train(model, images, labels, batch_size=0)
    with pytest.raises(InvalidInputError, match="val"):
        train(model, images, labels, val=images)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [True, False])
def test_evaluate_and_predict_restore_mode(mode: bool) -> None:
    images, labels = two_patterns(10)
    model = create("vgg", num_classes=2, image_size=12, width=4, hidden=16).train(mode)
    accuracy = evaluate(model, images, labels, batch_size=4)
    assert 0.0 <= accuracy <= 1.0
    assert model.training is mode
    logits = predict(model, images, batch_size=3)
    assert logits.shape == (10, 2)
    assert model.training is mode
    # the accuracy is the fraction of arg-max predictions that match, whatever the batch sizes
    assert accuracy == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    # eval mode: dropout off, so predictions are deterministic
    torch.testing.assert_close(predict(model, images), logits)


def test_evaluate_rejects_out_of_range_labels() -> None:
    images, labels = two_patterns(6)
    with pytest.raises(InvalidInputError, match="class indices"):
        evaluate(create("lenet5", num_classes=2, image_size=12), images, labels + 5)


def test_optimizer_factory() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert {"sgd", "adam", "adamw"} <= set(available_optimizers())
    sgd = make_optimizer("sgd", params, lr=0.1, momentum=0.8)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    adam = make_optimizer("adam", params, lr=1e-3)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.9, 0.999)
    adamw = make_optimizer("adamw", params, lr=1e-3, weight_decay=0.01)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.01
    with pytest.raises(InvalidInputError, match="available: adam, adamw"):
        make_optimizer("lion", params, lr=1e-3)
    with pytest.raises(InvalidInputError, match="lr"):
        make_optimizer("adam", params, lr=-1.0)


def test_register_optimizer_adds_a_name() -> None:
    @register_optimizer("test-rmsprop")
    def _rmsprop(params, *, lr, weight_decay, momentum):  # type: ignore[no-untyped-def]
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, momentum=momentum)

    images, labels = two_patterns(8)
    model = create("lenet5", num_classes=2, image_size=12)
    train(model, images, labels, epochs=1, optimizer="test-rmsprop")
    assert "test-rmsprop" in available_optimizers()


def test_one_image_for_a_batchnorm_model_is_refused_in_one_line():
    vgg = create("vgg", num_classes=2, in_channels=1, image_size=16)
    one, label = torch.rand(1, 1, 16, 16), torch.tensor([0])
    with pytest.raises(InvalidInputError, match="BatchNorm .* 1 image"):
        train(vgg, one, label, epochs=1)
    # without BatchNorm one image trains
    lenet = create("lenet5", num_classes=2, in_channels=1, image_size=16)
    assert len(train(lenet, one, label, epochs=1).loss) == 1
