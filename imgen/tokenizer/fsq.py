"""Finite scalar quantisation (FSQ; Mentzer et al., 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each latent channel i is squashed into a bounded interval with tanh and rounded
to one of `levels[i]` values; the straight-through estimator passes gradients
through the rounding. The codebook is the implicit product grid of the levels,
so the token id of a vector is simply its mixed-radix index.

Why FSQ rather than a learned VQ codebook: an earlier learned-codebook tokenizer
on this project lost half its codes after 15 minutes of training. With FSQ
there is nothing to collapse: every grid point stays reachable, there is no
commitment loss or codebook EMA to tune, and the quantiser has no parameters
(the levels live in the config, not in the checkpoint).

Levels per codebook size follow the paper's recommendations, e.g. (8, 5, 5, 5)
for about 2^10 codes and (7, 5, 5, 5, 5) for about 2^12: few levels on many
channels use the codes more evenly than many levels on few channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_EPS = 1e-3  # keeps tanh strictly inside the outermost rounding interval


class FSQ(nn.Module):
    """Quantise the last dimension of a tensor onto a fixed grid of `levels` values per channel."""

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        if not levels or any(int(level) < 2 for level in levels):
            raise ValueError(f"FSQ needs at least one channel and 2 or more levels per channel, got {list(levels)}")
        self.levels = tuple(int(level) for level in levels)
        levels_t = torch.tensor(self.levels, dtype=torch.float32)
        basis = torch.tensor([math.prod(self.levels[:i]) for i in range(len(self.levels))], dtype=torch.long)
        # non-persistent: the levels are part of the config, never of the weights
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_half_width", torch.floor(levels_t / 2), persistent=False)

    @property
    def dim(self) -> int:
        """Channels of a code vector."""
        return len(self.levels)

    @property
    def vocab_size(self) -> int:
        """Number of distinct codes (the product of the levels)."""
        return math.prod(self.levels)

    @property
    def centre_id(self) -> int:
        """The id whose code is all zeros: the neutral token (id 0 is the grid's corner, every channel -1)."""
        return sum((level // 2) * math.prod(self.levels[:i]) for i, level in enumerate(self.levels))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash `z` so that rounding yields exactly `levels[i]` integers per channel.

        For an odd L the values are -(L-1)/2 .. (L-1)/2; for an even L the grid
        is shifted by half a step (-L/2 .. L/2 - 1) and the tanh input shifted
        so that zero input still rounds to the middle code, not a boundary.

        The bounded range is L/2 (1 - eps) on each side, slightly wider than the
        paper's (L-1)/2 (1 - eps): every level then owns an equally wide interval
        (the paper's outermost codes get half an interval, so they are used
        less), and L = 2 works (the paper's shift is undefined there).
        """
        half_l = self._levels / 2 * (1 - _EPS)
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., dim) float -> (codes (..., dim) in [-1, 1], ids (...) int64).

        Runs in fp32 whatever the autocast state: in bf16 the bounded values near
        a rounding boundary would round to different codes than in eval.
        """
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ expects {self.dim} channels in the last dimension, got {z.shape[-1]}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            bounded = self.bound(z.float())
            rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through estimator
            codes = rounded / self._half_width  # (..., dim) in [-1, 1]
            ids = self.codes_to_ids(codes.detach())
        return codes, ids

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., dim) codes on the grid -> (...) int64 mixed-radix ids."""
        digits = torch.round(codes.float() * self._half_width + self._half_width).long()  # (..., dim) in [0, L-1]
        return (digits * self._basis).sum(-1)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) int64 ids -> (..., dim) fp32 codes in [-1, 1]; the inverse of `codes_to_ids`."""
        if ids.dtype.is_floating_point:
            raise TypeError("token ids must be an integer tensor")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        digits = (ids.long().unsqueeze(-1) // self._basis) % self._levels.long()  # (..., dim)
        return (digits.float() - self._half_width) / self._half_width

    def extra_repr(self) -> str:
        return f"levels={list(self.levels)}, vocab_size={self.vocab_size}"
