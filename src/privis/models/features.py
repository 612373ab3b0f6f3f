"""Intermediate-layer features of any model, by layer name, differentiable w.r.t. the input.

Methods such as Veil match a protected image to a target in the feature space of some layer of a local
model (the paper's Table 5 compares Fc3/Fc2/Fc1/Conv) and run gradient iterations on the input, so
:class:`FeatureExtractor` returns that layer's activation with the autograd graph intact.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from privis.errors import InvalidInputError

#: The pseudo-layer naming the model's final output.
LOGITS = "logits"


def layer_names(model: nn.Module) -> list[str]:
    """Names usable as feature layers of ``model``: every named submodule, in registration order, then
    ``"logits"`` (the model's output).

    Names are those of ``model.named_modules()`` (``"conv1"``, ``"layer2.0"``, ``"blocks.3"`` ...);
    ``ModuleList``/``ModuleDict`` containers are left out since they are never called themselves.
    """
    containers = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
    names = [name for name, module in model.named_modules() if name and not isinstance(module, containers)]
    return names + [LOGITS]


def penultimate_layer(model: nn.Module) -> str:
    """The name of the layer feeding ``model``'s last ``nn.Linear`` (its classifier head): the module
    registered just before that Linear, e.g. ``"fc2"`` for ``lenet5`` and ``"avgpool"`` for ``resnet18``.

    The activation of that layer is the usual "penultimate" embedding of a classifier (identity embeddings,
    Frechet distances on privis' own features).

    Raises:
        InvalidInputError: ``model`` has no ``nn.Linear``, or nothing is registered before its last one.
    """
    names = layer_names(model)[:-1]
    heads = [i for i, name in enumerate(names) if isinstance(model.get_submodule(name), nn.Linear)]
    if not heads or heads[-1] == 0:
        raise InvalidInputError(f"{type(model).__name__} has no layer before a final nn.Linear; name the "
                                f"feature layer (valid layers: {', '.join(layer_names(model))})")
    return names[heads[-1] - 1]


class _Captured(Exception):  # noqa: N818 - control flow, not an error
    """Raised by the capture hook to stop the forward pass once the wanted layer has run."""

    def __init__(self, output: Tensor) -> None:
        super().__init__()
        self.output = output


def _first_tensor(output: Any) -> Tensor:
    """The tensor a module produced (the first one when it returns a tuple or list)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise InvalidInputError(f"layer output of type {type(output).__name__} is not a tensor")


class FeatureExtractor(nn.Module):
    """``forward(x)`` returns the activation of ``model``'s layer ``layer``, flattened to ``(N, -1)``.

    With ``layer="logits"`` it returns the model's output unchanged. The activation is captured with a
    forward hook that exists only during the call (so ``model`` used on its own is never affected), and
    by default the forward pass stops right after the layer has run (``stop_early``): later layers cost
    nothing. The result is differentiable w.r.t. ``x``. The model's train/eval mode is left as it is;
    put it in eval mode for deterministic features.

    Args:
        model: any ``nn.Module`` (typically from :func:`privis.models.create`).
        layer: a name from :func:`layer_names`.
        stop_early: stop the forward pass once the layer has produced its output. Turn off for models
            that call the same submodule more than once and need the last call.

    Raises:
        InvalidInputError: unknown layer (the message lists the valid names).
    """

    def __init__(self, model: nn.Module, layer: str = LOGITS, *, stop_early: bool = True) -> None:
        super().__init__()
        names = layer_names(model)
        if layer not in names:
            raise InvalidInputError(f"unknown layer {layer!r}; valid layers: {', '.join(names)}")
        self.model = model
        self.layer = layer
        self.stop_early = stop_early

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(N, D)`` of layer ``self.layer`` (or logits) for canonical images ``x``."""
        if self.layer == LOGITS:
            return self.model(x)
        module = self.model.get_submodule(self.layer)
        captured: list[Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if self.stop_early:
                raise _Captured(tensor)
            captured[:] = [tensor]

        handle = module.register_forward_hook(hook)
        try:
            self.model(x)
        except _Captured as stop:
            captured[:] = [stop.output]
        finally:
            handle.remove()
        if not captured:
            raise InvalidInputError(f"layer {self.layer!r} did not run during the forward pass")
        return captured[0].flatten(1)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, stop_early={self.stop_early}"
