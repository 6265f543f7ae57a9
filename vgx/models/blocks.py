"""The blocks `skip=` chooses, built as He et al. 2016 published them, for MLPs and CNNs.

    none      plain:  act(norm(W₂ act(norm(W₁ x))))          the plain nets of He et al. 2016
                                                             (CVPR, Fig. 3 middle)
    residual  basic:  act(x + norm(W₂ act(norm(W₁ x))))      He et al. 2016 (CVPR, Fig. 2)
    preact    preact: x + W₂ act(norm(W₁ act(norm(x))))      He et al. 2016 (ECCV, Fig. 1b)

W is a Linear layer (MLP) or a k×k convolution (CNN). Where a CNN stage halves the map and doubles
the channels, W₁ has stride 2 and the shortcut is option A of the CIFAR nets (CVPR §4.2): every
second pixel, zero channels appended. It has no parameters, so every shortcut is an identity path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn
from torch.nn import functional as F

from vgx.models.layers import ACTIVATIONS, NORMS
from vgx.registry import Registry

# (fan_in, fan_out, stride) -> a weight layer: nn.Linear (stride 1) or nn.Conv2d
WeightFn = Callable[[int, int, int], nn.Module]


@dataclass(frozen=True)
class Parts:
    """What every block of one network is made of."""

    weight: WeightFn
    name: str  # of the weight layer: "linear" or "conv"
    family: str  # MLP or CNN: picks the normalisation module (vgx.models.layers.NORMS)
    act: str
    norm: str

    def layer(self, fan_in: int, fan_out: int, stride: int = 1) -> list[tuple[str, nn.Module]]:
        """weight → norm → act, the order of Ioffe & Szegedy 2015."""
        return [(self.name, self.weight(fan_in, fan_out, stride)), *self.activation(fan_out)]

    def activation(self, width: int) -> list[tuple[str, nn.Module]]:
        """norm → act over `width` units or channels."""
        return [("norm", NORMS[self.norm](self.family, width)), ("act", ACTIVATIONS[self.act]())]


class Shortcut(nn.Module):
    """The identity, or where a stage starts, option A: subsample and pad channels with zeros."""

    def __init__(self, fan_in: int, fan_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, fan_out - fan_in

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, C, ⌈H/s⌉, ⌈W/s⌉): the conv's size
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C + extra, H, W)
        return x


class Residual(nn.Module):
    """post(shortcut(x) + branch(x)): every block with an identity path is one of these."""

    def __init__(
        self, branch: nn.Module, shortcut: nn.Module | None = None, post: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut or nn.Identity()
        self.post = post or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.post(self.shortcut(x) + self.branch(x))


def plain_block(parts: Parts, fan_in: int, fan_out: int, stride: int = 1) -> nn.Module:
    """Two weight layers, each followed by norm and act, no shortcut."""
    first, second = parts.layer(fan_in, fan_out, stride), parts.layer(fan_out, fan_out)
    return nn.Sequential(OrderedDict(_numbered(first, 1) + _numbered(second, 2)))


def basic_block(parts: Parts, fan_in: int, fan_out: int, stride: int = 1) -> nn.Module:
    """He et al. 2016 (CVPR): the second norm comes before the addition, the last act after it."""
    first, second = parts.layer(fan_in, fan_out, stride), parts.layer(fan_out, fan_out)
    *second, (_, act) = second
    branch = nn.Sequential(OrderedDict(_numbered(first, 1) + _numbered(second, 2)))
    return Residual(branch, Shortcut(fan_in, fan_out, stride), act)


def preact_block(parts: Parts, fan_in: int, fan_out: int, stride: int = 1) -> nn.Module:
    """He et al. 2016 (ECCV): norm and act before each weight layer, nothing after the addition."""
    first = [*parts.activation(fan_in), (parts.name, parts.weight(fan_in, fan_out, stride))]
    second = [*parts.activation(fan_out), (parts.name, parts.weight(fan_out, fan_out, 1))]
    branch = nn.Sequential(OrderedDict(_numbered(first, 1) + _numbered(second, 2)))
    return Residual(branch, Shortcut(fan_in, fan_out, stride))


def plain_layer(parts: Parts, fan_in: int, fan_out: int, stride: int = 1) -> nn.Module:
    """One weight layer with its norm and act: the block of a plain MLP (depth = layers)."""
    return nn.Sequential(OrderedDict(parts.layer(fan_in, fan_out, stride)))


def _numbered(layer: list[tuple[str, nn.Module]], n: int) -> list[tuple[str, nn.Module]]:
    return [(f"{name}{n}", module) for name, module in layer]


class BlockFn(Protocol):
    """A block builder; a Protocol because Callable cannot say that `stride` defaults to 1."""

    def __call__(self, parts: Parts, fan_in: int, fan_out: int, stride: int = 1) -> nn.Module: ...


@dataclass(frozen=True)
class Skip:
    """One `skip=` choice: its block, and where its network puts norm → act outside the blocks."""

    block: BlockFn  # the CNN's block
    mlp_block: BlockFn  # the MLP's: a plain MLP keeps one layer a block, as the theory has it
    # The stem ends with norm → act, and the last block's output goes straight to the head; a
    # pre-activation net does the reverse (its blocks begin with norm → act; He et al. 2016, ECCV,
    # §4: the extra norm → act after the last addition).
    preactivated: bool = False

    def stem(self, parts: Parts, fan_in: int, fan_out: int) -> nn.Sequential:
        """The first weight layer, from the input to the width the blocks keep."""
        layer = parts.layer(fan_in, fan_out)
        return nn.Sequential(OrderedDict(layer[:1] if self.preactivated else layer))

    def final(self, parts: Parts, width: int) -> nn.Module:
        """What comes between the last block and the head."""
        if not self.preactivated:
            return nn.Identity()
        return nn.Sequential(OrderedDict(parts.activation(width)))


SKIPS: Registry[Skip] = Registry("skip", "block around which an identity path runs")
SKIPS.add("none", Skip(plain_block, plain_layer))
SKIPS.add("residual", Skip(basic_block, basic_block))
SKIPS.add("preact", Skip(preact_block, preact_block, preactivated=True))
