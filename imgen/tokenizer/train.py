"""Training and evaluation of the image tokenizer.

The loop streams images (world scenes rendered on the fly, or a folder of the
user's PNG/JPEG/WebP files, see `imgen.folder_data`), trains with AdamW on a cosine schedule, and is
built for unattended CPU runs: it stops by itself at `max_minutes` or
`max_steps`, appends metrics to `out_dir/metrics.jsonl`, writes
`out_dir/last.safetensors` (a usable tokenizer) and `out_dir/state.safetensors`
(model + optimizer + data position) every few minutes, and resumes from there at
the same step and the same data position.

Loss, all on the [0, 1] pixel scale and in fp32:

    full + coarse_weight * coarse_only,   each = L1 + MSE + edge_weight * L1(grad(out) - grad(target))

L1 keeps flat colours exact, MSE is what PSNR measures, and the edge term (L1
between finite-difference gradients) penalises blurred strokes directly: a
blurred glyph edge costs little in L1/MSE because it covers few pixels, but its
gradient error is large. Text survival is the hard part of this tokenizer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imgen.checkpoints import CheckpointError, save_tokenizer
from imgen.tokenizer.config import VQConfig, vq_config
from imgen.tokenizer.model import VQTokenizer
from imgen.training import (
    MetricsLog,
    TimeBudget,
    autocast_context,
    cosine_lr,
    load_training_state,
    read_training_metadata,
    save_training_state,
)

LAST_FILE, STATE_FILE, METRICS_FILE = "last.safetensors", "state.safetensors", "metrics.jsonl"


@dataclass
class TokenizerTrainConfig:
    """Options of `imgen train tokenizer`; every field is a CLI flag or a TOML key."""

    size: str = "small"
    data: str = "world"  # "world" or a folder of PNG/JPEG/WebP images
    out_dir: str = "runs/tokenizer"
    batch_size: int = 16
    lr: float = 4e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    max_steps: int = 6_000  # also the length of the cosine schedule: ~60 min at ~27 images/s, batch 16
    max_minutes: float = 60.0
    seed: int = 0
    coarse_weight: float = 0.5  # lambda of the coarse-only loss
    coarse_fraction: float = 0.5  # share of each batch also decoded from the coarse grid alone
    edge_weight: float = 1.0
    log_every: int = 20
    ckpt_every_minutes: float = 5.0
    threads: int = 0  # torch threads; 0 keeps torch's default


# ---------------------------------------------------------------- data


def world_batches(seed: int, start: int, batch_size: int, size: int) -> Iterator[torch.Tensor]:
    """uint8 (B, 3, H, W) batches of training scenes, from stream index `start` on."""
    from imgen.world.dataset import WorldStream  # lazy: the renderer is heavy and only needed here

    stream = iter(WorldStream(seed=seed, split="train", size=size, start=start))
    while True:
        yield torch.stack([next(stream)["image"] for _ in range(batch_size)])


def folder_batches(cfg: TokenizerTrainConfig, start: int, size: int, log: MetricsLog) -> Iterator[torch.Tensor]:
    """Batches of a user's folder (captions not needed); its problems are logged once, at the start."""
    from imgen.folder_data import FolderExamples, scan_folder

    scan = scan_folder(cfg.data)
    log.write({"event": "data", "folder": str(scan.root), "images": len(scan.items), "problems": scan.problems()})
    return FolderExamples(scan.items, cfg.seed, size).batches(start, cfg.batch_size)


