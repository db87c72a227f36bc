"""The VQ image tokenizer: a convolutional autoencoder with a two-scale FSQ bottleneck.

    image (B, 3, 128, 128)
      -> pixel-unshuffle x4 + conv              (B, C0, 32, 32)    stem: no convolution at 128x128
      -> residual blocks, space-to-depth + 1x1, blocks (B, C1, 16, 16)   encoder features f
    coarse:  1x1 proj -> area-pool to 8x8 -> FSQ -> coarse ids (B, 8, 8)
             -> 1x1 proj up -> bilinear to 16x16 -> conv = f_c
    detail:  r = f - f_c -> 1x1 proj -> FSQ -> detail ids (B, 16, 16) -> 1x1 proj up = f_d
    decoder: f_c + f_d (full image) or f_c alone (preview)
      -> blocks, 1x1 + depth-to-space, blocks -> conv -> pixel-shuffle x4 -> (B, 3, 128, 128)

Why two scales: the generator first writes the 8x8 coarse grid in a few parallel
steps (layout and colours) and then the 16x16 detail grid row by row. Making the
detail grid a residual on top of the coarse one (as in VAR's next-scale
prediction) means detail tokens only carry what the coarse grid could not, and
training the decoder on the coarse-only input too makes the coarse grid alone
decode to a faithful preview.

Why this shape on a CPU: every convolution runs at 32x32 or below; the 4x
pixel-unshuffle stem and pixel-shuffle head are reshapes, so the full-resolution
cost is one 3x3 convolution's worth at the 32x32 grid. Residual branches end in a
zero-initialised convolution (each block starts as the identity, so the net
trains without normalisation layers, which are slow on CPU and shift statistics
between the train and eval batch sizes). Activations use channels_last, which
oneDNN convolutions prefer.

In eval mode the model is deterministic: no dropout, no sampling, rounding only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from imgen.tokenizer.config import VQConfig
from imgen.tokenizer.fsq import FSQ


class TokenGrids(NamedTuple):
    """Token ids of a batch of images: `coarse` (B, Gc, Gc) and `detail` (B, Gd, Gd), both int64."""

    coarse: torch.Tensor
    detail: torch.Tensor


class Reconstruction(NamedTuple):
    """What one training forward pass produces (images unclamped, on the [0, 1] scale)."""

    full: torch.Tensor  # (B, 3, H, W) from coarse + detail
    coarse: torch.Tensor  # (n, 3, H, W) from the coarse grid alone, for the first n images
    coarse_ids: torch.Tensor  # (B, Gc, Gc)
    detail_ids: torch.Tensor  # (B, Gd, Gd)


class ResBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))), the last convolution zero-initialised so the block starts as identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Downsample(nn.Module):
    """Halve the grid: space-to-depth (pixel-unshuffle 2) then a 1x1 projection: 4/9 of a 3x3 stride-2 conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(4 * c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.pixel_unshuffle(x, 2))  # (B, C_out, H/2, W/2)


