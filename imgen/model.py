"""The generator: one decoder-only transformer over [prompt][coarse grid][detail grid].

Why one model with a structured attention mask rather than two models: the
coarse phase (parallel, MaskGIT-style) and the detail phase (row-major,
autoregressive) share everything they know about the prompt and the layout, and
a single set of weights halves what a CPU must train. The training sequence is

    [text T] [coarse, partly masked C] [coarse, clean C] [detail D]

with this attention pattern (row attends to column):

    text            -> text                        (bidirectional prompt encoder)
    masked coarse   -> text, masked coarse          (bidirectional: predict masked cells)
    clean coarse    -> text, clean coarse           (context for the detail phase)
    detail j        -> text, clean coarse, detail <= j   (causal, row-major)

The clean copy of the coarse grid exists so that the detail phase is trained on
exactly what it sees when sampling, a complete coarse grid, while the masked
copy learns to fill grids from any mask ratio. Each detail input is the
previous detail token plus the embedding of the coarse cell that covers the
current position, a cheap hint that makes small models follow the layout.

A generator trained on restyle pairs (`GPTConfig.reference_input`) adds to
each masked-coarse input the embedding of a reference image's token at that
cell, or of [MASK] where it is given none: the same scene in another style,
so the coarse phase learns to keep what is where and take the look from the
prompt. With `GPTConfig.detail_reference_input` each detail input likewise
adds the reference's detail token at the position it predicts ([BOS] for
none): which sticker a blob is lives in the detail grid, so the coarse
reference alone keeps where the blobs are and loses what they are. Both
embeddings start at zero, so a generator grown to have them
(`imgen.growth.add_reference_input`) computes what it did before.

Positions are learned per segment, never absolute sequence indices, so keys and
values depend only on (segment, position, token): the sampler reuses them from
a preallocated KV cache (`KVCache`) without any re-indexing.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    """Sizes of the generator. `coarse_vocab` / `detail_vocab` come from the image tokenizer."""

    text_vocab: int
    coarse_vocab: int
    detail_vocab: int
    text_len: int = 48
    coarse_grid: int = 8
    detail_grid: int = 16
    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 8
    mlp_ratio: float = 4.0
    reference_input: bool = False  # coarse cells also see a reference grid (restyle), `Generator.reference_embed`
    detail_reference_input: bool = False  # detail positions also see one, `Generator.detail_reference_embed`

    @property
    def coarse_len(self) -> int:
        return self.coarse_grid * self.coarse_grid

    @property
    def detail_len(self) -> int:
        return self.detail_grid * self.detail_grid

    @property
    def mask_id(self) -> int:
        """The coarse "unknown" token: one past the tokenizer's coarse ids."""
        return self.coarse_vocab

    @property
    def bos_id(self) -> int:
        """The detail start token: one past the tokenizer's detail ids."""
        return self.detail_vocab

    def to_json(self) -> str:
        """The fields as JSON; the reference inputs only where set, so a plain generator's header is what an
        imgen from before those fields reads (it refuses unknown fields)."""
        fields = asdict(self)
        for flag in ("reference_input", "detail_reference_input"):
            if not fields[flag]:
                del fields[flag]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GPTConfig:
        return cls(**json.loads(text))


def covering_cells(config: GPTConfig) -> torch.Tensor:
    """(D,) the coarse cell that covers each detail position (row-major on both grids)."""
    ratio = config.detail_grid // config.coarse_grid
    rows = torch.arange(config.detail_grid).repeat_interleave(config.detail_grid) // ratio
    cols = torch.arange(config.detail_grid).repeat(config.detail_grid) // ratio
    return rows * config.coarse_grid + cols


GPT_SIZES: dict[str, dict] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4},
    "small": {"d_model": 192, "n_layers": 6, "n_heads": 6},  # the bundled size: ~25 coarse samples/s on 2 cores
    "base": {"d_model": 256, "n_layers": 8, "n_heads": 8},
    "large": {"d_model": 384, "n_layers": 10, "n_heads": 8},
}


