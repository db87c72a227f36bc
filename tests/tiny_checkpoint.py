"""A tiny random checkpoint folder (tokenizer + generator) for tests that run the real pipeline end to end."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, save_generator
from imgen.checkpoints import save_tokenizer
from imgen.model import Generator, GPTConfig
from imgen.text import PromptEncoder, train_text_tokenizer
from imgen.tokenizer.config import VQ_SIZES
from imgen.tokenizer.model import VQTokenizer
from imgen.world.captions import caption
from imgen.world.sampling import random_spec


def write_tiny_checkpoint(folder: Path) -> Path:
    """Random weights, real formats: what `imgen generate --model FOLDER` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = VQTokenizer(VQ_SIZES["tiny"])
    save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
    rng = random.Random(0)
    captions = [caption(random_spec(rng), rng) for _ in range(200)]
    prompts = PromptEncoder(train_text_tokenizer(captions), max_length=24)
    config = GPTConfig(
        text_vocab=prompts.vocab_size,
        coarse_vocab=tokenizer.coarse_vocab,
        detail_vocab=tokenizer.detail_vocab,
        text_len=24,
        coarse_grid=tokenizer.config.coarse_grid,
        detail_grid=tokenizer.config.detail_grid,
        d_model=32,
        n_layers=1,
        n_heads=2,
    )
    save_generator(Generator(config), prompts, folder / GENERATOR_FILE)
    return folder