# ---------------------------------------------------------------- loss and metrics


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite differences along width and height: (B, C, H, W-1), (B, C, H-1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """L1 + MSE + edge_weight * gradient L1, in fp32 on the [0, 1] scale."""
    output, target = output.float(), target.float()
    loss = F.l1_loss(output, target) + F.mse_loss(output, target)
    if edge_weight:
        (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
        loss = loss + edge_weight * 0.5 * (F.l1_loss(ox, tx) + F.l1_loss(oy, ty))
    return loss


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (B,) of images on [0, 1] (output clamped), computed in fp32."""
    mse = (output.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


# ---------------------------------------------------------------- training


def saved_config(state_path: Path) -> VQConfig:
    """The model config a run was started with: a resumed run keeps it even if `--size` changed."""
    try:
        return VQConfig.from_json(read_training_metadata(state_path)["vq_config"])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{state_path}: no usable tokenizer config in the training state ({error!r})") from None


def train_tokenizer(cfg: TokenizerTrainConfig, progress: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) in `cfg.out_dir`; returns the path of `last.safetensors`."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path, last_path = out / STATE_FILE, out / LAST_FILE

    resuming = state_path.exists()
    config = saved_config(state_path) if resuming else vq_config(cfg.size)
    torch.manual_seed(cfg.seed)
    model = VQTokenizer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step, position = load_training_state(state_path, model, optimizer) if resuming else (0, 0)

    log, budget = MetricsLog(out / METRICS_FILE), TimeBudget(cfg.max_minutes)
    if cfg.data == "world":
        batches = world_batches(cfg.seed, position, cfg.batch_size, config.image_size)
    else:
        batches = folder_batches(cfg, position, config.image_size, log)
    extra = {"vq_config": config.to_json(), "train_config": json.dumps(asdict(cfg), sort_keys=True)}
    coarse_count = max(1, round(cfg.batch_size * cfg.coarse_fraction)) if cfg.coarse_weight > 0 else 0

    def save() -> None:
        save_tokenizer(model, last_path, {**extra, "step": str(step), "samples": str(position)})
        save_training_state(state_path, model, optimizer, step=step, samples=position, extra=extra)

    record_start = {"event": "resume" if resuming else "start", "step": step, "samples": position}
    log.write({**record_start, "parameters": model.num_parameters(), **extra})
    last_save = window_start = time.monotonic()
    window_images = 0
    while step < cfg.max_steps and not budget.expired():
        images = next(batches)  # (B, 3, H, W) uint8
        position += images.shape[0]
        target = to_unit(images)
        lr = cosine_lr(step, cfg.max_steps, cfg.warmup_steps, cfg.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast_context("cpu"):
            rec = model.autoencode(images, coarse_count)
        loss_full = reconstruction_loss(rec.full, target, cfg.edge_weight)
        loss = loss_full
        if coarse_count:
            loss = loss + cfg.coarse_weight * reconstruction_loss(rec.coarse, target[:coarse_count], cfg.edge_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        window_images += images.shape[0]

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = time.monotonic()
            with torch.no_grad():
                record = {
                    "step": step,
                    "samples": position,
                    "loss": round(loss.item(), 5),
                    "loss_full": round(loss_full.item(), 5),
                    "psnr_full": round(psnr(rec.full, target).mean().item(), 3),
                    "psnr_coarse": round(psnr(rec.coarse, target[:coarse_count]).mean().item(), 3)
                    if coarse_count
                    else None,
                    "images_per_s": round(window_images / max(now - window_start, 1e-9), 2),
                    "lr": lr,
                    "minutes": round(budget.elapsed_minutes(), 3),
                }
            log.write(record)
            if progress:
                progress(record)
            window_start, window_images = now, 0
        if time.monotonic() - last_save > cfg.ckpt_every_minutes * 60:
            save()
            last_save = time.monotonic()
    save()
    log.write({"event": "end", "step": step, "samples": position, "minutes": round(budget.elapsed_minutes(), 3)})
    return last_path


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_tokenizer(
    model: VQTokenizer, n_scenes: int = 1000, split: str = "heldout", seed: int = 0, batch_size: int = 32
) -> dict[str, float]:
    """Mean PSNR (full and coarse-only) and codebook usage per scale on `n_scenes` world scenes.

    Usage is the fraction of a scale's vocabulary that occurs at least once: a
    low figure means the generator would be trained on a codebook it mostly
    never sees, which wastes its output layer and hints at a collapsed encoder.
    """
    from imgen.world.dataset import WorldStream

    was_training = model.training
    model.eval()
    stream = iter(WorldStream(seed=seed, split=split, size=model.config.image_size, limit=n_scenes))
    seen_c = torch.zeros(model.coarse_vocab, dtype=torch.bool)
    seen_d = torch.zeros(model.detail_vocab, dtype=torch.bool)
    psnr_full, psnr_coarse, done = [], [], 0
    while done < n_scenes:
        chunk = [item["image"] for _, item in zip(range(min(batch_size, n_scenes - done)), stream, strict=False)]
        if not chunk:
            break
        images = torch.stack(chunk)  # (B, 3, H, W) uint8
        target = to_unit(images)
        grids = model.encode(images)
        seen_c[grids.coarse.flatten()] = True
        seen_d[grids.detail.flatten()] = True
        psnr_full.append(psnr(model.decode(grids.coarse, grids.detail), target))
        psnr_coarse.append(psnr(model.decode(grids.coarse), target))
        done += len(chunk)
    model.train(was_training)
    return {
        "n_scenes": done,
        "psnr_full": round(torch.cat(psnr_full).mean().item(), 3),
        "psnr_coarse": round(torch.cat(psnr_coarse).mean().item(), 3),
        "coarse_usage": round(seen_c.float().mean().item(), 4),
        "detail_usage": round(seen_d.float().mean().item(), 4),
    }
