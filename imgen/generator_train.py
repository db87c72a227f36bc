"""Training the generator: world (or folder) images -> image tokens -> masked + causal losses.

Each step draws a batch of examples, turns images into coarse and detail token
grids with the frozen image tokenizer, and captions into prompt ids. The coarse
grid is masked with a ratio drawn from the cosine schedule the sampler uses
(so every sampling step has been practised), the detail grid is learnt by
teacher forcing, and 10% of prompts are replaced by the empty prompt so
classifier-free guidance has an unconditional model to push against.

The loop is resumable (same step, same data position), stops by itself at a
time budget, appends metrics as JSON lines and writes a usable checkpoint
folder (tokenizer + generator) every few minutes.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, load_generator, save_generator
from imgen.checkpoints import load_tokenizer
from imgen.model import GPT_SIZES, Generator, GPTConfig
from imgen.text import PromptEncoder, train_text_tokenizer
from imgen.training import MetricsLog, TimeBudget, autocast_context, cosine_lr, load_training_state, save_training_state
from imgen.world.captions import caption
from imgen.world.examples import example_rng, render_example
from imgen.world.sampling import random_spec


@dataclass
class GeneratorTrainConfig:
    """Options of `imgen train generator`; every field is a CLI flag or a TOML key."""

    tokenizer: str = ""  # path to tokenizer.safetensors
    out_dir: str = "runs/generator"
    size: str = "small"
    batch_size: int = 32
    detail_batch: int = 8  # rows of each batch that also train the (4x longer) detail pass
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    max_steps: int = 200_000
    max_minutes: float = 60.0
    seed: int = 0
    cfg_dropout: float = 0.1
    text_len: int = 48
    log_every: int = 20
    checkpoint_minutes: float = 5.0
    caption_corpus: int = 20_000  # captions the prompt vocabulary is learnt from
    threads: int = 0


def build_prompt_encoder(config: GeneratorTrainConfig) -> PromptEncoder:
    """Learn the prompt vocabulary from world captions (specs only, no rendering: fast)."""
    captions = []
    for index in range(config.caption_corpus):
        rng = example_rng(config.seed + 1_000_003, "train", index)
        captions.append(caption(random_spec(rng, "train"), rng))
    return PromptEncoder(train_text_tokenizer(captions), max_length=config.text_len)


def world_batches(seed: int, start: int, batch_size: int, size: int) -> Iterator[tuple[list, list[str]]]:
    """Consecutive batches of (images, captions) from the training stream, from index `start`."""
    index = start
    while True:
        images, captions = [], []
        for offset in range(batch_size):
            image, example = render_example(seed, index + offset, "train", size)
            images.append(image)
            captions.append(example.caption)
        index += batch_size
        yield images, captions


def images_to_tensor(images: list) -> torch.Tensor:
    """PIL images -> uint8 (B, 3, H, W)."""
    import numpy as np

    return torch.from_numpy(np.stack([np.asarray(im, dtype=np.uint8) for im in images])).permute(0, 3, 1, 2)


def mask_coarse(coarse: torch.Tensor, mask_id: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each row with a cosine-distributed ratio (at least one cell). Returns (input, mask)."""
    B, C = coarse.shape
    ratio = torch.cos(math.pi / 2 * torch.rand(B, generator=generator))  # (B,)
    n_masked = (ratio * C).ceil().clamp(1, C).long()
    scores = torch.rand(B, C, generator=generator)
    ranks = scores.argsort(-1).argsort(-1)
    masked = ranks < n_masked[:, None]  # (B, C)
    return coarse.masked_fill(masked, mask_id), masked


