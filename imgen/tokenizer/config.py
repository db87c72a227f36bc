"""Sizes of the image tokenizer: `VQConfig` and the size registry `VQ_SIZES`.

A checkpoint stores its `VQConfig` as JSON in the safetensors header, so a file
always rebuilds its own model; `from_dict` is strict (unknown or missing keys
are errors) so a typo in a TOML override or a damaged header never silently
falls back to a default.

Geometry: a pixel-unshuffle stem of factor `patch` turns the image into a grid
of `image_size / patch` cells; each further stage halves it (pixel-unshuffle,
then a 1x1 convolution) until it reaches `detail_grid`. So `channels` and
the block counts have one entry per resolution, from the stem's down to the detail grid's
(128 px, patch 4, detail 16: two stages, 32x32 and 16x16). The coarse grid is
an area-downsampling of the detail grid, so `detail_grid` must be a multiple of
`coarse_grid`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class VQConfig:
    """Geometry, widths and quantiser levels of a `VQTokenizer`."""

    image_size: int = 128
    coarse_grid: int = 8
    detail_grid: int = 16
    patch: int = 4  # pixel-unshuffle factor of the stem: no convolution runs at full resolution
    channels: tuple[int, ...] = (48, 128)  # per stage, from the stem's resolution down to the detail grid's
    encoder_blocks: tuple[int, ...] = (1, 2)  # residual blocks per stage
    decoder_blocks: tuple[int, ...] = (2, 2)  # the decoder does the harder, generative half of the work
    coarse_levels: tuple[int, ...] = (8, 5, 5, 5)  # FSQ levels: 1,000 coarse codes
    detail_levels: tuple[int, ...] = (7, 5, 5, 5, 5)  # FSQ levels: 4,375 detail codes

    def __post_init__(self) -> None:
        for name in ("channels", "encoder_blocks", "decoder_blocks", "coarse_levels", "detail_levels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with one line when the geometry does not add up."""
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch {self.patch}")
        stem = self.image_size // self.patch
        if self.detail_grid < 1 or stem % self.detail_grid or not _power_of_two(stem // self.detail_grid):
            raise ValueError(
                f"detail_grid {self.detail_grid} must be image_size/patch = {stem} divided by a power of two"
            )
        if self.coarse_grid < 1 or self.detail_grid % self.coarse_grid:
            raise ValueError(f"detail_grid {self.detail_grid} is not a multiple of coarse_grid {self.coarse_grid}")
        stages = self.stages
        for name in ("channels", "encoder_blocks", "decoder_blocks"):
            if len(getattr(self, name)) != stages:
                raise ValueError(
                    f"{name} needs {stages} entries (one per resolution from {stem} down to {self.detail_grid})"
                )
        if any(c < 1 for c in self.channels) or any(b < 0 for b in self.encoder_blocks + self.decoder_blocks):
            raise ValueError("channels must be positive and block counts non-negative")
        for name in ("coarse_levels", "detail_levels"):
            levels = getattr(self, name)
            if not levels or any(level < 2 for level in levels):
                raise ValueError(f"{name} needs at least one channel with 2 or more levels")

    @property
    def stages(self) -> int:
        """Resolutions the encoder runs at: the stem's plus one per stride-2 downsampling."""
        return int(math.log2(self.image_size // self.patch // self.detail_grid)) + 1

    @property
    def coarse_vocab(self) -> int:
        return math.prod(self.coarse_levels)

    @property
    def detail_vocab(self) -> int:
        return math.prod(self.detail_levels)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VQConfig:
        """Strict: unknown and missing keys are errors, so a header never half-applies."""
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"VQConfig keys do not match (unknown: {unknown}, missing: {missing})")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VQConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("VQConfig JSON must be an object")
        return cls.from_dict(data)

    def with_overrides(self, **changes: Any) -> VQConfig:
        return replace(self, **changes)


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


# Keys are the CLI choices of `imgen train tokenizer --size`. Widths were chosen by measured
# training throughput on 2 CPU cores (benchmarks/tokenizer_speed.py, batch 16, fp32):
#   small  (48, 128), decoder (2, 2): ~29 images/s, 1.6M parameters -> a 60-minute run sees ~100k images
#   base   (48, 160), decoder (2, 3): ~17 images/s, 2.8M parameters -> for runs of several hours
# 64 channels at the 32x32 stage cost 35-40% of the throughput for 33% more width, so the
# stem stage stays at 48 and capacity goes to the 16x16 stage, where convolutions are cheap.
VQ_SIZES: dict[str, VQConfig] = {
    # for tests: a training step takes a few milliseconds
    "tiny": VQConfig(
        channels=(8, 16),
        encoder_blocks=(1, 1),
        decoder_blocks=(1, 1),
        coarse_levels=(4, 4, 4),
        detail_levels=(4, 4, 4),
    ),
    "small": VQConfig(),
    "base": VQConfig(channels=(48, 160), encoder_blocks=(1, 2), decoder_blocks=(2, 3)),
}


def vq_config(size: str) -> VQConfig:
    """The registered config of `size`, or ValueError naming the choices."""
    if size not in VQ_SIZES:
        raise ValueError(f"unknown tokenizer size {size!r}; choose one of {', '.join(VQ_SIZES)}")
    return VQ_SIZES[size]
