"""The two-phase sampler, as small functions over the generator and its KV cache.

Phase 1 (coarse): the 8x8 grid starts all masked and is filled in `coarse_steps`
parallel steps; after each step the most confident predictions are kept and the
rest re-masked, following a cosine schedule (MaskGIT). Phase 2 (detail): the
16x16 grid is written row-major over a preallocated KV cache, several rows in
flight by default (`detail_window`, below) or token by token (window 0, and
the raster baseline); a callback fires after every row so a terminal can draw
the image filling in.

Classifier-free guidance doubles the batch (prompt rows, then empty-prompt rows)
and mixes the final hidden states, which gives exactly the guided logits with
one run of the output head (see `Generator._guided`). The prompt attends only
to itself, so its keys and values are computed once (`prompt_cache`) and shared
by every coarse step, the detail prefill and, for the baseline, every raster
step. Every image owns a `torch.Generator` seeded with its own seed, and all
randomness of image i is drawn from generator i, so an image does not depend on
the batch it was made in.

With `detail_window` w > 0 the detail phase decodes rows in parallel, as in
ZipAR: row r+1 starts once row r has w tokens, so each step writes one token
in every active row and the 256 sequential steps become 15 w + 16 (w = 2: 46).
A token then no longer sees the end of the row above (not written yet), only
the w tokens above-right of it and everything earlier, which is most of what
an image token depends on. The one input the model was trained to see and
cannot have in time, the last token of the previous row that a row's first
slot takes as input, is replaced by BOS when that slot is written, and the
slot is fed again with the real token as soon as it exists, so every later
token sees it (`window_plan`). Whether this costs quality is measured,
not assumed (`python -m benchmarks.detail_window`, `imgen eval --detail-window`):
the default w = 2 (46 steps, against 76 at w = 4) costs the generator's own
likelihood of its tokens a little more than w = 4; the README gives both figures.

Guidance is a coarse-phase tool by default (`detail_cfg = 1`): the coarse grid
already carries the prompt's layout and colours, and the detail phase then runs
on the prompt rows alone, half the rows of a guided step. Judged on
ground-truth coarse grids (`imgen eval --source given-coarse`), guiding the
detail phase made no measurable difference with the bundled model (README);
`detail_cfg` > 1 brings it back.

`mode="raster"` is the plain baseline: every token one at a time (coarse cells
in raster order, `raster_coarse`, then detail one by one), the reference the
speed benchmarks compare with.
Fixed tokens (`coarse_fixed`, `detail_fixed`, with -1 meaning free) implement
editing: they are forced and never resampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from imgen.model import Generator, KVCache
from imgen.sampler_config import SamplerConfig, check_seed

# callback(phase, step, total, coarse_ids (B, 64), detail_ids (B, 256) with -1 where not yet written)
ProgressCallback = Callable[[str, int, int, torch.Tensor, torch.Tensor], None]


def make_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with that image's seed."""
    return [torch.Generator().manual_seed(check_seed(seed)) for seed in seeds]


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, top-k and nucleus filtering of (B, V) logits, in fp32."""
    logits = logits.float()
    if temperature != 1.0:  # dividing by 1 changes nothing; skipping it saves a pass over the vocabulary
        logits = logits / max(temperature, 1e-5)
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_rows(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """Draw one token per row of (B, V) or (B, N, V) probabilities, row b from generator b.

    By inverting the cumulative distribution: one uniform per token drawn, then
    one batched search. (`torch.multinomial` draws an exponential for every
    entry of the vocabulary, which cost more than the model's step here.) A
    token of probability 0 is never chosen: the search takes the first entry
    whose cumulative sum exceeds the target, and the target stays strictly below
    the total (a uniform close to 1 can round up to it), so that entry exists
    and added probability to the sum.
    """
    B, V = probs.shape[0], probs.shape[-1]
    cumulative = probs.reshape(B, -1, V).float().cumsum(-1)  # (B, N, V)
    total = cumulative[..., -1:]  # (B, N, 1)
    uniform = torch.stack([torch.rand(cumulative.shape[1], generator=generators[b]) for b in range(B)])
    target = torch.minimum(uniform[..., None] * total, torch.nextafter(total, torch.zeros_like(total)))
    drawn = torch.searchsorted(cumulative, target, right=True)[..., 0]
    return drawn.reshape(probs.shape[:-1])


def guide(logits: torch.Tensor, cfg: float) -> torch.Tensor:
    """Split a doubled batch [cond; uncond] and apply classifier-free guidance."""
    cond, uncond = logits.float().chunk(2)
    return uncond + cfg * (cond - uncond) if cfg != 1.0 else cond


def _doubled(text_ids: torch.Tensor, null_ids: torch.Tensor) -> torch.Tensor:
    return torch.cat([text_ids, null_ids.expand_as(text_ids)])


def prompt_cache(model: Generator, text_ids: torch.Tensor, null_ids: torch.Tensor) -> KVCache:
    """A guidance-doubled KV cache (prompt rows, then empty-prompt rows) holding the encoded prompts.

    Both phases of one batch share it: the prompt is encoded once, the coarse
    steps use the slots after it as scratch, and the detail phase fills the rest.
    """
    dtype = next(model.parameters()).dtype
    cache = KVCache.empty(model.config, 2 * text_ids.shape[0], model.sequence_capacity(), dtype, text_ids.device)
    model.encode_prompt(_doubled(text_ids, null_ids), cache)
    return cache


def coarse_logits(
    model: Generator, grid: torch.Tensor, cache: KVCache, cfg: float, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """One coarse step's logits (B, C, V) for the grid (B, C) over a prompt cache of 2B rows, guided by `cfg`.

    A `reference` grid (B, C) (`Generator.embed_coarse`) goes to the prompt rows
    and the empty-prompt rows alike, so guidance weighs the prompt against the
    reference alone: it pushes towards what the prompt changes.

    Why a cfg of 1 is special: it takes the prompt's logits alone, so running
    the empty-prompt half of the batch would only be thrown away; the prompt
    rows of the cache see the grid by themselves (as `_prefilled` does for the detail phase).
    """
    if cfg == 1.0:
        return model.coarse_step(grid, cache.first_rows(grid.shape[0]), None, reference)
    both = None if reference is None else torch.cat([reference, reference])
    return model.coarse_step(torch.cat([grid, grid]), cache, cfg, both)


def coarse_schedule(step: int, steps: int, total: int) -> int:
    """How many cells stay masked after `step` (0-based) of `steps`: cosine, reaching 0."""
    return math.floor(total * math.cos(math.pi / 2 * (step + 1) / steps))


@torch.inference_mode()
def coarse_phase(
    model: Generator,
    text_ids: torch.Tensor,  # (B, T)
    null_ids: torch.Tensor,  # (1, T) the empty prompt
    config: SamplerConfig,
    generators: list[torch.Generator],
    coarse_fixed: torch.Tensor | None = None,  # (B, C), -1 = free
    callback: ProgressCallback | None = None,
    cache: KVCache | None = None,  # from `prompt_cache`; made here if not given
    reference: torch.Tensor | None = None,  # (B, C) a reference grid, [MASK] = none (`Generator.embed_coarse`)
) -> torch.Tensor:
    """Fill the coarse grid from all-masked in `config.coarse_steps` parallel steps. Returns (B, C)."""
    B, C, mask_id = text_ids.shape[0], model.config.coarse_len, model.config.mask_id
    grid = torch.full((B, C), mask_id, dtype=torch.long)
    if coarse_fixed is not None:
        grid = torch.where(coarse_fixed >= 0, coarse_fixed, grid)
    free_total = (grid == mask_id).sum(-1)  # (B,)
    cache = cache if cache is not None else prompt_cache(model, text_ids, null_ids)
    for step in range(config.coarse_steps):
        masked = grid == mask_id  # (B, C)
        if not masked.any():
            break
        logits = coarse_logits(model, grid, cache, config.cfg, reference)  # (B, C, V)
        probs = filter_logits(logits.reshape(B * C, -1), config.temperature, config.top_k, config.top_p)
        probs = probs.softmax(-1).reshape(B, C, -1)
        drawn, gumbel = _coarse_draws(probs, masked.any(-1), generators)  # (B, C) each
        confidence = torch.gather(probs, -1, drawn[..., None]).squeeze(-1).clamp_min(1e-12).log()
        noise_scale = config.mask_temperature * (1 - (step + 1) / config.coarse_steps)
        confidence = torch.where(masked, confidence + noise_scale * gumbel, torch.full_like(confidence, math.inf))
        for b in range(B):
            keep_masked = coarse_schedule(step, config.coarse_steps, int(free_total[b]))
            keep_masked = min(keep_masked, int(masked[b].sum()) - 1) if masked[b].any() else 0
            new = torch.where(masked[b], drawn[b], grid[b])
            if keep_masked > 0:
                lowest = torch.topk(confidence[b], keep_masked, largest=False).indices
                new[lowest] = mask_id
            grid[b] = new
        if callback is not None:
            callback("coarse", step + 1, config.coarse_steps, grid, torch.full((B, model.config.detail_len), -1))
    return grid


def _coarse_draws(
    probs: torch.Tensor, unfinished: torch.Tensor, generators: list[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One coarse step's tokens and choice noise, both (B, C), drawn only for `unfinished` images (B,) bool.

    An image whose grid is already full draws nothing more, as it would if it
    were sampled alone, so its random stream (and so its detail phase) does not
    depend on how long the other images of its batch take. Finished rows get
    zeros, which the caller never uses.
    """
    B, C = probs.shape[:2]
    if bool(unfinished.all()):
        return sample_rows(probs, generators), torch.stack([_gumbel((C,), g) for g in generators])
    rows = unfinished.nonzero().flatten().tolist()
    drawn, gumbel = torch.zeros(B, C, dtype=torch.long), torch.zeros(B, C)
    if rows:
        chosen = [generators[b] for b in rows]
        drawn[rows] = sample_rows(probs[rows], chosen)
        gumbel[rows] = torch.stack([_gumbel((C,), g) for g in chosen])
    return drawn, gumbel


def _gumbel(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(uniform))


@torch.inference_mode()
def detail_phase(
    model: Generator,
    text_ids: torch.Tensor,  # (B, T)
    null_ids: torch.Tensor,  # (1, T)
    coarse_ids: torch.Tensor,  # (B, C)
    config: SamplerConfig,
    generators: list[torch.Generator],
    detail_fixed: torch.Tensor | None = None,  # (B, D), -1 = free
    callback: ProgressCallback | None = None,
    cache: KVCache | None = None,  # from `prompt_cache`; made here if not given
    reference: torch.Tensor | None = None,  # (B, D) a reference detail grid, [BOS] = none (`Generator.embed_detail`)
) -> torch.Tensor:
    """Write the detail grid row by row over a KV cache. Returns (B, D)."""
    c = model.config
    B, D, row = text_ids.shape[0], c.detail_len, c.detail_grid
    cache, logits, guidance = _prefilled(model, text_ids, null_ids, coarse_ids, cache, config.detail_cfg, reference)
    detail = torch.full((B, D), -1, dtype=torch.long)
    for position in range(D):
        token = _choose(logits, config, generators, config.detail_temperature)
        if detail_fixed is not None:
            token = torch.where(detail_fixed[:, position] >= 0, detail_fixed[:, position], token)
        detail[:, position] = token
        if position + 1 < D:
            logits = model.decode_one(_guided_rows(token, guidance), position + 1, cache, guidance)
        if callback is not None and (position + 1) % row == 0:
            callback("detail", (position + 1) // row, c.detail_grid, coarse_ids, detail)
    return detail


def _prefilled(
    model: Generator,
    text_ids: torch.Tensor,
    null_ids: torch.Tensor,
    coarse_ids: torch.Tensor,
    cache: KVCache | None,
    cfg: float,
    reference: torch.Tensor | None = None,
) -> tuple[KVCache, torch.Tensor, float | None]:
    """The detail phase's start: its cache with the coarse grid added, the logits of detail token 0 (B, Vd),
    and the guidance its steps pass to the model (None: the prompt rows alone, when `cfg` is 1). A detail
    `reference` (B, D) goes to the prompt rows and the empty-prompt rows alike, as in `coarse_logits`.
    """
    cache = cache if cache is not None else prompt_cache(model, text_ids, null_ids)
    if cfg == 1.0:
        cache = cache.first_rows(text_ids.shape[0])  # the empty-prompt rows would only be discarded
        return cache, model.prefill_detail(coarse_ids, cache, None, reference), None
    both = None if reference is None else torch.cat([reference, reference])
    return cache, model.prefill_detail(torch.cat([coarse_ids, coarse_ids]), cache, cfg, both), cfg


def _guided_rows(inputs: torch.Tensor, guidance: float | None) -> torch.Tensor:
    """A step's inputs for the prompt rows and, under guidance, again for the empty-prompt rows."""
    return inputs if guidance is None else torch.cat([inputs, inputs])


def detail_schedule(grid: int, window: int) -> list[list[int]]:
    """Detail positions written at each step: row r, column c at step r * lag + c (lag = window, or grid if 0)."""
    lag = grid if window <= 0 or window >= grid else window
    steps: list[list[int]] = [[] for _ in range((grid - 1) * lag + grid)]
    for r in range(grid):
        for col in range(grid):
            steps[r * lag + col].append(r * grid + col)
    return steps


@dataclass
class WindowStep:
    """What one parallel detail step writes and may read; depends only on the grid and the window."""

    positions: torch.Tensor  # (n,) detail positions fed in this step
    inputs: torch.Tensor  # (n,) the position whose token is each one's input (the one before it)
    input_known: torch.Tensor  # (n,) bool: that token is written before this step (else BOS stands in)
    allowed: torch.Tensor  # (n, read_to) bool: cache slots each position may attend to
    sampled: torch.Tensor  # (n,) bool: a token is drawn here; False: a row start fed again (see `window_plan`)


def window_plan(model: Generator, window: int) -> list[WindowStep]:
    """The steps of `detail_schedule` with their inputs and attention masks, made once per batch, not per step.

    A row starts before the row above it ends, so its first slot is fed BOS in place of the last token
    above, the only place that token would enter the model. So that later tokens still see it, the
    step after that token is written feeds the row's first slot again with it: one more query in that
    step, whose keys and values replace the BOS ones and whose logits are not sampled (the token there
    is already drawn). Without this no token ever saw the grid's last column.
    """
    c = model.config
    D, grid = c.detail_len, c.detail_grid
    schedule = detail_schedule(grid, window)
    step_of = torch.empty(D, dtype=torch.long)
    for step, positions in enumerate(schedule):
        step_of[positions] = step
    slot_position = torch.arange(model.sequence_capacity()) - (c.text_len + c.coarse_len)  # <0: prompt/coarse
    prefix_slot = slot_position < 0
    slot_step = torch.where(prefix_slot, -1, step_of[slot_position.clamp(0, D - 1)])  # when each slot is written
    row_starts = torch.arange(grid, D, grid)  # every row's first slot but the first row's
    plan = []
    for step, positions in enumerate(schedule):
        # row starts fed BOS (written no later than the token above them) whose token above was just written
        refed = row_starts[(step_of[row_starts - 1] == step - 1) & (step_of[row_starts] <= step - 1)]
        where = torch.cat([torch.tensor(positions), refed])
        before = (where - 1).clamp_min(0)
        allowed = prefix_slot | ((slot_position <= where[:, None]) & (slot_step <= step))  # (n, capacity)
        read_to = c.text_len + c.coarse_len + int(where.max()) + 1  # no later slot is allowed
        sampled = torch.arange(len(where)) < len(positions)
        plan.append(WindowStep(where, before, step_of[before] < step, allowed[:, :read_to], sampled))
    return plan


@torch.inference_mode()
def parallel_detail_phase(
    model: Generator,
    text_ids: torch.Tensor,  # (B, T)
    null_ids: torch.Tensor,  # (1, T)
    coarse_ids: torch.Tensor,  # (B, C)
    config: SamplerConfig,
    generators: list[torch.Generator],
    detail_fixed: torch.Tensor | None = None,  # (B, D), -1 = free
    callback: ProgressCallback | None = None,
    cache: KVCache | None = None,  # from `prompt_cache`; made here if not given
    reference: torch.Tensor | None = None,  # (B, D) as in `detail_phase`
) -> torch.Tensor:
    """Write the detail grid with several rows in flight (`detail_schedule`). Returns (B, D)."""
    c = model.config
    B, D, grid = text_ids.shape[0], c.detail_len, c.detail_grid
    cache, logits, guidance = _prefilled(model, text_ids, null_ids, coarse_ids, cache, config.detail_cfg, reference)
    logits = logits[:, None]
    detail = torch.full((B, D), -1, dtype=torch.long)
    for index, step in enumerate(window_plan(model, config.detail_window)):
        if index > 0:
            previous = torch.where(step.input_known, detail[:, step.inputs], c.bos_id)
            if detail_fixed is not None:  # an edit's fixed tokens are known before they are written
                fixed_input = detail_fixed[:, step.inputs]
                previous = torch.where(~step.input_known & (fixed_input >= 0), fixed_input, previous)
            rows = _guided_rows(previous, guidance)
            logits = model.decode_slots(rows, step.positions, cache, step.allowed, guidance)[:, step.sampled]
        written = step.positions[step.sampled]
        tokens = _choose(logits, config, generators, config.detail_temperature)  # (B, n)
        if detail_fixed is not None:
            fixed = detail_fixed[:, written]
            tokens = torch.where(fixed >= 0, fixed, tokens)
        detail[:, written] = tokens
        if callback is not None:
            for position in written.tolist():
                if (position + 1) % grid == 0:
                    callback("detail", (position + 1) // grid, grid, coarse_ids, detail)
    return detail


def _choose(
    logits: torch.Tensor, config: SamplerConfig, generators: list[torch.Generator], temperature: float
) -> torch.Tensor:
    """Draw from already guided logits (B, ..., V) at `temperature` (each phase has its own)."""
    probs = filter_logits(logits, temperature, config.top_k, config.top_p).softmax(-1)
    return sample_rows(probs, generators)


@torch.inference_mode()
def raster_coarse(
    model: Generator,
    text_ids: torch.Tensor,
    null_ids: torch.Tensor,
    config: SamplerConfig,
    generators: list[torch.Generator],
    coarse_fixed: torch.Tensor | None = None,  # (B, C), -1 = free
    cache: KVCache | None = None,  # from `prompt_cache`; made here if not given
    reference: torch.Tensor | None = None,  # (B, C) as in `coarse_phase`
) -> torch.Tensor:
    """Baseline phase 1: one coarse cell per forward pass, in raster order. Returns (B, C).

    Fixed cells are known context from the start; a draw is still made for them
    (and discarded) so an image's random stream does not depend on its batch.
    """
    B, C, mask_id = text_ids.shape[0], model.config.coarse_len, model.config.mask_id
    grid = torch.full((B, C), mask_id, dtype=torch.long)
    if coarse_fixed is not None:
        grid = torch.where(coarse_fixed >= 0, coarse_fixed, grid)
    cache = cache if cache is not None else prompt_cache(model, text_ids, null_ids)
    for cell in range(C):
        logits = coarse_logits(model, grid, cache, config.cfg, reference)[:, cell]  # (B, V)
        drawn = _choose(logits, config, generators, config.temperature)
        grid[:, cell] = drawn if coarse_fixed is None else torch.where(coarse_fixed[:, cell] >= 0, grid[:, cell], drawn)
    return grid


@torch.inference_mode()
def sample_tokens(
    model: Generator,
    text_ids: torch.Tensor,
    null_ids: torch.Tensor,
    config: SamplerConfig,
    seeds: list[int],
    coarse_fixed: torch.Tensor | None = None,
    detail_fixed: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    coarse_reference: torch.Tensor | None = None,
    detail_reference: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both phases for a batch of prompts; image b uses seed `seeds[b]`. Returns (coarse, detail).

    `coarse_reference` (B, C): a reference grid the coarse phase of a
    reference-input generator sees (`Generator.embed_coarse`; restyle);
    `detail_reference` (B, D): its detail grid, for the detail phase of a
    generator with a detail reference input (`Generator.embed_detail`).
    """
    phase = detail_phase_of(model, config)  # checks the mode before any work
    c = model.config
    check_reference(coarse_reference, "coarse_reference", c.reference_input, text_ids.shape[0], c.coarse_len, c.mask_id)
    check_reference(
        detail_reference, "detail_reference", c.detail_reference_input, text_ids.shape[0], c.detail_len, c.bos_id
    )
    generators = make_generators(seeds)
    cache = prompt_cache(model, text_ids, null_ids)
    if config.mode == "raster":
        coarse = raster_coarse(model, text_ids, null_ids, config, generators, coarse_fixed, cache, coarse_reference)
    else:
        coarse = coarse_phase(
            model, text_ids, null_ids, config, generators, coarse_fixed, callback, cache, coarse_reference
        )
    detail = phase(
        model, text_ids, null_ids, coarse, config, generators, detail_fixed, callback, cache, detail_reference
    )
    return coarse, detail


def check_reference(grid: torch.Tensor | None, name: str, accepted: bool, batch: int, cells: int, none_id: int) -> None:
    """A `ValueError` unless `grid` is None or a (batch, cells) grid of ids below `none_id`, or `none_id` for none,
    for a generator that `accepted` it (trained on restyle pairs)."""
    if grid is None:
        return
    if not accepted:
        raise ValueError(f"this generator has no reference input for {name} (it was not trained on restyle pairs)")
    if grid.shape != (batch, cells):
        raise ValueError(f"{name} must be (batch, {cells}), not {tuple(grid.shape)}")
    if grid.min() < 0 or grid.max() > none_id:
        raise ValueError(f"{name} holds token ids, or {none_id} for none")


def detail_phase_of(model: Generator, config: SamplerConfig) -> Callable[..., torch.Tensor]:
    """The detail phase `config` asks for: rows in parallel, or (raster baseline, window 0) one token per step."""
    parallel = config.mode == "two-phase" and 0 < config.detail_window < model.config.detail_grid
    return parallel_detail_phase if parallel else detail_phase


@torch.inference_mode()
def sample_detail(
    model: Generator,
    text_ids: torch.Tensor,
    null_ids: torch.Tensor,
    coarse_ids: torch.Tensor,  # (B, C), all known
    config: SamplerConfig,
    seeds: list[int],
) -> torch.Tensor:
    """Phase 2 alone, on a given coarse grid (B, C); image b uses seed `seeds[b]`. Returns (B, D).

    Given the ground-truth coarse grid, this measures what the detail phase
    adds or loses on its own (`imgen eval --source given-coarse`).
    """
    phase = detail_phase_of(model, config)
    return phase(model, text_ids, null_ids, coarse_ids, config, make_generators(seeds))