@dataclass
class KVCache:
    """Preallocated keys and values for every layer: (layers, B, heads, max_len, head_dim)."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0
    extra: dict = field(default_factory=dict)
    write_at: torch.Tensor | None = None  # absolute slots of the next write, when not appending (parallel decoding)
    read_to: int = 0  # with write_at: attend over slots [0, read_to) only (the rest is not written yet)

    def first_rows(self, count: int) -> KVCache:
        """The same cache seen through its first `count` batch rows (a view: writes land in this cache)."""
        extra = {k: v[:count] if isinstance(v, torch.Tensor) else v for k, v in self.extra.items()}
        return KVCache(self.keys[:, :count], self.values[:, :count], self.length, extra)

    @classmethod
    def empty(cls, config: GPTConfig, batch: int, max_len: int, dtype: torch.dtype, device: torch.device) -> KVCache:
        head_dim = config.d_model // config.n_heads
        shape = (config.n_layers, batch, config.n_heads, max_len, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v as three plain ops; `mask` is None, bool (True = may attend) or additive.

    Why not `F.scaled_dot_product_attention` when training: on CPU its flash
    kernel's backward is slow for this model's small heads (head dim 32, a few
    hundred positions). `benchmarks.train_speed` timed a generator training
    step 1.43x faster with these ops, whose backward is a few batched matrix
    products, in one run on a 2-core avx512_bf16 CPU. Under bf16 autocast the
    scores and the softmax's output are bf16, as in common eager attention.
    Sampling keeps the fused kernel: without a backward it is as fast here.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class Attention(nn.Module):
    """Multi-head self-attention that can append to a KV cache."""

    explicit_when_training = True  # see `explicit_attention`; `benchmarks.train_speed` times both

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self,
        x: torch.Tensor,  # (B, S, C)
        mask: torch.Tensor | None,  # (S, S_total) bool, True = may attend
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, S, C = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, S, hd)
        if cache is not None and cache.write_at is not None:  # scattered slots; `mask` spans slots [0, read_to)
            cache.keys[layer, :, :, cache.write_at] = k
            cache.values[layer, :, :, cache.write_at] = v
            k, v = cache.keys[layer, :, :, : cache.read_to], cache.values[layer, :, :, : cache.read_to]
        elif cache is not None:
            start = cache.length
            cache.keys[layer, :, :, start : start + S] = k
            cache.values[layer, :, :, start : start + S] = v
            k = cache.keys[layer, :, :, : start + S]
            v = cache.values[layer, :, :, : start + S]
        if self.training and self.explicit_when_training:
            y = explicit_attention(q, k, v, mask)  # (B, H, S, hd)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, S, C))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = int(config.d_model * config.mlp_ratio)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, hidden), nn.GELU(), nn.Linear(hidden, config.d_model))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask, cache, layer)
        return x + self.mlp(self.norm2(x))


class Generator(nn.Module):
    """The two-phase image-token transformer (see the module docstring)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.text_embed = nn.Embedding(config.text_vocab, d)
        self.coarse_embed = nn.Embedding(config.coarse_vocab + 1, d)  # + [MASK]
        self.detail_embed = nn.Embedding(config.detail_vocab + 1, d)  # + [BOS]
        self.text_pos = nn.Parameter(torch.zeros(config.text_len, d))
        self.coarse_pos = nn.Parameter(torch.zeros(config.coarse_len, d))
        self.detail_pos = nn.Parameter(torch.zeros(config.detail_len, d))
        self.segment = nn.Parameter(torch.zeros(4, d))  # text, masked coarse, clean coarse, detail
        if config.reference_input:  # the reference's token at each coarse cell, or [MASK]: none given there
            self.reference_embed = nn.Embedding(config.coarse_vocab + 1, d)
        if config.detail_reference_input:  # the reference's detail token at each detail position, or [BOS]: none
            self.detail_reference_embed = nn.Embedding(config.detail_vocab + 1, d)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(d)
        self.coarse_head = nn.Linear(d, config.coarse_vocab)
        self.detail_head = nn.Linear(d, config.detail_vocab)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith(("_pos", "segment")):
                nn.init.normal_(param, std=0.02)
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * config.n_layers))  # GPT-2 residual scaling
        if config.reference_input:  # zero: a reference changes nothing until training teaches it to
            nn.init.zeros_(self.reference_embed.weight)
        if config.detail_reference_input:
            nn.init.zeros_(self.detail_reference_embed.weight)
        self.register_buffer("cover", covering_cells(config), persistent=False)
        self.register_buffer("train_mask", self._training_mask(), persistent=False)
        self.register_buffer(
            "coarse_mask", self._training_mask()[: self._coarse_end, : self._coarse_end].clone(), False
        )
        T, C = config.text_len, config.coarse_len
        keep = torch.cat([torch.arange(T), torch.arange(T + C, T + 2 * C + config.detail_len)])
        self.register_buffer("detail_mask", self.train_mask[keep][:, keep].clone(), persistent=False)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def _coarse_end(self) -> int:
        return self.config.text_len + self.config.coarse_len

    def _training_mask(self) -> torch.Tensor:
        """The (S, S) boolean attention pattern of the training sequence."""
        c = self.config
        T, C, D = c.text_len, c.coarse_len, c.detail_len
        S = T + 2 * C + D
        allowed = torch.zeros(S, S, dtype=torch.bool)
        masked, clean, detail = slice(T, T + C), slice(T + C, T + 2 * C), slice(T + 2 * C, S)
        allowed[:, :T] = True  # everything sees the prompt
        allowed[masked, masked] = True
        allowed[clean, clean] = True
        allowed[detail, clean] = True
        allowed[detail, detail] = torch.tril(torch.ones(D, D, dtype=torch.bool))
        return allowed

    # --- embeddings of each segment -------------------------------------------------

    def embed_text(self, text_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.text_embed(text_ids) + self.text_pos + self.segment[0]

    def embed_coarse(
        self, coarse_ids: torch.Tensor, clean: bool, reference: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, 64) -> (B, 64, C)
        """Coarse inputs; the masked segment of a reference-input model also sees `reference` (B, 64).

        `reference` holds a reference image's coarse ids, [MASK] where a cell
        has none (None: no cell has one). Only the masked segment (the one the
        coarse phase predicts) sees it; the clean grid the detail phase reads
        is the image's own.
        """
        x = self.coarse_embed(coarse_ids) + self.coarse_pos + self.segment[2 if clean else 1]
        if reference is not None and not self.config.reference_input:
            raise ValueError("this generator has no reference input (it was not trained on restyle pairs)")
        if clean or not self.config.reference_input:
            return x
        if reference is None:  # no cell has one: the [MASK] row everywhere, without a lookup per cell
            return x + self.reference_embed.weight[self.config.mask_id]
        return x + self.reference_embed(reference)

    def embed_detail(
        self,
        previous: torch.Tensor,
        coarse_ids: torch.Tensor,
        positions: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Detail inputs: previous detail token + covering coarse cell + position. previous: (B, n).

        A detail-reference model (`GPTConfig.detail_reference_input`) also adds
        the embedding of `reference[:, position]`, a reference image's detail
        token at the position each input predicts, or [BOS] where it has none
        (`reference` (B, D) is the whole grid; None: no position has one).
        """
        covering = coarse_ids[:, self.cover[positions]]  # (B, n)
        x = self.detail_embed(previous) + self.coarse_embed(covering) + self.detail_pos[positions] + self.segment[3]
        if reference is not None and not self.config.detail_reference_input:
            raise ValueError("this generator has no detail reference input (it was not trained on restyle pairs)")
        if not self.config.detail_reference_input:
            return x
        if reference is None:
            return x + self.detail_reference_embed.weight[self.config.bos_id]
        return x + self.detail_reference_embed(reference[:, positions])

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None) -> torch.Tensor:
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        if cache is not None and cache.write_at is None:
            cache.length += x.shape[1]
        return self.norm(x)

    # --- training ---------------------------------------------------------------------

    def forward(
        self,
        text_ids: torch.Tensor,  # (B, T)
        coarse_in: torch.Tensor,  # (B, C) coarse ids with some cells = mask_id
        coarse_ids: torch.Tensor,  # (B, C) clean coarse ids
        detail_ids: torch.Tensor,  # (B, D) target detail ids
        reference: torch.Tensor | None = None,  # (B, C) a reference grid (`embed_coarse`)
        detail_reference: torch.Tensor | None = None,  # (B, D) its detail grid (`embed_detail`)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits for every coarse cell (B, C, Vc) and every detail token (B, D, Vd)."""
        c = self.config
        B = text_ids.shape[0]
        bos = torch.full((B, 1), c.bos_id, dtype=detail_ids.dtype, device=detail_ids.device)
        previous = torch.cat([bos, detail_ids[:, :-1]], dim=1)  # teacher forcing, shifted right
        positions = torch.arange(c.detail_len, device=detail_ids.device)
        x = torch.cat(
            [
                self.embed_text(text_ids),
                self.embed_coarse(coarse_in, clean=False, reference=reference),
                self.embed_coarse(coarse_ids, clean=True),
                self.embed_detail(previous, coarse_ids, positions, detail_reference),
            ],
            dim=1,
        )  # (B, S, C)
        h = self._run(x, self.train_mask)
        T, C = c.text_len, c.coarse_len
        return self.coarse_head(h[:, T : T + C]), self.detail_head(h[:, T + 2 * C :])

    def detail_forward(
        self,
        text_ids: torch.Tensor,  # (B, T)
        coarse_ids: torch.Tensor,  # (B, C) clean coarse ids
        detail_ids: torch.Tensor,  # (B, D) target detail ids
        reference: torch.Tensor | None = None,  # (B, D) a reference detail grid (`embed_detail`)
    ) -> torch.Tensor:
        """Detail logits (B, D, Vd) from [text][clean coarse][detail] alone.

        The masked-coarse segment is invisible to the detail rows, so dropping it
        gives exactly the detail logits of `forward` at 85% of the sequence length.
        Training can then give the cheap coarse problem (`coarse_logits`) a larger
        batch than the long detail problem.
        """
        c = self.config
        B = text_ids.shape[0]
        bos = torch.full((B, 1), c.bos_id, dtype=detail_ids.dtype, device=detail_ids.device)
        previous = torch.cat([bos, detail_ids[:, :-1]], dim=1)
        positions = torch.arange(c.detail_len, device=detail_ids.device)
        x = torch.cat(
            [
                self.embed_text(text_ids),
                self.embed_coarse(coarse_ids, clean=True),
                self.embed_detail(previous, coarse_ids, positions, reference),
            ],
            dim=1,
        )
        h = self._run(x, self.detail_mask)
        return self.detail_head(h[:, c.text_len + c.coarse_len :])

    # --- sampling steps (used by imgen.sampler) -----------------------------------------
    #
    # Each step takes `guidance`: None for plain logits, or a classifier-free
    # guidance scale when the batch is [prompt rows; empty-prompt rows]. The
    # heads are affine, so guiding the final hidden states and applying the head
    # once gives exactly the guided logits, uncond + g * (cond - uncond), at half
    # the head's cost (the detail head is the largest matrix of a decode step).

    @staticmethod
    def _guided(head: nn.Linear, h: torch.Tensor, guidance: float | None) -> torch.Tensor:
        if guidance is not None:
            cond, uncond = h.chunk(2)
            h = cond if guidance == 1.0 else uncond + guidance * (cond - uncond)
        return head(h)

    def coarse_logits(
        self, text_ids: torch.Tensor, coarse_in: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Phase 1: logits for every coarse cell given the prompt and a partly masked grid. (B, C, Vc)"""
        x = torch.cat([self.embed_text(text_ids), self.embed_coarse(coarse_in, False, reference)], dim=1)
        h = self._run(x, self.coarse_mask)
        return self.coarse_head(h[:, self.config.text_len :])

    def encode_prompt(self, text_ids: torch.Tensor, cache: KVCache) -> None:
        """Cache the prompt's keys and values in slots [0, T).

        Prompt rows attend only to the prompt, so these are the same in every
        coarse step and in the detail prefill: computed once per image instead
        of once per forward pass.
        """
        cache.length = 0
        self._run(self.embed_text(text_ids), None, cache)

    def coarse_step(
        self,
        coarse_in: torch.Tensor,
        cache: KVCache,
        guidance: float | None = None,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`coarse_logits` over a prompt already in `cache` (B, C) -> (B, C, Vc).

        The grid's keys and values go to the scratch slots after the prompt and
        are overwritten by the next step (the cache is left at the prompt's length).
        """
        cache.length = self.config.text_len
        h = self._run(self.embed_coarse(coarse_in, False, reference), None, cache)  # coarse rows see everything
        cache.length = self.config.text_len
        return self._guided(self.coarse_head, h, guidance)

    def prefill(self, text_ids: torch.Tensor, coarse_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Phase 2 start: cache prompt + clean coarse grid, return logits of detail token 0. (B, Vd)"""
        self.encode_prompt(text_ids, cache)
        return self.prefill_detail(coarse_ids, cache)

    def prefill_detail(
        self,
        coarse_ids: torch.Tensor,
        cache: KVCache,
        guidance: float | None = None,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`prefill` for a prompt already in `cache` (`encode_prompt`): cache the clean coarse grid. (B, Vd)

        `reference` (B, D), a reference detail grid (`embed_detail`), stays in
        the cache for the decode steps.
        """
        c = self.config
        B = coarse_ids.shape[0]
        bos = torch.full((B, 1), c.bos_id, dtype=torch.long, device=coarse_ids.device)
        zero = torch.zeros(1, dtype=torch.long, device=coarse_ids.device)
        first = self.embed_detail(bos, coarse_ids, zero, reference)
        x = torch.cat([self.embed_coarse(coarse_ids, clean=True), first], dim=1)
        # Coarse rows see prompt + coarse, the first detail row sees all.
        mask = torch.ones(c.coarse_len + 1, c.text_len + c.coarse_len + 1, dtype=torch.bool, device=x.device)
        mask[: c.coarse_len, -1] = False
        cache.length = c.text_len
        h = self._run(x, mask, cache)
        cache.extra["coarse_ids"] = coarse_ids
        cache.extra["detail_reference"] = reference
        return self._guided(self.detail_head, h[:, -1], guidance)

    def decode_one(
        self, token: torch.Tensor, position: int, cache: KVCache, guidance: float | None = None
    ) -> torch.Tensor:
        """Feed detail token `position - 1` (B,) at detail `position`; return logits for that position. (B, Vd)"""
        positions = torch.tensor([position], device=token.device)
        x = self.embed_detail(token[:, None], cache.extra["coarse_ids"], positions, cache.extra.get("detail_reference"))
        h = self._run(x, None, cache)
        return self._guided(self.detail_head, h[:, -1], guidance)

    def decode_slots(
        self,
        previous: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        allowed: torch.Tensor,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Feed several detail positions at once (B, n) -> their logits (B, n, Vd); for parallel row decoding.

        `previous[:, i]` is the input token of detail position `positions[i]`
        (the token before it, or BOS where that one is not known yet), and
        `allowed` (n, S) says which of the first S cache slots each of them may
        attend to (S covers every slot written so far, at least up to the last
        of `positions`). Keys and values go to the positions' own slots, so
        later steps see them.
        """
        x = self.embed_detail(previous, cache.extra["coarse_ids"], positions, cache.extra.get("detail_reference"))
        cache.write_at = self.config.text_len + self.config.coarse_len + positions
        cache.read_to = allowed.shape[1]
        # one additive mask for every layer (a boolean one is converted again in each)
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill_(~allowed, float("-inf"))
        try:
            h = self._run(x, mask, cache)
        finally:
            cache.write_at = None
        return self._guided(self.detail_head, h, guidance)

    def sequence_capacity(self) -> int:
        c = self.config
        return c.text_len + c.coarse_len + c.detail_len
