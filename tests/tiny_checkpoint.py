"""A tiny random checkpoint folder (tokenizer + generator) for tests that run the real pipeline end to end."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import torch

from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, Pipeline, save_generator
from imgen.checkpoints import load_checkpoint, save_checkpoint, save_tokenizer
from imgen.model import Generator, GPTConfig
from imgen.sampler import SamplerConfig
from imgen.text import PromptEncoder, train_text_tokenizer
from imgen.tokenizer.config import VQ_SIZES
from imgen.tokenizer.model import VQTokenizer
from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, token_id_fingerprint
from imgen.world.captions import caption
from imgen.world.sampling import random_spec


def tiny_models(captions: list[str], text_len: int, n_layers: int = 1, n_heads: int = 2):
    """A random tiny tokenizer, prompt encoder and generator (seeded): real shapes, no training."""
    torch.manual_seed(0)
    tokenizer = VQTokenizer(VQ_SIZES["tiny"]).eval()
    prompts = PromptEncoder(train_text_tokenizer(captions), max_length=text_len)
    config = GPTConfig(
        text_vocab=prompts.vocab_size,
        coarse_vocab=tokenizer.coarse_vocab,
        detail_vocab=tokenizer.detail_vocab,
        text_len=text_len,
        coarse_grid=tokenizer.config.coarse_grid,
        detail_grid=tokenizer.config.detail_grid,
        d_model=32,
        n_layers=n_layers,
        n_heads=n_heads,
    )
    return tokenizer, prompts, Generator(config).eval()


def tiny_pipeline(captions: list[str], text_len: int) -> Pipeline:
    """The tiny models as a ready `Pipeline`, for library-level tests."""
    tokenizer, prompts, generator = tiny_models(captions, text_len, n_layers=2, n_heads=4)
    return Pipeline(tokenizer, generator, prompts, "tiny", "0" * 64, SamplerConfig(coarse_steps=4))


def write_tiny_checkpoint(folder: Path) -> Path:
    """Random weights, real formats: what `imgen generate --model FOLDER` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    captions = [caption(random_spec(rng), rng) for _ in range(200)]
    tokenizer, prompts, generator = tiny_models(captions, text_len=24)
    save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
    # as training records it: the token ids the generator was trained on
    save_generator(generator, prompts, folder / GENERATOR_FILE, {TOKEN_IDS_KEY: token_id_fingerprint(tokenizer)})
    return folder


def with_generator_header(folder: Path, target: Path, change: Callable[[dict], dict]) -> Path:
    """A copy of checkpoint `folder` whose generator header is `change(metadata)`, weights untouched."""
    target.mkdir()
    (target / TOKENIZER_FILE).write_bytes((folder / TOKENIZER_FILE).read_bytes())
    tensors, metadata = load_checkpoint(folder / GENERATOR_FILE)
    save_checkpoint(target / GENERATOR_FILE, tensors, change(dict(metadata)))
    return target
