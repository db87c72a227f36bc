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

With `text_weight` W > 1 (world scenes only) every term weighs the pixels of
the scene's text blocks W times (`imgen.world.text_regions`), still divided
by the number of pixels, so a scene without text is trained as before.

L1 keeps flat colours exact, MSE is what PSNR measures, and the edge term (L1
between finite-difference gradients) penalises blurred strokes directly: a
blurred glyph edge costs little in L1/MSE because it covers few pixels, but its
gradient error is large. Text survival is the hard part of this tokenizer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from imgen.checkpoints import CheckpointError, save_tokenizer
from imgen.distributed import Rank, all_sum, any_rank, joined
from imgen.tokenizer.config import VQ_SIZES, VQConfig, vq_config
from imgen.tokenizer.growth import deepen_decoder, freeze_token_ids, parse_blocks
from imgen.tokenizer.model import VQTokenizer
from imgen.train_config import ConfigError, check_limits
from imgen.training import (
    MetricsLog,
    NonFiniteGuard,
    StopRequest,
    TimeBudget,
    TrainingInterrupted,
    autocast_context,
    cosine_lr,
    load_training_state,
    read_training_metadata,
    resume_changes,
    save_training_state,
)

LAST_FILE, STATE_FILE, METRICS_FILE = "last.safetensors", "state.safetensors", "metrics.jsonl"


@dataclass
class TokenizerTrainConfig:
    """Options of `imgen train tokenizer`; every field is a CLI flag or a TOML key."""

    size: str = "small"
    data: str = "world"  # "world" or a folder of PNG/JPEG/WebP images
    init: str = ""  # start from these weights: a tokenizer file, or a checkpoint name / folder
    decoder_only: bool = False  # train the decoder alone: token ids stay the same (imgen.tokenizer.growth)
    decoder_blocks: str = ""  # with `init`: grow the decoder to these blocks per stage, e.g. "2,4"; "": keep
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
    text_weight: float = 1.0  # weight of the pixels of text blocks in every loss term (world scenes only)
    log_every: int = 20
    ckpt_every_minutes: float = 5.0
    threads: int = 0  # torch threads; 0 keeps torch's default

    LIMITS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "batch_size": (1, None), "lr": (0.0, None), "warmup_steps": (0, None), "weight_decay": (0.0, None),
        "max_steps": (0, None), "max_minutes": (0.0, None), "coarse_weight": (0.0, None),
        "coarse_fraction": (0.0, 1.0), "edge_weight": (0.0, None), "text_weight": (1.0, None), "log_every": (1, None),
        "ckpt_every_minutes": (0.0, None), "threads": (0, None),
    }  # fmt: skip

    def __post_init__(self) -> None:
        check_limits(self, self.LIMITS)
        if self.size not in VQ_SIZES:
            raise ConfigError(f"unknown size {self.size!r}; choose one of {', '.join(VQ_SIZES)}")

    def check_can_start(self) -> None:
        """`ConfigError` naming what a run with these options lacks (`train_tokenizer` and the CLI both ask)."""
        if self.data != "world" and not Path(self.data).is_dir():
            raise ConfigError(f"{self.data}: not a folder (use 'world' for the procedural world)")
        if self.decoder_blocks and not self.init:
            raise ConfigError("--decoder-blocks grows a trained tokenizer: give it with --init")
        if self.text_weight != 1.0 and self.data != "world":
            raise ConfigError("--text-weight needs the world's scenes, whose text blocks are known (--data world)")
        if self.decoder_only and not self.init:
            raise ConfigError("--decoder-only keeps a trained tokenizer's token ids: give it with --init")


# ---------------------------------------------------------------- data


def open_images(cfg: TokenizerTrainConfig, size: int, log: Callable[[dict], None]):
    """The example source: world scenes, or a user's folder (captions not needed; problems logged once)."""
    if cfg.data == "world":
        from imgen.world.dataset import WorldExamples  # lazy: the renderer is heavy and only needed here

        return WorldExamples(cfg.seed, size)
    from imgen.folder_data import scan_folder
    from imgen.folder_examples import FolderExamples

    scan = scan_folder(cfg.data)
    log({"event": "data", "folder": str(scan.root), "images": len(scan.items), "problems": scan.problems()})
    return FolderExamples(scan.items, cfg.seed, size)


