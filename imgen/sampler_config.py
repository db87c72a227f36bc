"""How to sample, as settings: `SamplerConfig`, checked on creation, and the seed range.

Why its own module: the settings travel without the sampler. A PNG's recipe
(`imgen.recipe`), `imgen info` and the command line's checks read and
validate them before any model loads, and importing the sampler imports
torch, seconds on a cold start for a command that may only print an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass
class SamplerConfig:
    """How to sample. The defaults are the ones the README's figures use."""

    coarse_steps: int = 8
    cfg: float = 3.0  # guidance of the coarse phase (the detail phase has `detail_cfg`)
    # sampling temperature of the coarse phase (the detail phase has `detail_temperature`); 0.5 drew the asked object
    # more often than 1.0 (quick suite 0.118 against 0.095, +0.023 ± 0.010 at 16 images per prompt)
    temperature: float = 0.5
    top_k: int = 0  # both phases
    top_p: float = 1.0  # both phases
    mask_temperature: float = 4.5  # MaskGIT's confidence noise, annealed to 0 over the coarse steps
    mode: str = "two-phase"  # or "raster"
    detail_window: int = 2  # >0: a detail row starts once the row above is this many tokens ahead (`imgen.sampler`)
    detail_cfg: float = 1.0  # guidance of the detail phase; 1 = none, which halves its rows (`imgen.sampler`)
    detail_temperature: float = 0.5  # sampling temperature of the detail phase (`temperature` is the coarse phase's)

    def __post_init__(self) -> None:
        """Refuse settings no sampler can use (the command line checks them too; the API and recipes read
        from PNGs come here): 0 coarse steps would hand the detail phase a grid of masks, a negative top-p
        keeps no token."""
        ranges = {
            "coarse_steps": (1, None), "cfg": (0.0, None), "temperature": (0.0, None), "top_k": (0, None),
            "mask_temperature": (0.0, None), "detail_window": (0, None), "detail_cfg": (0.0, None),
            "detail_temperature": (0.0, None),
        }  # fmt: skip
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value and (high is None or value <= high)):
                raise ValueError(f"sampler setting {name} = {value!r} is out of range (at least {low})")
        if not (isinstance(self.top_p, int | float) and 0.0 <= self.top_p <= 1.0):
            raise ValueError(f"sampler setting top_p = {self.top_p!r} must be between 0 and 1")
        if self.mode not in SAMPLER_MODES:
            raise ValueError(f"unknown sampler {self.mode!r}; choose {' or '.join(SAMPLER_MODES)}")


SAMPLER_MODES = ("two-phase", "raster")


def with_options(base: SamplerConfig, **options: object) -> SamplerConfig:
    """`base` with the options a caller gave (None = not given, so `base` keeps its value).

    Why here: generate, eval and `--from-image` all start from some settings
    (the defaults or an image's recipe) and change only what was asked; an
    unknown `mode` or a setting out of range is a `ValueError` now (`SamplerConfig` checks itself), not a
    failure after the model loads.
    """
    return replace(base, **{name: value for name, value in options.items() if value is not None})


SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what `torch.Generator.manual_seed` takes


def check_seed(seed: int) -> int:
    """`seed` if a torch generator takes it, else a `ValueError` naming the range (checked before any work)."""
    if not SEED_MIN <= seed <= SEED_MAX:
        raise ValueError(f"seed {seed} is out of range: seeds go from -2**63 to 2**64 - 1")
    return seed