class Upsample(nn.Module):
    """Double the grid: a 1x1 projection to 4 sub-pixels then depth-to-space (pixel-shuffle 2).

    A ninth of the cost of nearest-upsampling followed by a 3x3 convolution at
    the larger grid. Initialised ICNR-style (the four sub-pixels share weights),
    so it starts as nearest-neighbour upsampling and shows no checkerboard.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, 4 * c_out, 1)
        with torch.no_grad():
            base = nn.Conv2d(c_in, c_out, 1)
            self.proj.weight.copy_(base.weight.repeat_interleave(4, dim=0))
            self.proj.bias.copy_(base.bias.repeat_interleave(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.proj(x), 2)  # (B, C_out, 2H, 2W)


class Encoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> features f (B, C_last, Gd, Gd)."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        ch = config.channels
        self.patch = config.patch
        self.stem = nn.Conv2d(3 * config.patch**2, ch[0], 3, padding=1)
        stages: list[nn.Module] = []
        for i, (width, blocks) in enumerate(zip(ch, config.encoder_blocks, strict=True)):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(Downsample(ch[i - 1], width))
            layers.extend(ResBlock(width) for _ in range(blocks))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, self.patch)  # (B, 3 p^2, H/p, W/p)
        return self.stages(self.stem(x))  # (B, C_last, Gd, Gd)


class Decoder(nn.Module):
    """Features (B, C_last, Gd, Gd) -> image (B, 3, H, W) on the [-1, 1] scale (unclamped)."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        ch = config.channels
        self.patch = config.patch
        stages: list[nn.Module] = []
        for i in reversed(range(len(ch))):
            layers: list[nn.Module] = [ResBlock(ch[i]) for _ in range(config.decoder_blocks[i])]
            if i > 0:
                layers.append(Upsample(ch[i], ch[i - 1]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(ch[0], 3 * config.patch**2, 3, padding=1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = self.head(F.silu(self.stages(f)))  # (B, 3 p^2, H/p, W/p)
        return F.pixel_shuffle(x, self.patch)  # (B, 3, H, W)


class TwoScaleQuantizer(nn.Module):
    """Coarse FSQ grid on area-pooled features, detail FSQ grid on the residual the coarse grid leaves."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        width = config.channels[-1]
        self.coarse_fsq, self.detail_fsq = FSQ(config.coarse_levels), FSQ(config.detail_levels)
        self.pool = config.detail_grid // config.coarse_grid
        self.coarse_in = nn.Conv2d(width, self.coarse_fsq.dim, 1)
        self.coarse_up = nn.Conv2d(self.coarse_fsq.dim, width, 1)
        self.coarse_mix = nn.Conv2d(width, width, 3, padding=1)  # smooths the upsampled coarse cells
        self.detail_in = nn.Conv2d(width, self.detail_fsq.dim, 1)
        self.detail_up = nn.Conv2d(self.detail_fsq.dim, width, 1)

    @staticmethod
    def _fsq(fsq: FSQ, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channels-first (B, d, h, w) -> codes (B, d, h, w), ids (B, h, w)."""
        codes, ids = fsq.quantize(z.permute(0, 2, 3, 1))
        return codes.permute(0, 3, 1, 2), ids

    def coarse_features(self, codes: torch.Tensor) -> torch.Tensor:
        """Coarse codes (B, dc, Gc, Gc) -> f_c (B, C, Gd, Gd)."""
        up = self.coarse_up(codes.to(self.coarse_up.weight.dtype))
        up = F.interpolate(up, scale_factor=self.pool, mode="bilinear", align_corners=False)
        return self.coarse_mix(up)

    def detail_features(self, codes: torch.Tensor) -> torch.Tensor:
        """Detail codes (B, dd, Gd, Gd) -> f_d (B, C, Gd, Gd)."""
        return self.detail_up(codes.to(self.detail_up.weight.dtype))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """f (B, C, Gd, Gd) -> (f_c, f_d, coarse ids (B, Gc, Gc), detail ids (B, Gd, Gd)).

        Runs in fp32 whatever the autocast state: the ids must be those `encode`
        gives in eval, and under bf16 the residual `f - f_c` alone loses most of
        its mantissa, so training would see ids no user of the tokens ever does.
        The layers here are 1x1 convolutions and one 3x3 at the detail grid: cheap.
        """
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.to(self.coarse_in.weight.dtype)  # fp32 weights (training, eval): fp32
            z_c = F.avg_pool2d(self.coarse_in(f), self.pool)  # (B, dc, Gc, Gc); 1x1 proj commutes with pooling
            codes_c, coarse_ids = self._fsq(self.coarse_fsq, z_c)
            f_c = self.coarse_features(codes_c)  # (B, C, Gd, Gd)
            codes_d, detail_ids = self._fsq(self.detail_fsq, self.detail_in(f - f_c))
            return f_c, self.detail_features(codes_d), coarse_ids, detail_ids


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] images, (B, 3, H, W) or (3, H, W) -> float (B, 3, H, W) in [-1, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float() / 255.0
    elif images.is_floating_point():
        x = images.float()
    else:  # an int64 tensor of 0-255 values would be read as 255 times too bright, without a word
        raise TypeError(f"images must be uint8 on [0, 255] or float on [0, 1], not {images.dtype}")
    return (x * 2 - 1).contiguous(memory_format=torch.channels_last)


class VQTokenizer(nn.Module):
    """Images <-> (coarse, detail) token grids. See the module docstring for the architecture."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = TwoScaleQuantizer(config)
        self.decoder = Decoder(config)
        self.to(memory_format=torch.channels_last)

    @property
    def coarse_vocab(self) -> int:
        return self.quantizer.coarse_fsq.vocab_size

    @property
    def detail_vocab(self) -> int:
        return self.quantizer.detail_fsq.vocab_size

    def _check_size(self, x: torch.Tensor) -> None:
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            raise ValueError(f"this tokenizer takes {size}x{size} images, got {x.shape[-1]}x{x.shape[-2]}")

    def autoencode(self, images: torch.Tensor, coarse_count: int | None = None) -> Reconstruction:
        """Training pass: full reconstruction of every image, coarse-only of the first `coarse_count`.

        Both reconstructions go through the decoder as one batch (faster than two
        calls on a CPU). Decoding only part of the batch coarse-only trades a
        little preview quality for throughput.
        """
        x = to_model_input(images)
        self._check_size(x)
        f_c, f_d, coarse_ids, detail_ids = self.quantizer(self.encoder(x))
        n = x.shape[0] if coarse_count is None else max(0, min(coarse_count, x.shape[0]))
        decoded = self.decoder(torch.cat([f_c + f_d, f_c[:n]]))  # (B + n, 3, H, W)
        out = decoded.float() * 0.5 + 0.5
        return Reconstruction(out[: x.shape[0]], out[x.shape[0] :], coarse_ids, detail_ids)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images -> (full reconstruction, coarse-only reconstruction), each (B, 3, H, W), unclamped [0, 1] scale."""
        rec = self.autoencode(images)
        return rec.full, rec.coarse

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> TokenGrids:
        """uint8 or [0, 1] float images (B, 3, H, W) -> `TokenGrids` of int64 ids."""
        x = to_model_input(images)
        self._check_size(x)
        _, _, coarse_ids, detail_ids = self.quantizer(self.encoder(x))
        return TokenGrids(coarse_ids, detail_ids)

    @torch.no_grad()
    def decode(self, coarse: torch.Tensor, detail: torch.Tensor | None = None) -> torch.Tensor:
        """Token grids -> float images (B, 3, H, W) in [0, 1]; `detail=None` decodes the coarse preview."""
        gc, gd = self.config.coarse_grid, self.config.detail_grid
        if coarse.dim() != 3 or coarse.shape[1:] != (gc, gc):
            raise ValueError(f"coarse ids must have shape (B, {gc}, {gc}), got {tuple(coarse.shape)}")
        q = self.quantizer
        codes_c = q.coarse_fsq.ids_to_codes(coarse).permute(0, 3, 1, 2)  # (B, dc, Gc, Gc)
        features = q.coarse_features(codes_c.contiguous(memory_format=torch.channels_last))
        if detail is not None:
            if detail.shape != (coarse.shape[0], gd, gd):
                raise ValueError(
                    f"detail ids must have shape ({coarse.shape[0]}, {gd}, {gd}), got {tuple(detail.shape)}"
                )
            codes_d = q.detail_fsq.ids_to_codes(detail).permute(0, 3, 1, 2)  # (B, dd, Gd, Gd)
            features = features + q.detail_features(codes_d.contiguous(memory_format=torch.channels_last))
        return (self.decoder(features).float() * 0.5 + 0.5).clamp(0, 1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