def generator_loss(
    model: Generator,
    text: torch.Tensor,
    coarse: torch.Tensor,
    detail: torch.Tensor,
    generator: torch.Generator,
    detail_batch: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked coarse cross-entropy (whole batch) + causal detail cross-entropy (first `detail_batch` rows).

    The two problems are computed in separate passes, which is exact because the
    masked-coarse segment and the detail segment never see each other. The coarse
    pass is 112 tokens long and the detail pass 368, so on a CPU the layout
    problem (which decides prompt following) gets several times more examples
    per second than the detail problem when `detail_batch` is below the batch.
    """
    coarse_in, masked = mask_coarse(coarse, model.config.mask_id, generator)
    coarse_logits = model.coarse_logits(text, coarse_in)
    coarse_loss = F.cross_entropy(coarse_logits.float()[masked], coarse[masked])
    n = detail.shape[0] if detail_batch is None else min(detail_batch, detail.shape[0])
    detail_logits = model.detail_forward(text[:n], coarse[:n], detail[:n])
    detail_loss = F.cross_entropy(detail_logits.float().reshape(-1, detail_logits.shape[-1]), detail[:n].reshape(-1))
    loss = coarse_loss + detail_loss
    return loss, {"coarse_loss": coarse_loss.item(), "detail_loss": detail_loss.item()}


def train_generator(config: GeneratorTrainConfig, progress: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) in `config.out_dir`; returns the checkpoint folder written last."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path, final = out / "state.safetensors", out / "checkpoint"
    tokenizer = load_tokenizer(Path(config.tokenizer)).eval()
    for param in tokenizer.parameters():
        param.requires_grad_(False)

    if state_path.exists():
        model, prompts, _ = load_generator(final / GENERATOR_FILE)
    else:
        prompts = build_prompt_encoder(config)
        gpt = GPTConfig(
            text_vocab=prompts.vocab_size,
            coarse_vocab=tokenizer.coarse_vocab,
            detail_vocab=tokenizer.detail_vocab,
            text_len=config.text_len,
            coarse_grid=tokenizer.config.coarse_grid,
            detail_grid=tokenizer.config.detail_grid,
            **GPT_SIZES[config.size],
        )
        torch.manual_seed(config.seed)
        model = Generator(gpt)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    step, samples = 0, 0
    if state_path.exists():
        step, samples = load_training_state(state_path, model, optimizer)

    log = MetricsLog(out / "metrics.jsonl")
    budget = TimeBudget(config.max_minutes)
    null_ids = torch.tensor(prompts.encode(""), dtype=torch.long)
    noise = torch.Generator().manual_seed(config.seed * 7919 + step)
    dropout_rng = random.Random(f"cfg-dropout/{config.seed}/{step}")
    batches = world_batches(config.seed, samples, config.batch_size, tokenizer.config.image_size)
    last_save, window_start, window_samples = time.monotonic(), time.monotonic(), 0

    def save() -> None:
        staging = out / "checkpoint.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.copyfile(config.tokenizer, staging / TOKENIZER_FILE)
        save_generator(model, prompts, staging / GENERATOR_FILE, {"train_config": _json(config), "step": str(step)})
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        save_training_state(state_path, model, optimizer, step=step, samples=samples)

    while step < config.max_steps and not budget.expired():
        images, captions = next(batches)
        pixels = images_to_tensor(images)
        with torch.no_grad(), autocast_context(pixels.device):
            grids = tokenizer.encode(pixels)
        text = torch.tensor([prompts.encode(c) for c in captions], dtype=torch.long)
        drop = torch.tensor([dropout_rng.random() < config.cfg_dropout for _ in captions])
        text[drop] = null_ids
        coarse, detail = grids.coarse.flatten(1), grids.detail.flatten(1)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config.max_steps, config.warmup_steps, config.lr)
        with autocast_context(pixels.device):
            loss, parts = generator_loss(model, text, coarse, detail, noise, config.detail_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        samples += len(captions)
        window_samples += len(captions)
        if step % config.log_every == 0:
            now = time.monotonic()
            record = {
                "step": step,
                "samples": samples,
                "loss": round(loss.item(), 4),
                **{k: round(v, 4) for k, v in parts.items()},
                "lr": optimizer.param_groups[0]["lr"],
                "samples_per_s": round(window_samples / (now - window_start), 2),
                "minutes": round(budget.elapsed_minutes(), 2),
            }
            log.write(record)
            if progress:
                progress(record)
            window_start, window_samples = now, 0
        if time.monotonic() - last_save > config.checkpoint_minutes * 60:
            save()
            last_save = time.monotonic()
    save()
    return final


def _json(config: GeneratorTrainConfig) -> str:
    import json

    return json.dumps(asdict(config), sort_keys=True)
