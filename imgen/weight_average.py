"""An exponential moving average of a model's weights, kept beside it while it trains.

Why: a run held at its peak learning rate (`--schedule wsd`) keeps making
progress, but its current weights are noisy; the average of the last few
thousand steps is close to what a decay of the learning rate would reach,
without stopping the run to decay it. With `--ema` the run's checkpoint holds
the average, so every leg of a long run can be exported and bundled as it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

AVERAGE_MARK = "average"
"""The `weights` entry of a checkpoint header whose weights are this average."""


class WeightAverage:
    """`model`'s weights averaged over steps: after each `update`, average += (1 - decay) (weights - average)."""

    def __init__(self, model: nn.Module, decay: float, start: dict[str, torch.Tensor] | None = None) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be between 0 and 1, not {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()  # the same class and config, so it saves as the model does
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        if start is not None:
            self.model.load_state_dict(start)
        self._average = list(self.model.parameters())
        self._live = list(model.parameters())

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._average, [p.detach() for p in self._live], 1.0 - self.decay)
