"""Generator training: own folders end to end, exact resume after Ctrl-C, torchrun matching one process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from imgen.api import GENERATOR_FILE, load_generator, save_generator
from imgen.checkpoints import load_checkpoint, save_checkpoint
from imgen.generator_train import (
    GeneratorObjective,
    GeneratorTrainConfig,
    add_box_masks,
    detail_rows,
    draw_coarse_mask,
    draw_restyle_pairs,
    missing_cpp_compiler,
    object_cells,
    reference_inputs,
    restyle_captions,
    train_generator,
)
from imgen.model import Generator, GPTConfig
from imgen.train_config import ConfigError
from imgen.training import TrainingInterrupted
from imgen.world.ground_truth import render_prompt
from tests.cli_runner import ENV, imgen, run, torchrun
from tests.system_deps import needs

FAST = "log_every = 1\ncaption_corpus = 300\nsample_prompts = 0\n"


def losses(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "coarse_loss" in r}


def write_captioned_folder(folder: Path) -> None:
    """Six good examples in both caption conventions, plus one of each problem."""
    folder.mkdir()
    prompts = ["a red circle", "a blue square", "two green stars", "a cat", "a yellow heart", "a black triangle"]
    rows = []
    for i, prompt in enumerate(prompts):
        render_prompt(prompt, seed=i, size=96 + 16 * i).image.save(folder / f"img{i}.png")
        if i < 4:
            rows.append(json.dumps({"file_name": f"img{i}.png", "text": prompt}))
        else:
            (folder / f"img{i}.txt").write_text(prompt.replace("heart", "kite") + "\n")  # a word the world lacks
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    render_prompt("a dog", seed=9, size=64).image.save(folder / "uncaptioned.png")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")


def test_a_tiny_generator_trains_on_a_captioned_folder_and_then_generates(tmp_path: Path):
    data = tmp_path / "data"
    write_captioned_folder(data)

    check = run("data", "check", str(data), "--json", cwd=tmp_path)
    report = json.loads(check.stdout)
    assert check.returncode == 1  # problems reported, not fatal
    assert (report["images"], report["captioned"]) == (7, 6)
    problems = {line.split(":")[0]: line for line in report["problems"]}
    assert set(problems) == {"broken.png", "notes.pdf", "uncaptioned.png"}
    assert "not a readable image" in problems["broken.png"]
    assert problems["notes.pdf"].endswith("not an image") and problems["uncaptioned.png"].endswith("no caption")
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("img4.png", "img4.txt"):
        (clean / name).write_bytes((data / name).read_bytes())
    good = run("data", "check", str(clean), cwd=tmp_path)
    assert good.returncode == 0 and f"{clean}: 1 images, 1 with captions" in good.stdout
    (tmp_path / "empty").mkdir()
    nothing = run("data", "check", "empty", cwd=tmp_path)
    assert nothing.returncode == 2, nothing.stderr

    vq = run(
        "train", "tokenizer", "--data", str(data), "--size", "tiny", "--batch-size", "2",
        "--max-steps", "3", "--out", "vq", cwd=tmp_path,
    )  # fmt: skip
    assert vq.returncode == 0, vq.stderr
    (tmp_path / "gen.toml").write_text("log_every = 1\nsample_prompts = 2\n")
    gen = run(
        "train", "generator", "--data", str(data), "--tokenizer", "vq/last.safetensors", "--size", "tiny",
        "--batch-size", "4", "--detail-batch", "2", "--max-steps", "4", "--out", "gen", "--config", "gen.toml",
        cwd=tmp_path,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    events = [json.loads(line) for line in (tmp_path / "gen" / "metrics.jsonl").read_text().splitlines()]
    data_event = next(e for e in events if e.get("event") == "data")
    assert {p.split(":")[0] for p in data_event["problems"]} == {"broken.png", "notes.pdf", "uncaptioned.png"}
    assert sorted(losses(tmp_path / "gen")) == [1, 2, 3, 4]
    assert list((tmp_path / "gen" / "samples").glob("step_*.png"))

    out = run("generate", "a red circle", "--model", "gen/checkpoint", "-o", "red.png", "--no-preview", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "red.png").stat().st_size > 0
    known = run(
        "generate", "a yellow kite", "--model", "gen/checkpoint", "-o", "kite.png", "--no-preview", cwd=tmp_path
    )
    unknown = run(
        "generate", "a purple cat", "--model", "gen/checkpoint", "-o", "cat.png", "--no-preview", cwd=tmp_path
    )
    assert known.returncode == 0 and unknown.returncode == 0, known.stderr + unknown.stderr
    assert (tmp_path / "kite.png").is_file() and (tmp_path / "cat.png").is_file()
    # the vocabulary is the folder's captions: "purple" is unknown and named, "kite" is known
    assert "never saw" not in known.stderr
    assert "words this checkpoint never saw" in unknown.stderr and "purple" in unknown.stderr


def tiny_config(tmp_path: Path, tiny_checkpoint: Path, out: str) -> GeneratorTrainConfig:
    return GeneratorTrainConfig(
        tokenizer=str(tiny_checkpoint / "tokenizer.safetensors"),
        out_dir=str(tmp_path / out),
        size="tiny",
        batch_size=4,
        detail_batch=2,
        max_steps=8,
        warmup_steps=2,
        log_every=1,
        caption_corpus=300,
        sample_prompts=0,
        threads=1,
    )


def test_an_interrupted_run_resumes_with_the_losses_of_an_unbroken_one(tmp_path: Path, tiny_checkpoint: Path):
    train_generator(tiny_config(tmp_path, tiny_checkpoint, "unbroken"))

    def interrupt_at_step_3(record: dict) -> None:
        if record.get("step") == 3 and "loss" in record:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    broken = tiny_config(tmp_path, tiny_checkpoint, "broken")
    with pytest.raises(TrainingInterrupted) as stopped:
        train_generator(broken, progress=interrupt_at_step_3)
    assert stopped.value.step == 3
    train_generator(broken)

    unbroken, resumed = losses(tmp_path / "unbroken"), losses(tmp_path / "broken")
    assert sorted(unbroken) == sorted(resumed) == list(range(1, 9))
    for step in range(1, 9):
        assert resumed[step] == pytest.approx(unbroken[step], rel=1e-5), step


def test_a_trained_generator_records_the_token_ids_it_was_trained_on(tmp_path: Path, tiny_checkpoint: Path):
    from imgen.checkpoints import load_tokenizer, read_header
    from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, token_id_fingerprint

    run = train_generator(dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), max_steps=1))
    recorded = read_header(run / GENERATOR_FILE)[TOKEN_IDS_KEY]
    assert recorded == token_id_fingerprint(load_tokenizer(tiny_checkpoint / "tokenizer.safetensors"))


def test_compile_without_a_cpp_compiler_is_refused_before_the_run_starts(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, str(tmp_path / "no-such-compiler")))
    config = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), compile=True)
    with pytest.raises(ConfigError, match="--compile needs a working C\\+\\+ compiler"):
        train_generator(config)
    assert not (tmp_path / "run").exists()


def test_init_with_a_tokenizer_of_other_token_ids_is_refused(tmp_path: Path, tiny_checkpoint: Path):
    from imgen.checkpoints import save_tokenizer
    from imgen.tokenizer import VQ_SIZES, VQTokenizer

    torch.manual_seed(1)
    save_tokenizer(VQTokenizer(VQ_SIZES["tiny"]), tmp_path / "apart.safetensors")
    config = dataclasses.replace(
        tiny_config(tmp_path, tiny_checkpoint, "run"), tokenizer=str(tmp_path / "apart.safetensors"),
        init=str(tiny_checkpoint), max_steps=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="not the one the generator was trained with"):
        train_generator(config)


@needs(missing_cpp_compiler())
def test_a_compiled_run_follows_the_losses_of_an_eager_one_and_resumes_without_compiling(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    compiled_modules: list[torch.nn.Module] = []
    real_compile = torch.compile

    def counting_compile(module: torch.nn.Module, **options):
        compiled_modules.append(module)
        return real_compile(module, **options)

    monkeypatch.setattr(torch, "compile", counting_compile)
    eager = tiny_config(tmp_path, tiny_checkpoint, "eager")
    train_generator(eager)

    def interrupt_at_step_4(record: dict) -> None:
        if record.get("step") == 4 and "loss" in record:
            os.kill(os.getpid(), signal.SIGINT)

    compiled = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "compiled"), compile=True)
    with pytest.raises(TrainingInterrupted):
        train_generator(compiled, progress=interrupt_at_step_4)
    printed: list[dict] = []  # how a run is executed is no option of its recipe: the resume is not refused
    train_generator(dataclasses.replace(compiled, compile=False), progress=printed.append)
    resumed = next(r for r in printed if r.get("event") == "resume")
    assert resumed["step"] == 4 and "changed" not in resumed
    assert len(compiled_modules) == 1  # the first four steps only
    by_eager, by_compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert sorted(by_compiled) == list(range(1, 9))
    # Fused kernels round bf16 products differently from eager ones; a wrong loss or gradient would differ by far more.
    for step in range(1, 9):
        assert by_compiled[step] == pytest.approx(by_eager[step], rel=2e-3), step


def test_two_torchrun_processes_follow_the_loss_curve_of_one(tmp_path: Path, tiny_checkpoint: Path):
    (tmp_path / "fast.toml").write_text(FAST + "max_steps = 20\nwarmup_steps = 5\n")
    args = [
        "train", "generator", "--tokenizer", str(tiny_checkpoint / "tokenizer.safetensors"), "--size", "tiny",
        "--batch-size", "4", "--detail-batch", "2", "--config", "fast.toml",
    ]  # fmt: skip
    one = run(*args, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = torchrun(2, *args, "--out", "two", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    curve_one, curve_two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(curve_one) == sorted(curve_two) == list(range(1, 21))
    # Before any update the two differ only by rounding; bf16 matrix products round a batch of 2 and one of 4
    # differently, and 19 updates carry that on (1.1e-4 by step 20). A wrong split of the batch or of the loss
    # over processes would differ by far more.
    assert curve_two[1] == pytest.approx(curve_one[1], rel=1e-4)
    for step in curve_one:
        assert curve_two[step] == pytest.approx(curve_one[step], rel=5e-4), step
    assert curve_one[20] < curve_one[1]  # and it does learn
    started = next(json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines())
    assert started["processes"] == 2


def test_coarse_masks_and_detail_rows_split_evenly_over_processes():
    masks = draw_coarse_mask(64, 16, torch.Generator().manual_seed(0))
    counts = masks.sum(1)
    assert masks.shape == (64, 16) and counts.min() >= 1 and counts.max() <= 16 and counts.float().std() > 0
    rows = detail_rows(32, 8)
    assert rows.sum() == 8 and rows[:16].sum() == rows[16:].sum() == 4
    # exactly the number asked for, whatever the batch (a stride of batch // detail_batch gave 12 of 12, 16 of 32)
    assert [int(detail_rows(batch, k).sum()) for batch, k in ((12, 8), (32, 12), (36, 8), (4, 8))] == [8, 12, 8, 4]


def test_a_resume_with_other_options_is_refused_and_a_longer_schedule_is_reported(
    tmp_path: Path, tiny_checkpoint: Path
):
    first = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), max_steps=2)
    train_generator(first)
    for change in ({"seed": 1}, {"size": "small"}, {"box_masks": 0.5}, {"detail_batch": 4}):
        with pytest.raises(ValueError, match=f"other options \\({next(iter(change))} "):
            train_generator(dataclasses.replace(first, **change))
    assert [r.get("event") for r in records(tmp_path / "run")].count("resume") == 0  # refused before any work
    printed: list[dict] = []
    train_generator(dataclasses.replace(first, max_steps=3, max_minutes=5.0), progress=printed.append)
    resumed = next(r for r in printed if r.get("event") == "resume")
    assert resumed["step"] == 2 and resumed["changed"] == {"max_steps": [2, 3]}
    assert max(losses(tmp_path / "run")) == 3


def test_a_resumed_run_keeps_its_own_tokenizer_when_the_file_it_started_from_changes(
    tmp_path: Path, tiny_checkpoint: Path
):
    source = tmp_path / "tokenizer.safetensors"
    source.write_bytes((tiny_checkpoint / "tokenizer.safetensors").read_bytes())
    config = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), tokenizer=str(source), max_steps=2)
    train_generator(config)
    original = (tmp_path / "run" / "checkpoint" / "tokenizer.safetensors").read_bytes()
    source.write_bytes(b"another tokenizer now")  # e.g. a tokenizer run that went on saving
    train_generator(dataclasses.replace(config, max_steps=3))
    assert (tmp_path / "run" / "checkpoint" / "tokenizer.safetensors").read_bytes() == original
    assert max(losses(tmp_path / "run")) == 3


def test_a_save_cut_off_between_moving_the_old_checkpoint_aside_and_the_new_one_in_resumes(
    tmp_path: Path, tiny_checkpoint: Path
):
    config = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), max_steps=2)
    train_generator(config)
    final = tmp_path / "run" / "checkpoint"
    final.rename(final.with_name("checkpoint.old"))  # where replace_folder leaves it at that moment
    train_generator(dataclasses.replace(config, max_steps=3))
    assert (final / GENERATOR_FILE).is_file() and not final.with_name("checkpoint.old").exists()
    assert max(losses(tmp_path / "run")) == 3


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_object_cells_are_those_unlike_the_grids_most_common_token():
    grids = torch.tensor([[5, 5, 2, 5, 9], [1, 1, 1, 1, 1]])
    assert object_cells(grids).tolist() == [[False, False, True, False, True], [False] * 5]


def test_the_coarse_objective_weighs_object_cells_and_the_reported_coarse_loss_stays_plain():
    torch.manual_seed(0)
    model = Generator(GPTConfig(text_vocab=50, coarse_vocab=30, detail_vocab=40, text_len=6, d_model=32, n_layers=2))
    cells, detail_len = model.config.coarse_len, model.config.detail_len
    coarse = torch.full((3, cells), 7)
    coarse[:, 20:28] = torch.randint(0, 7, (3, 8))  # a row of object cells on a background of 7
    masked = torch.rand(3, cells) < 0.6
    text, detail = torch.randint(0, 50, (3, 6)), torch.randint(0, 40, (3, detail_len))
    inputs = (text, coarse, masked, detail, torch.tensor([True, False, True]))
    with torch.no_grad():
        plain_objective, plain_detail, plain_coarse = GeneratorObjective(model)(*inputs)
        weighted_objective, weighted_detail, weighted_coarse = GeneratorObjective(model, 3.0)(*inputs)
        logits = model.coarse_logits(text, coarse.masked_fill(masked, model.config.mask_id)).float()
    cell_losses = F.cross_entropy(logits[masked], coarse[masked], reduction="none")
    on_objects = (coarse != 7)[masked]
    assert on_objects.any() and not on_objects.all()
    assert torch.allclose(plain_objective, cell_losses.sum()) and torch.equal(plain_objective, plain_coarse)
    assert torch.allclose(weighted_objective, cell_losses[~on_objects].sum() + 3 * cell_losses[on_objects].sum())
    assert torch.equal(weighted_coarse, plain_coarse) and torch.equal(weighted_detail, plain_detail)


def test_options_outside_their_range_are_one_config_error_naming_the_option(tmp_path: Path, tiny_checkpoint: Path):
    changes = [{"log_every": 0}, {"batch_size": 0}, {"box_masks": 1.5}, {"detail_batch": 0}, {"restyle_pairs": -1}]
    for change in [*changes, {"object_weight": -1}]:
        with pytest.raises(ConfigError, match=next(iter(change))):
            dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "run"), **change)
    (tmp_path / "bad.toml").write_text("log_every = 0\n")
    result = run("train", "generator", "--init", str(tiny_checkpoint), "--config", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "imgen: error: log_every must be at least 1, not 0"
    ]
    assert not (tmp_path / "runs").exists()


def test_box_masks_hide_one_rectangle_of_object_size_in_the_chosen_fraction_of_rows():
    generator = torch.Generator().manual_seed(0)
    scattered = draw_coarse_mask(400, 64, generator)
    assert torch.equal(add_box_masks(scattered, 0.0, generator), scattered)
    boxed = add_box_masks(scattered, 0.5, generator)
    changed = (boxed != scattered).any(1)
    assert 150 < changed.sum() < 250
    for row in boxed[changed].view(-1, 8, 8):
        rows, cols = row.any(1).nonzero().squeeze(1), row.any(0).nonzero().squeeze(1)
        height, width = len(rows), len(cols)
        assert 2 <= height <= 5 and 2 <= width <= 5
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width  # one piece
        assert row.sum() == height * width  # a full rectangle
    assert torch.equal(add_box_masks(scattered[:, :60], 1.0, generator), scattered[:, :60])  # no square grid


def test_restyle_pairs_show_a_share_of_rows_their_reference_where_visible_and_mask_the_rest():
    generator = torch.Generator().manual_seed(0)
    assert not draw_restyle_pairs(400, 64, 0.0, 6, generator).paired.any()
    pairs = draw_restyle_pairs(400, 64, 0.5, 5, generator)
    assert 150 < pairs.paired.sum() < 250 and set(pairs.picks.tolist()) == set(range(5))
    assert not (pairs.style_only & ~pairs.paired).any()
    assert 0.35 < pairs.style_only.sum() / pairs.paired.sum() < 0.65  # half the pairs name the style alone
    shares = pairs.visible.float().mean(1)
    assert 0.2 < (shares == 1).float().mean() < 0.35  # a quarter show the reference whole, as restyle at strength 0
    assert 0.2 < ((shares > 0.05) & (shares < 0.5)).float().mean() < 0.5  # the rest spread over the strengths
    rows = torch.arange(100, 140)  # one process's share of the batch
    grids = torch.arange(int(pairs.paired[rows].sum()) * 64).view(-1, 64) % 30  # its paired rows' references
    references = pairs.references(grids, rows, none_id=30)
    assert references.shape == (40, 64)
    assert (references[~pairs.paired[rows]] == 30).all()  # no reference: every cell [MASK]
    visible = pairs.visible[rows][pairs.paired[rows]]
    paired_references = references[pairs.paired[rows]]
    assert torch.equal(paired_references[visible], grids[visible]) and (paired_references[~visible] == 30).all()


def test_reference_inputs_are_each_rows_own_scene_in_its_drawn_style_split_over_processes(tiny_checkpoint: Path):
    from imgen.checkpoints import load_tokenizer
    from imgen.world.dataset import WorldExamples

    tokenizer = load_tokenizer(tiny_checkpoint / "tokenizer.safetensors").eval()
    source = WorldExamples(seed=3, size=tokenizer.config.image_size)
    pairs = draw_restyle_pairs(6, 64, 0.6, 5, torch.Generator().manual_seed(1))
    assert 0 < pairs.paired.sum() < 6
    grids = {"coarse_grid": tokenizer.config.coarse_grid, "detail_grid": tokenizer.config.detail_grid}
    assert grids == {"coarse_grid": 8, "detail_grid": 16}  # as the shapes below
    config = GPTConfig(10, tokenizer.coarse_vocab, tokenizer.detail_vocab, **grids)
    mask_id, bos_id, position = config.mask_id, config.bos_id, 37
    with torch.no_grad():
        whole, whole_detail = reference_inputs(pairs, source, tokenizer, position, range(0, 6), config)
        shards = (range(3), range(3, 6))
        halves = [reference_inputs(pairs, source, tokenizer, position, rows, config) for rows in shards]
    assert torch.equal(torch.cat([half[0] for half in halves]), whole)  # two processes together show what one does
    assert torch.equal(torch.cat([half[1] for half in halves]), whole_detail)
    assert whole.shape == (6, 64) and whole_detail.shape == (6, 256)
    for row in range(6):
        if not pairs.paired[row]:
            assert (whole[row] == mask_id).all() and (whole_detail[row] == bos_id).all()
            continue
        image = source.restyled([position + row], [int(pairs.picks[row])])
        with torch.no_grad():
            grids = tokenizer.encode(image)
        expected, expected_detail = grids.coarse.flatten(1)[0], grids.detail.flatten(1)[0]
        shown = pairs.visible[row]
        assert torch.equal(whole[row][shown], expected[shown]) and (whole[row][~shown] == mask_id).all()
        # a detail position is shown where the coarse cell covering it is: 2x2 positions per cell
        shown_detail = shown.view(8, 8).repeat_interleave(2, 0).repeat_interleave(2, 1).flatten()
        assert shown_detail.sum() == 4 * shown.sum()
        assert torch.equal(whole_detail[row][shown_detail], expected_detail[shown_detail])
        assert (whole_detail[row][~shown_detail] == bos_id).all()


def test_style_only_rows_are_captioned_by_their_own_style_alone_and_the_rest_keep_theirs():
    from imgen.world.captions import STYLE_FRAMES
    from imgen.world.dataset import WorldExamples
    from imgen.world.examples import make_example

    source = WorldExamples(seed=3, size=32)
    pairs = draw_restyle_pairs(40, 64, 0.5, 5, torch.Generator().manual_seed(2))
    position, shard = 100, range(10, 30)
    _, captions = source.batch(range(position + shard.start, position + shard.stop))
    changed = restyle_captions(pairs, source, position, shard, captions)
    assert pairs.style_only[shard.start : shard.stop].any()
    for row, before, after in zip(shard, captions, changed, strict=True):
        if not pairs.style_only[row]:
            assert after == before
            continue
        style = make_example(3, position + row).scene.style
        assert after in {frame.format("the scene") for frame in STYLE_FRAMES[style]}


def test_restyle_pairs_grow_a_reference_input_and_train_what_the_shown_references_look_up(
    tmp_path: Path, tiny_checkpoint: Path
):
    base = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "plain"), max_steps=3)
    train_generator(base)
    paired = dataclasses.replace(base, out_dir=str(tmp_path / "paired"), restyle_pairs=1.0)
    train_generator(paired)
    events = [json.loads(line) for line in (tmp_path / "paired" / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "grown" and e.get("detail_reference_input") for e in events)  # see test_growth
    model, _, _ = load_generator(tmp_path / "paired" / "checkpoint" / GENERATOR_FILE)
    assert model.config.reference_input and model.config.detail_reference_input
    assert model.reference_embed.weight[: model.config.mask_id].abs().sum() > 0  # it learnt from shown references
    assert model.detail_reference_embed.weight[: model.config.bos_id].abs().sum() > 0  # in both phases
    plain_model, _, _ = load_generator(tmp_path / "plain" / "checkpoint" / GENERATOR_FILE)
    assert not plain_model.config.reference_input
    longer = dataclasses.replace(base, max_steps=5, restyle_pairs=0.5)
    with pytest.raises(ValueError, match=r"other options \(restyle_pairs 0.0 -> 0.5\)"):
        train_generator(longer)
    # a run saved before the option existed: its optimizer state has no place for the new input either
    state = tmp_path / "plain" / "state.safetensors"
    tensors, metadata = load_checkpoint(state)
    options = json.loads(metadata["train_config"])
    del options["restyle_pairs"]
    save_checkpoint(state, tensors, {**metadata, "train_config": json.dumps(options)})
    with pytest.raises(
        ValueError,
        match=r"trained on no restyle pairs; start a new run from it: --init .*checkpoint",
    ):
        train_generator(longer)
    # a run trained on pairs before the detail reference existed: refused as well, and said so
    saved = tmp_path / "paired" / "checkpoint" / GENERATOR_FILE
    both, prompts, header = load_generator(saved)
    coarse_only = Generator(dataclasses.replace(both.config, detail_reference_input=False))
    coarse_only.load_state_dict({k: v for k, v in both.state_dict().items() if "detail_reference" not in k})
    save_generator(coarse_only, prompts, saved, {k: v for k, v in header.items() if k in ("train_config", "step")})
    with pytest.raises(ValueError, match=r"trained on pairs without a detail reference; start a new run from it"):
        train_generator(dataclasses.replace(paired, max_steps=5))


def test_fine_tuning_the_bundled_checkpoint_registers_and_generates_by_name(tmp_path: Path):
    data = tmp_path / "data"
    write_captioned_folder(data)
    (tmp_path / "ft.toml").write_text("log_every = 1\nsample_prompts = 0\nwarmup_steps = 1\n")
    tuned = run(
        "train", "generator", "--data", str(data), "--init", "default", "--batch-size", "2", "--detail-batch", "1",
        "--max-steps", "2", "--out", "ft", "--config", "ft.toml", "--box-masks", "0.5", cwd=tmp_path,
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    with safe_open(tmp_path / "ft" / "checkpoint" / "generator.safetensors", "pt") as saved:
        assert json.loads(saved.metadata()["train_config"])["box_masks"] == 0.5
    assert sorted(losses(tmp_path / "ft")) == [1, 2]
    env = {**ENV, "IMGEN_WEIGHTS_LOCK": str(tmp_path / "weights.lock"), "IMGEN_HOME": str(tmp_path / "home")}
    imgen("weights", "add", "ft/checkpoint", "--name", "mine", cwd=tmp_path, env=env)
    imgen("generate", "a red circle", "--model", "mine", "-o", "x.png", "--no-preview", cwd=tmp_path, env=env)
    assert (tmp_path / "x.png").is_file()


def test_a_checkpoint_grown_deeper_starts_from_its_own_loss_and_saves_the_new_depth(
    tmp_path: Path, tiny_checkpoint: Path
):
    base = dataclasses.replace(
        tiny_config(tmp_path, tiny_checkpoint, "same"), tokenizer="", init=str(tiny_checkpoint), max_steps=2
    )
    layers = load_generator(tiny_checkpoint / GENERATOR_FILE)[0].config.n_layers + 2
    train_generator(base)
    train_generator(dataclasses.replace(base, out_dir=str(tmp_path / "deeper"), layers=layers))

    # The first loss is computed before any update: growing must not have changed it.
    assert losses(tmp_path / "deeper")[1] == pytest.approx(losses(tmp_path / "same")[1], rel=1e-6)
    grown, prompts, _ = load_generator(tmp_path / "deeper" / "checkpoint" / GENERATOR_FILE)
    assert grown.config.n_layers == layers
    # The tiny checkpoint learnt its words from 200 captions; those of this run's corpus it lacked are added.
    events = [json.loads(line) for line in (tmp_path / "deeper" / "metrics.jsonl").read_text().splitlines()]
    added = next(e["words"] for e in events if e.get("event") == "words added")
    _, old_prompts, _ = load_generator(tiny_checkpoint / GENERATOR_FILE)
    assert added and old_prompts.missing_words(added) == added and prompts.missing_words(added) == []
    assert grown.config.text_vocab == prompts.vocab_size == old_prompts.vocab_size + len(added)

    tokenizer = str(tiny_checkpoint / "tokenizer.safetensors")
    refused = run("train", "generator", "--tokenizer", tokenizer, "--layers", "4", "--out", "x", cwd=tmp_path)
    assert refused.returncode == 2 and "--init" in refused.stderr


def test_a_torchrun_worker_leaves_with_its_exit_code_and_its_output_flushed():
    script = (
        "import sys\n"
        "from imgen.distributed import launched_by_torchrun, leave_worker\n"
        "print('last line', end='')\n"
        "sys.stderr.write('last error')\n"
        "if launched_by_torchrun():\n"
        "    leave_worker(7)\n"
    )
    worker = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "WORLD_SIZE": "2"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (worker.returncode, worker.stdout, worker.stderr) == (7, "last line", "last error")
    alone = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "WORLD_SIZE": "1"}, capture_output=True, timeout=60
    )
    assert alone.returncode == 0


def test_ctrl_c_during_imgen_train_saves_and_exits_130_in_one_line(tmp_path: Path, tiny_checkpoint: Path):
    (tmp_path / "fast.toml").write_text(FAST)
    tokenizer = str(tiny_checkpoint / "tokenizer.safetensors")
    command = [
        sys.executable, "-m", "imgen", "train", "generator", "--tokenizer", tokenizer, "--size", "tiny",
        "--batch-size", "2", "--detail-batch", "1", "--max-steps", "100000", "--config", "fast.toml", "--out", "run",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.monotonic() + 300
    while not (metrics.exists() and '"step"' in metrics.read_text()) and process.poll() is None:
        assert time.monotonic() < deadline, "setup: no training step within 300 s"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode() and lines[-1].startswith("imgen: interrupted at step ")
    assert (tmp_path / "run" / "state.safetensors").is_file()


def test_a_world_caption_the_prompt_cannot_hold_trains_as_the_empty_prompt():
    from imgen.generator_train import prompt_rows
    from imgen.text import PromptEncoder, train_text_tokenizer

    captions = ["a red circle", "a blue square in the top left and a green star at the bottom on a black background"]
    prompts = PromptEncoder(train_text_tokenizer(captions), max_length=8)
    null = torch.tensor(prompts.encode(""))
    assert prompts.ignored_tail(captions[1]) and not prompts.ignored_tail(captions[0])
    kept = prompt_rows(prompts, captions, torch.tensor([False, False]), null, world=True)
    assert torch.equal(kept[0], torch.tensor(prompts.encode(captions[0]))) and torch.equal(kept[1], null)
    dropped = prompt_rows(prompts, captions, torch.tensor([True, False]), null, world=False)
    assert torch.equal(dropped[0], null) and torch.equal(dropped[1], torch.tensor(prompts.encode(captions[1])))


def test_the_wsd_schedule_warms_up_holds_its_peak_and_decays_at_the_end():
    config = GeneratorTrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, schedule="wsd", decay_steps=20)
    lrs = [config.learning_rate(step) for step in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(lr == pytest.approx(1e-3) for lr in lrs[10:81])
    assert lrs[90] == pytest.approx(1e-3 * (1 - 0.9 * 0.5)) and lrs[100] == pytest.approx(1e-4)
    held = GeneratorTrainConfig(lr=1e-3, warmup_steps=0, max_steps=100, schedule="wsd")
    assert held.learning_rate(99) == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="schedule"):
        GeneratorTrainConfig(schedule="linear")


def test_the_weight_average_moves_by_one_minus_its_decay_each_step():
    from imgen.weight_average import WeightAverage

    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update()
    average.update()
    assert torch.allclose(average.model.weight, torch.full((1, 2), 1 - 0.75**2))
    assert torch.equal(model.weight, torch.ones(1, 2))  # the model itself is untouched


def test_with_ema_the_checkpoint_holds_the_average_and_a_resume_goes_on_from_it(tmp_path: Path, tiny_checkpoint: Path):
    from imgen.checkpoints import load_checkpoint, read_header

    config = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "avg"), max_steps=3, ema=0.5, schedule="wsd")
    train_generator(config)
    checkpoint = tmp_path / "avg" / "checkpoint" / GENERATOR_FILE
    header = read_header(checkpoint)
    assert header["weights"] == "average" and header["ema"] == "0.5"
    averaged, _ = load_checkpoint(checkpoint)
    state, _ = load_checkpoint(tmp_path / "avg" / "state.safetensors")
    name = next(k for k in averaged if k.endswith("weight") and averaged[k].dim() == 2)
    assert not torch.equal(averaged[name], state[f"model.{name}"])  # the average, not the last weights
    train_generator(dataclasses.replace(config, max_steps=5))
    assert read_header(checkpoint)["step"] == "5" and sorted(losses(tmp_path / "avg")) == [1, 2, 3, 4, 5]


def test_the_library_refuses_what_the_command_line_refuses_before_making_the_run_folder(tmp_path: Path):
    from imgen.tokenizer.train import TokenizerTrainConfig, train_tokenizer
    from imgen.train_config import ConfigError

    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        GeneratorTrainConfig(size="huge")
    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        TokenizerTrainConfig(size="huge")
    out = str(tmp_path / "run")
    refused = {
        "give the image tokenizer": GeneratorTrainConfig(out_dir=out),
        "--layers grows a trained checkpoint": GeneratorTrainConfig(out_dir=out, tokenizer=__file__, layers=8),
        "nowhere: not a folder": GeneratorTrainConfig(out_dir=out, init="default", data=str(tmp_path / "nowhere")),
        "--restyle-pairs draws scenes in two styles": GeneratorTrainConfig(
            out_dir=out, init="default", data=str(tmp_path), restyle_pairs=0.5
        ),
    }
    for message, config in refused.items():
        with pytest.raises(ConfigError, match=message):
            train_generator(config)
    with pytest.raises(ConfigError, match="--decoder-blocks grows a trained tokenizer"):
        train_tokenizer(TokenizerTrainConfig(out_dir=out, decoder_blocks="3,4"))
    assert not (tmp_path / "run").exists()


def test_a_step_with_a_nan_gradient_is_skipped_and_never_reaches_the_weights(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def overflow_at_the_second_step(parameters, max_norm):
        parameters = list(parameters)
        calls["n"] += 1
        if calls["n"] == 2:  # what one bf16 overflow in the forward pass leaves in the gradients
            for p in parameters:
                p.grad.fill_(float("nan"))
        return real_clip(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", overflow_at_the_second_step)
    config = dataclasses.replace(tiny_config(tmp_path, tiny_checkpoint, "nan"), max_steps=4)
    train_generator(config)
    records = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("event") == "skipped"] == [1]  # the second step (0-based 1)
    assert next(r for r in records if r.get("event") == "end")["step"] == 4
    from imgen.checkpoints import load_checkpoint

    for path in (tmp_path / "nan" / "state.safetensors", tmp_path / "nan" / "checkpoint" / GENERATOR_FILE):
        tensors, _ = load_checkpoint(path)
        assert all(torch.isfinite(t.float()).all() for t in tensors.values()), path
