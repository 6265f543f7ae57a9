"""Layer discovery: which modules of a model own weights, and what kind of layer each is."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

KINDS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Linear,), "linear"),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "conv"),
    ((nn.RNN, nn.RNNCell), "rnn"),
    ((nn.LSTM, nn.LSTMCell), "lstm"),
    ((nn.GRU, nn.GRUCell), "gru"),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), "norm"),
    ((nn.LayerNorm, nn.GroupNorm), "norm"),
)
LAYER_COLUMNS = ("layer", "name", "kind", "params", "fan_in", "fan_out")


@dataclass
class Layer:
    """A module that owns weights: the unit of the `layers` table."""

    name: str
    kind: str
    module: nn.Module
    weights: list[nn.Parameter]
    fused_rnn: bool  # nn.RNN/LSTM/GRU: time steps are a dimension of the output
    cell: bool  # nn.RNNCell/LSTMCell/GRUCell: time step t is the t-th call


def find_layers(model: nn.Module) -> list[Layer]:
    """Modules that own weights, in registration order."""
    layers = []
    for name, module in model.named_modules():
        kind = next((k for classes, k in KINDS if isinstance(module, classes)), None)
        weights = [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight")]
        if kind is not None and weights:  # not e.g. LayerNorm(elementwise_affine=False)
            fused = isinstance(module, nn.RNNBase)
            cell = isinstance(module, nn.RNNCellBase)
            layers.append(Layer(name, kind, module, weights, fused, cell))
    return layers


def fans(weight: Tensor) -> tuple[int, int]:
    """torch.nn.init's fan_in/fan_out; a 1-D (norm) weight has both equal to its size."""
    if weight.dim() < 2:
        return weight.numel(), weight.numel()
    receptive = weight[0][0].numel()
    return weight.shape[1] * receptive, weight.shape[0] * receptive