def coarse_rows(batch: int, fraction: float) -> torch.Tensor:
    """Global rows also decoded from the coarse grid alone: evenly spread, so every process gets its share."""
    # row i is coarse where floor((i + 1) * fraction) steps up: floor(batch * fraction) rows, evenly spread
    # (a stride of round(1 / fraction) made 0.75 every row and 0.6 half of them)
    counts = torch.floor(torch.arange(batch + 1, dtype=torch.float64) * fraction + 1e-9)
    return counts[1:] > counts[:-1]


class TokenizerObjective(torch.nn.Module):
    """The training pass as one `forward` (what DDP wraps): (full, coarse-only) reconstructions."""

    def __init__(self, model: VQTokenizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, coarse_count: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.model.autoencode(images, coarse_count)
        return rec.full, rec.coarse


# ---------------------------------------------------------------- loss and metrics


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite differences along width and height: (B, C, H, W-1), (B, C, H-1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(
    output: torch.Tensor, target: torch.Tensor, edge_weight: float, pixel_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """L1 + MSE + edge_weight * gradient L1, in fp32 on the [0, 1] scale.

    `pixel_weight` (B, 1, H, W) weighs each pixel's terms (a gradient takes the
    weight of the pixel it ends on); the sum is still divided by the number of
    terms, so weights of 1 give the plain loss.
    """
    output, target = output.float(), target.float()
    if pixel_weight is None:
        loss = F.l1_loss(output, target) + F.mse_loss(output, target)
        if edge_weight:
            (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
            loss = loss + edge_weight * 0.5 * (F.l1_loss(ox, tx) + F.l1_loss(oy, ty))
        return loss
    error = output - target
    loss = (pixel_weight * (error.abs() + error.square())).mean()
    if edge_weight:
        (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
        across, down = (ox - tx).abs() * pixel_weight[..., :, 1:], (oy - ty).abs() * pixel_weight[..., 1:, :]
        loss = loss + edge_weight * 0.5 * (across.mean() + down.mean())
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


def initial_tokenizer(cfg: TokenizerTrainConfig) -> VQTokenizer:
    """A fresh tokenizer of `cfg.size`, or the weights of `cfg.init` (a tokenizer file or a checkpoint)."""
    if not cfg.init:
        torch.manual_seed(cfg.seed)
        return VQTokenizer(vq_config(cfg.size))
    from imgen.checkpoints import load_tokenizer

    path = Path(cfg.init)
    if path.is_dir() and (path / LAST_FILE).is_file():  # a tokenizer run folder: its latest weights
        path = path / LAST_FILE
    elif path.suffix != ".safetensors":
        from imgen.api import TOKENIZER_FILE, resolve_checkpoint

        path = resolve_checkpoint(cfg.init) / TOKENIZER_FILE
    return load_tokenizer(path)


def train_tokenizer(cfg: TokenizerTrainConfig, progress: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) in `cfg.out_dir`; returns the path of `last.safetensors`.

    Under torchrun each process takes its slice of every global batch (see
    `imgen.distributed`); raises `TrainingInterrupted` after saving on Ctrl-C / SIGTERM.
    """
    with joined() as rank:
        return _train(cfg, rank, progress)


def _train(cfg: TokenizerTrainConfig, rank: Rank, progress: Callable[[dict], None] | None) -> Path:
    cfg.check_can_start()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    state_path, last_path = out / STATE_FILE, out / LAST_FILE

    def report(record: dict) -> None:
        if rank.is_main:
            log.write(record)
            if progress and "step" in record and "event" not in record:
                progress(record)
            elif progress and "changed" in record:  # a resume with a new schedule: say so, without the configs
                progress({"event": record["event"], "step": record["step"], "changed": record["changed"]})

    resuming = state_path.exists()
    changes: dict[str, list] = {}
    if resuming:
        changes = resume_changes(read_training_metadata(state_path).get("train_config"), cfg, out)
        torch.manual_seed(cfg.seed)
        model = VQTokenizer(saved_config(state_path))
    else:
        model = initial_tokenizer(cfg)
        if cfg.decoder_blocks:
            model = deepen_decoder(model, parse_blocks(cfg.decoder_blocks))
    config = model.config
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that cannot start leaves no folder behind
    log = MetricsLog(out / METRICS_FILE)
    model.to(rank.device).train()
    trained = freeze_token_ids(model) if cfg.decoder_only else list(model.parameters())
    objective = TokenizerObjective(model)
    if rank.distributed:
        objective = torch.nn.parallel.DistributedDataParallel(objective)
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step, position = load_training_state(state_path, model, optimizer) if resuming else (0, 0)

    budget = TimeBudget(cfg.max_minutes)
    source = open_images(cfg, config.image_size, report)
    shard = rank.shard(cfg.batch_size)
    extra = {"vq_config": config.to_json(), "train_config": json.dumps(asdict(cfg), sort_keys=True)}
    coarse_all = coarse_rows(cfg.batch_size, cfg.coarse_fraction if cfg.coarse_weight > 0 else 0.0)
    coarse_local = coarse_all[shard.start : shard.stop]
    # the coarse rows go first in the local batch, so one decoder call serves both reconstructions
    order = torch.cat([coarse_local.nonzero().squeeze(1), (~coarse_local).nonzero().squeeze(1)])
    n_coarse, n_coarse_all = int(coarse_local.sum()), int(coarse_all.sum())

    def save() -> None:
        if rank.is_main:
            save_tokenizer(model, last_path, {**extra, "step": str(step), "samples": str(position)})
            save_training_state(state_path, model, optimizer, step=step, samples=position, extra=extra)

    report({"event": "resume" if resuming else "start", "step": step, "samples": position,
            "parameters": model.num_parameters(), "processes": rank.world_size, **extra,
            **({"changed": changes} if changes else {})})  # fmt: skip
    last_save = window_start = time.monotonic()
    window_images = 0
    guard = NonFiniteGuard()
    with StopRequest() as stop:
        while step < cfg.max_steps and not any_rank(budget.expired() or stop.requested, rank):
            positions = range(position + shard.start, position + shard.stop)
            images = source.batch(positions)[0][order].to(rank.device)
            pixel_weight = None
            if cfg.text_weight != 1.0:
                pixel_weight = 1.0 + (cfg.text_weight - 1.0) * source.text_masks(positions)[order].to(rank.device)
            position += cfg.batch_size
            target = to_unit(images)
            lr = cosine_lr(step, cfg.max_steps, cfg.warmup_steps, cfg.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast_context(rank.device):
                full, coarse = objective(images, n_coarse)
            loss_full = reconstruction_loss(full, target, cfg.edge_weight, pixel_weight)
            loss = loss_full
            loss_coarse = torch.zeros((), device=rank.device)
            if n_coarse_all:  # a mean over this rank's coarse rows, weighted to a mean over all ranks' rows
                if n_coarse:
                    coarse_weight = None if pixel_weight is None else pixel_weight[:n_coarse]
                    loss_coarse = reconstruction_loss(coarse, target[:n_coarse], cfg.edge_weight, coarse_weight)
                loss = loss + cfg.coarse_weight * loss_coarse * (n_coarse * rank.world_size / n_coarse_all)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if guard.allows(torch.nn.utils.clip_grad_norm_(trained, 1.0)):
                optimizer.step()
            else:
                report({"event": "skipped", "step": step, "reason": "non-finite gradient", "skipped": guard.skipped})
            step += 1
            window_images += cfg.batch_size

            if step % cfg.log_every == 0 or step == cfg.max_steps:
                with torch.no_grad():
                    sums = torch.stack(
                        [
                            loss_full.detach() * len(shard),
                            loss_coarse.detach() * n_coarse,
                            psnr(full, target).sum(),
                            psnr(coarse, target[:n_coarse]).sum() if n_coarse else torch.zeros((), device=rank.device),
                        ]
                    )
                    sums = all_sum(sums.cpu(), rank).tolist()
                full_mean, coarse_mean = sums[0] / cfg.batch_size, sums[1] / max(1, n_coarse_all)
                now = time.monotonic()
                report(
                    {
                        "step": step,
                        "samples": position,
                        "loss": round(full_mean + cfg.coarse_weight * coarse_mean, 5),
                        "loss_full": round(full_mean, 5),
                        "psnr_full": round(sums[2] / cfg.batch_size, 3),
                        "psnr_coarse": round(sums[3] / n_coarse_all, 3) if n_coarse_all else None,
                        "images_per_s": round(window_images / max(now - window_start, 1e-9), 2),
                        "lr": lr,
                        "minutes": round(budget.elapsed_minutes(), 3),
                    }
                )
                window_start, window_images = now, 0
            if time.monotonic() - last_save > cfg.ckpt_every_minutes * 60:
                save()
                last_save = time.monotonic()
        save()
        report({"event": "stop" if stop.requested else "end", "step": step, "samples": position,
                "minutes": round(budget.elapsed_minutes(), 3)})  # fmt: skip
        if stop.requested:
            raise TrainingInterrupted(step, out)
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

    if n_scenes < 1:
        raise ValueError(f"n_scenes must be at least 1, not {n_scenes}")
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
