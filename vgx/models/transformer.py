"""A transformer encoder whose LayerNorm sits before (pre-LN) or after (post-LN) each residual add.

Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture" (ICML), §3: at
initialisation post-LN's parameter gradients near the output are large and grow with the layer
index, which is why it needs learning-rate warm-up; pre-LN's are well behaved. Attention is built
from four separate nn.Linear layers (query, key, value, output) so that the probe sees each one as
a layer: nn.MultiheadAttention keeps one unsplit in_proj_weight and uses out_proj.weight without
calling the module, so no hook would see them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vgx.errors import ConfigError
from vgx.models.layers import ACTIVATIONS
from vgx.models.spec import NetSpec
from vgx.registry import Registry

MLP_RATIO = 4  # hidden units of each block's MLP per model dimension (Vaswani et al. 2017)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over the whole sequence (an encoder)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.output = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape  # (B, T, C)

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, T, C/h)

        mixed = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x))
        )
        return self.output(mixed.transpose(1, 2).reshape(b, t, c))


class FeedForward(nn.Module):
    """Linear → activation → Linear, MLP_RATIO × wider inside."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.expand = nn.Linear(width, MLP_RATIO * width)
        self.act = ACTIVATIONS[act]()
        self.contract = nn.Linear(MLP_RATIO * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.contract(self.act(self.expand(x)))


class EncoderBlock(nn.Module):
    """Attention then feed-forward, each a residual branch; `pre` puts LayerNorm inside it.

    post-LN (Vaswani et al. 2017): x = LN(x + F(x)); pre-LN: x = x + F(LN(x)).
    """

    def __init__(self, width: int, heads: int, act: str, pre: bool) -> None:
        super().__init__()
        self.pre = pre
        self.attention = SelfAttention(width, heads)
        self.attention_norm = nn.LayerNorm(width)
        self.feed_forward = FeedForward(width, act)
        self.feed_forward_norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        for branch, norm in (
            (self.attention, self.attention_norm),
            (self.feed_forward, self.feed_forward_norm),
        ):
            x = x + branch(norm(x)) if self.pre else norm(x + branch(x))
        return x


NORM_POSITIONS: Registry[bool] = Registry(
    "norm_position", "where a transformer block's LayerNorm sits (pre: inside the residual branch)"
)
NORM_POSITIONS.add("pre", True)  # Xiong et al. 2020; GPT-2
NORM_POSITIONS.add("post", False)  # Vaswani et al. 2017


def sinusoids(length: int, width: int, like: Tensor) -> Tensor:
    """The fixed positional encoding of Vaswani et al. 2017, §3.5 (no parameters: any seq_len)."""
    position = torch.arange(length, device=like.device, dtype=like.dtype)[:, None]
    rate = torch.exp(
        torch.arange(0, width, 2, device=like.device, dtype=like.dtype) * (-math.log(1e4) / width)
    )
    table = like.new_zeros(length, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table  # (T, C)


class TransformerNet(nn.Module):
    """Embedding, `depth` encoder blocks, (pre-LN: a final LayerNorm,) a head at every step.

    Like the recurrent nets it maps (B, T, F) to (B, T, n_outputs); the dataset decides which
    steps the loss reads. The blocks hold their own residuals and LayerNorms: `skip` and `norm`
    must be left at `none`.
    """

    def __init__(self, spec: NetSpec, heads: int, norm_position: str) -> None:
        super().__init__()
        norm, skip, width = spec.norm, spec.skip, spec.width
        if norm != "none" or skip != "none":
            raise ConfigError(
                f"norm={norm} skip={skip} do not apply to model=transformer: its blocks hold their "
                "own residuals and LayerNorms (norm_position=pre|post); valid: norm=none skip=none"
            )
        if width % heads:
            raise ConfigError(f"width={width} is not a multiple of heads={heads}")
        pre = NORM_POSITIONS[norm_position]
        self.embed = nn.Linear(spec.n_features, width)
        self.blocks = nn.Sequential(
            *(EncoderBlock(width, heads, spec.act, pre) for _ in range(spec.depth))
        )
        self.final_norm = nn.LayerNorm(width) if pre else nn.Identity()
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x)  # (B, T, C)
        h = h + sinusoids(h.shape[1], h.shape[2], h)
        return self.head(self.final_norm(self.blocks(h)))  # (B, T, n_outputs)
