"""A learned prior over a VQ-VAE's grid of codes: a small causal transformer, read in raster order.

The h x w grid of code indices is flattened row by row into a sequence c_0 .. c_{L-1} (L = h*w) and
modelled autoregressively, p(c) = prod_i p(c_i | c_<i). van den Oord et al. 2017 (arXiv:1711.00937,
sec. 3.2) fit a PixelCNN to the grid; a causal transformer is the same factorisation with another network
(as in VQGAN, Esser et al. 2021). The network: a start token and the codes so far, each embedded and
given a learned position embedding, then ``depth`` pre-norm blocks of causal self-attention and an MLP
(GPT-2's layout, Radford et al. 2019), then a linear head to logits over the ``num_codes`` codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position i sees positions 0..i only."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        # [B, T, 3 * width] -> three [B, heads, T, width / heads]
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): the pre-norm transformer block."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CodePrior(nn.Module):
    """p(c) = prod_i p(c_i | c_<i) over code grids c [h, w] with entries in 0..num_codes-1.

    ``config`` holds the constructor's arguments, so ``CodePrior(**prior.config)`` rebuilds it.
    """

    def __init__(
        self, num_codes: int, grid: Sequence[int], width: int = 128, depth: int = 4, heads: int = 4
    ) -> None:
        super().__init__()
        if num_codes < 1:
            raise ValueError(f"a prior needs num_codes >= 1, got {num_codes}")
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"grid must be [height, width] of the code grid, got {list(grid)}")
        if depth < 1 or heads < 1 or width < 1 or width % heads:
            raise ValueError(f"need depth, heads >= 1 and width a multiple of heads; got {width}/{heads}")
        self.config = dict(num_codes=num_codes, grid=list(grid), width=width, depth=depth, heads=heads)
        self.num_codes = num_codes
        self.grid = (int(grid[0]), int(grid[1]))
        self.length = self.grid[0] * self.grid[1]
        self.start = num_codes  # the start token's index, after the codes'
        self.token = nn.Embedding(num_codes + 1, width)
        self.position = nn.Parameter(torch.zeros(self.length, width))
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_codes)
        nn.init.normal_(self.token.weight, std=0.02)  # GPT-2's scale for both embeddings
        nn.init.normal_(self.position, std=0.02)

    def logits(self, prefix: torch.Tensor) -> torch.Tensor:
        """Codes so far [B, t] in raster order (0 <= t < L) -> logits [B, t + 1, num_codes], where
        row i holds the logits of p(c_i | c_<i): the input is the start token followed by the prefix."""
        start = torch.full((len(prefix), 1), self.start, dtype=torch.long, device=prefix.device)
        tokens = torch.cat([start, prefix], dim=1)
        h = self.token(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(h)))

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(c) = sum_i log p(c_i | c_<i) in nats. Codes [B, h, w] (long) -> [B]."""
        if tuple(codes.shape[1:]) != self.grid:
            raise ValueError(f"codes must be [B, {self.grid[0]}, {self.grid[1]}], got {list(codes.shape)}")
        flat = codes.flatten(1)
        # the last code is predicted, never input: inputs are start, c_0 .. c_{L-2}
        log_p = F.log_softmax(self.logits(flat[:, :-1]), dim=-1)
        return log_p.gather(2, flat.unsqueeze(2)).squeeze(2).sum(dim=1)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Ancestral sampling: c_0 ~ p(c_0), then each c_i ~ p(c_i | c_<i) in raster order, with the
        logits divided by ``temperature`` (below 1: the likelier codes more often).

        One network pass per position over the whole prefix (no cache: L is at most a few dozen here).
        Deterministic for a seeded ``generator`` on the prior's device. -> codes [n, h, w] (long).
        """
        codes = torch.zeros(n, 0, dtype=torch.long, device=self.position.device)
        for _ in range(self.length):
            probs = F.softmax(self.logits(codes)[:, -1].float() / temperature, dim=-1)
            codes = torch.cat([codes, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return codes.view(n, *self.grid)
