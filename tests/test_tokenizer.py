"""The image tokenizer: FSQ, shapes and ranges, coarse-only decoding, determinism, training and resume."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from imgen.folder_data import scan_folder
from imgen.folder_examples import FolderExamples
from imgen.tokenizer import FSQ, VQ_SIZES, VQConfig, VQTokenizer
from imgen.tokenizer.token_ids import token_id_fingerprint
from imgen.tokenizer.train import (
    TokenizerTrainConfig,
    coarse_rows,
    psnr,
    reconstruction_loss,
    train_tokenizer,
)
from tests.cli_runner import imgen, torchrun

TINY = VQ_SIZES["tiny"]


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def scenes(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    """Flat-colour scenes of coloured rectangles on a background: uint8 (n, 3, size, size)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        images[i] = torch.randint(0, 256, (3, 1, 1), generator=gen, dtype=torch.uint8)
        for _ in range(3):
            x0, y0 = torch.randint(0, size - 24, (2,), generator=gen).tolist()
            w, h = torch.randint(8, 24, (2,), generator=gen).tolist()
            images[i, :, y0 : y0 + h, x0 : x0 + w] = torch.randint(0, 256, (3, 1, 1), generator=gen, dtype=torch.uint8)
    return images


def tiny_model(seed: int = 0) -> VQTokenizer:
    torch.manual_seed(seed)
    return VQTokenizer(TINY).eval()


# ---------------------------------------------------------------- FSQ


def test_fsq_ids_and_codes_round_trip_over_the_whole_vocabulary():
    fsq = FSQ((8, 5, 3))
    ids = torch.arange(fsq.vocab_size)
    codes = fsq.ids_to_codes(ids)  # (V, 3)
    assert fsq.vocab_size == 120 and codes.shape == (120, 3)
    assert torch.equal(fsq.codes_to_ids(codes), ids)
    assert len({tuple(c) for c in codes.tolist()}) == 120  # a bijection: every id its own grid point
    assert codes.min() >= -1 and codes.max() <= 1


def test_fsq_quantize_uses_exactly_the_configured_levels():
    fsq = FSQ((8, 5, 2))
    z = torch.randn(20_000, 3) * 3
    codes, ids = fsq.quantize(z)
    for channel, levels in enumerate(fsq.levels):
        assert codes[:, channel].unique().numel() == levels
    assert ids.dtype == torch.int64 and ids.shape == (20_000,)
    assert torch.equal(fsq.ids_to_codes(ids), codes)
    assert torch.equal(fsq.codes_to_ids(codes), ids)


def test_fsq_straight_through_gradient_reaches_the_input():
    fsq = FSQ((7, 5))
    z = torch.randn(64, 2, requires_grad=True)
    codes, _ = fsq.quantize(z)
    codes.sum().backward()
    assert z.grad is not None
    assert (z.grad > 0).all()  # d/dz of a rising tanh, not the zero gradient of round()


def test_the_fsq_centre_id_is_the_all_zero_code():
    for levels in [(8, 5, 5, 5), (7, 5, 5, 5, 5), (4, 4), (2, 3)]:
        fsq = FSQ(levels)
        assert torch.equal(fsq.ids_to_codes(torch.tensor(fsq.centre_id)), torch.zeros(len(levels))), levels
        assert fsq.codes_to_ids(torch.zeros(len(levels))).item() == fsq.centre_id


def test_fsq_rejects_bad_ids_and_levels():
    fsq = FSQ((4, 4))
    with pytest.raises(ValueError):
        fsq.ids_to_codes(torch.tensor([16]))
    with pytest.raises(TypeError):
        fsq.ids_to_codes(torch.tensor([1.0]))
    with pytest.raises(ValueError):
        FSQ((4, 1))


# ---------------------------------------------------------------- model


def test_encode_decode_shapes_dtypes_and_ranges():
    model = tiny_model()
    images = scenes(3)
    grids = model.encode(images)
    assert grids.coarse.shape == (3, 8, 8) and grids.detail.shape == (3, 16, 16)
    assert grids.coarse.dtype == torch.int64 and grids.detail.dtype == torch.int64
    assert grids.coarse.min() >= 0 and grids.coarse.max() < model.coarse_vocab
    assert grids.detail.min() >= 0 and grids.detail.max() < model.detail_vocab
    out = model.decode(grids.coarse, grids.detail)
    assert out.shape == (3, 3, 128, 128) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    # float [0, 1] input and a single unbatched image mean the same thing as uint8
    assert torch.equal(model.encode(images.float() / 255).detail, grids.detail)
    assert torch.equal(model.encode(images[0]).coarse, grids.coarse[:1])


def test_coarse_only_decode_matches_the_trained_coarse_path():
    model = tiny_model()
    for p in model.parameters():  # leave the zero-initialised start so detail actually changes the image
        torch.nn.init.normal_(p, std=0.05)
    images = scenes(2)
    grids = model.encode(images)
    preview = model.decode(grids.coarse)
    full = model.decode(grids.coarse, grids.detail)
    assert preview.shape == full.shape == (2, 3, 128, 128)
    assert not torch.equal(preview, full)
    with torch.no_grad():
        rec_full, rec_coarse = model(images)
    torch.testing.assert_close(preview, rec_coarse.clamp(0, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(full, rec_full.clamp(0, 1), atol=1e-4, rtol=0)


def test_eval_mode_is_deterministic_and_an_image_encodes_alike_alone_or_in_a_batch():
    model = tiny_model()
    images = scenes(4)
    a, b = model.encode(images), model.encode(images)
    assert torch.equal(a.coarse, b.coarse) and torch.equal(a.detail, b.detail)
    assert torch.equal(model.decode(a.coarse, a.detail), model.decode(b.coarse, b.detail))
    for i in range(4):  # generator training encodes batches; an edit encodes one image
        alone = model.encode(images[i : i + 1])
        assert torch.equal(alone.coarse[0], a.coarse[i]) and torch.equal(alone.detail[0], a.detail[i]), i


def test_bad_inputs_raise_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="128x128"):
        model.encode(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="coarse ids"):
        model.decode(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        model.decode(torch.full((1, 8, 8), model.coarse_vocab, dtype=torch.long))
    with pytest.raises(TypeError, match=r"uint8 on \[0, 255\] or float on \[0, 1\], not torch.int64"):
        model.encode(torch.zeros(1, 3, 128, 128, dtype=torch.long))


def test_config_geometry_is_validated_and_configurable():
    with pytest.raises(ValueError, match="channels"):
        VQConfig(channels=(32,))
    with pytest.raises(ValueError, match="coarse_grid"):
        VQConfig(coarse_grid=5)
    with pytest.raises(ValueError, match="unknown"):
        VQConfig.from_dict({**TINY.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="not a multiple of patch 0"):  # a damaged header: one line, no traceback
        VQConfig.from_dict({**TINY.to_dict(), "patch": 0})
    assert VQConfig.from_json(TINY.to_json()) == TINY
    # a finer 32x32 detail grid: no stride-2 stage after the stem
    fine = TINY.with_overrides(detail_grid=32, channels=(8,), encoder_blocks=(1,), decoder_blocks=(1,))
    grids = VQTokenizer(fine).eval().encode(scenes(1))
    assert grids.coarse.shape == (1, 8, 8) and grids.detail.shape == (1, 32, 32)


# ---------------------------------------------------------------- loss, metrics, training


def test_psnr_and_edge_loss():
    target = torch.zeros(1, 3, 8, 8)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-3)
    sharp = torch.zeros(1, 1, 8, 8)
    sharp[..., 4:] = 1
    blurred = sharp.clone()
    blurred[..., 3:5] = 0.5
    assert reconstruction_loss(blurred, sharp, edge_weight=1.0) > reconstruction_loss(blurred, sharp, edge_weight=0.0)


def test_pixel_weights_of_one_give_the_plain_loss_and_weighted_pixels_count_that_many_times():
    torch.manual_seed(0)
    output, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    ones = torch.ones(2, 1, 8, 8)
    for edge in (0.0, 1.0):
        assert reconstruction_loss(output, target, edge, ones).item() == pytest.approx(
            reconstruction_loss(output, target, edge).item(), rel=1e-6
        )
    flat, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    flat[..., 0, 0] = 0.5  # one wrong pixel: L1 0.5 + MSE 0.25 in each of 3 channels, over 48 terms
    weight = torch.ones(1, 1, 4, 4)
    weight[..., 0, 0] = 4.0
    assert reconstruction_loss(flat, target, 0.0, weight).item() == pytest.approx(4 * 3 * 0.75 / 48)
    weight[..., 0, 0], weight[..., 3, 3] = 1.0, 4.0  # the weight elsewhere leaves that pixel's cost alone
    assert reconstruction_loss(flat, target, 0.0, weight).item() == pytest.approx(3 * 0.75 / 48)


def test_text_weight_needs_world_scenes_and_trains_on_them(tmp_path):
    from imgen.train_config import ConfigError

    write_folder(tmp_path / "images", 2)
    with pytest.raises(ConfigError, match="--text-weight needs the world's scenes"):
        TokenizerTrainConfig(data=str(tmp_path / "images"), text_weight=4.0).check_can_start()
    with pytest.raises(ConfigError, match="text_weight"):
        TokenizerTrainConfig(text_weight=0.5)
    cfg = TokenizerTrainConfig(
        size="tiny", out_dir=str(tmp_path / "run"), text_weight=4.0, batch_size=4, max_steps=2, warmup_steps=1,
        log_every=1,
    )  # fmt: skip
    train_tokenizer(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert json.loads(records[0]["train_config"])["text_weight"] == 4.0


def test_a_few_dozen_steps_on_a_fixed_batch_lower_the_loss():
    torch.manual_seed(0)
    model = VQTokenizer(TINY).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    images = scenes(4)
    target = images.float() / 255
    losses = []
    for _ in range(40):
        full, coarse = model(images)
        loss = reconstruction_loss(full, target, 1.0) + 0.5 * reconstruction_loss(coarse, target, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def write_folder(folder, n: int) -> None:
    folder.mkdir()
    for i, image in enumerate(scenes(n, size=96, seed=1)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    Image.fromarray(np.zeros((40, 60, 4), dtype=np.uint8)).save(folder / "rgba.webp")


def tiny_folder_run(tmp_path, images: int, max_steps: int, warmup_steps: int = 1) -> TokenizerTrainConfig:
    """A tiny tokenizer run over a folder of `images` written scenes, in tmp_path/run."""
    write_folder(tmp_path / "images", images)
    return TokenizerTrainConfig(
        size="tiny", data=str(tmp_path / "images"), out_dir=str(tmp_path / "run"), batch_size=2,
        max_steps=max_steps, warmup_steps=warmup_steps, log_every=1,
    )  # fmt: skip


def test_folder_batches_are_resized_resumable_and_skip_unreadable_files(tmp_path):
    write_folder(tmp_path / "images", 5)  # 7 files: 5 PNG, 1 WebP, 1 broken
    scan = scan_folder(tmp_path / "images")
    assert len(scan.items) == 6 and [p.name for p, _ in scan.unreadable] == ["broken.png"]
    full = FolderExamples(scan.items, seed=3, size=32).batches(0, 3)
    batches = [next(full) for _ in range(4)]  # past one epoch of 6
    assert all(b.shape == (3, 3, 32, 32) and b.dtype == torch.uint8 for b in batches)
    resumed = FolderExamples(scan.items, seed=3, size=32).batches(6, 3)
    assert torch.equal(next(resumed), batches[2]) and torch.equal(next(resumed), batches[3])


def test_training_writes_metrics_checkpoint_and_resumes_at_the_same_step(tmp_path):
    cfg = tiny_folder_run(tmp_path, 6, max_steps=3)
    last = train_tokenizer(cfg)
    assert last.name == "last.safetensors" and last.exists()
    from imgen.checkpoints import load_tokenizer

    assert load_tokenizer(last).config == TINY
    cfg.max_steps = 5
    train_tokenizer(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]
    resume = next(r for r in records if r.get("event") == "resume")
    assert resume["step"] == 3 and resume["samples"] == next(r["samples"] for r in records if r.get("step") == 3)
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["images_per_s"]) for r in records if "loss" in r)
    assert records[-1]["event"] == "end" and records[-1]["step"] == 5
    assert next(r for r in records if "changed" in r)["changed"] == {"max_steps": [3, 5]}
    logged = (tmp_path / "run" / "metrics.jsonl").read_text()
    for change in ({"seed": 1}, {"edge_weight": 0.5}, {"batch_size": 3}):
        with pytest.raises(ValueError, match=f"other options \\({next(iter(change))} "):
            train_tokenizer(dataclasses.replace(cfg, max_steps=6, **change))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == logged  # refused before any step or record


def test_evaluation_reports_psnr_and_codebook_usage():
    from imgen.tokenizer.train import evaluate_tokenizer

    result = evaluate_tokenizer(tiny_model(), n_scenes=3, batch_size=2)
    assert result["n_scenes"] == 3
    assert 0 < result["coarse_usage"] <= 1 and 0 < result["detail_usage"] <= 1
    assert np.isfinite(result["psnr_full"]) and np.isfinite(result["psnr_coarse"])


def test_two_torchrun_processes_train_the_tokenizer_like_one(tmp_path):
    args = ["train", "tokenizer", "--size", "tiny", "--batch-size", "4", "--max-steps", "6"]
    (tmp_path / "fast.toml").write_text("log_every = 1\nwarmup_steps = 2\n")
    args += ["--config", "fast.toml"]
    imgen(*args, "--out", "one", cwd=tmp_path)
    two = torchrun(2, *args, "--out", "two", cwd=tmp_path)
    assert two.returncode == 0, two.stderr

    def curve(run: str) -> dict[int, float]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}

    assert sorted(curve("one")) == sorted(curve("two")) == list(range(1, 7))
    for step, loss in curve("one").items():
        assert curve("two")[step] == pytest.approx(loss, rel=1e-3), step


def test_a_grown_decoder_decodes_every_grid_as_before_and_cannot_shrink():
    from imgen.tokenizer.growth import deepen_decoder, parse_blocks

    model = trained_tiny_model()
    grids = model.encode(scenes(3))
    grown = deepen_decoder(model, (2, 3)).eval()
    assert grown.config.decoder_blocks == (2, 3) and grown.num_parameters() > model.num_parameters()
    assert torch.equal(grown.encode(scenes(3)).detail, grids.detail)
    torch.testing.assert_close(grown.decode(grids.coarse, grids.detail), model.decode(grids.coarse, grids.detail))
    torch.testing.assert_close(grown.decode(grids.coarse), model.decode(grids.coarse))
    with pytest.raises(ValueError, match="only grow"):
        deepen_decoder(model, (0, 1))
    with pytest.raises(ValueError, match="comma-separated"):
        parse_blocks("two,4")


def test_decoder_only_training_keeps_the_token_ids_and_lowers_the_loss(tmp_path):
    from imgen.checkpoints import load_tokenizer, save_tokenizer

    start = trained_tiny_model()
    save_tokenizer(start, tmp_path / "start.safetensors", {})
    write_folder(tmp_path / "images", 6)
    cfg = TokenizerTrainConfig(
        data=str(tmp_path / "images"), init=str(tmp_path / "start.safetensors"), out_dir=str(tmp_path / "run"),
        decoder_only=True, decoder_blocks="1,2", batch_size=6, max_steps=30, warmup_steps=1, lr=3e-3, log_every=1,
    )  # fmt: skip
    tuned = load_tokenizer(train_tokenizer(cfg)).eval()
    images = scenes(4, seed=5)
    before, after = start.encode(images), tuned.encode(images)
    assert torch.equal(before.coarse, after.coarse) and torch.equal(before.detail, after.detail)
    for name, value in start.encoder.state_dict().items():
        assert torch.equal(value, tuned.encoder.state_dict()[name]), name
    assert token_id_fingerprint(tuned) == token_id_fingerprint(start)  # every generator trained on the ids pairs
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert tuned.config.decoder_blocks == (1, 2)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_the_token_id_fingerprint_covers_every_weight_the_ids_depend_on_and_no_other():
    from imgen.tokenizer.token_ids import token_id_modules

    model = trained_tiny_model()
    images = scenes(4, seed=3)
    grids, fingerprint = model.encode(images), token_id_fingerprint(model)
    inside = {id(p) for module in token_id_modules(model).values() for p in module.parameters()}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) not in inside:
                param.add_(0.05)
    after = model.encode(images)  # nothing outside the fingerprinted layers moves an id
    assert torch.equal(after.coarse, grids.coarse) and torch.equal(after.detail, grids.detail)
    assert token_id_fingerprint(model) == fingerprint
    for name in token_id_modules(model):  # and each fingerprinted layer counts
        changed = copy.deepcopy(model)
        with torch.no_grad():
            next(token_id_modules(changed)[name].parameters()).add_(0.05)
        assert token_id_fingerprint(changed) != fingerprint, name
    assert token_id_fingerprint(model, "bf16").startswith("bf16:") and fingerprint.startswith("fp16:")


def trained_tiny_model() -> VQTokenizer:
    """A tiny tokenizer after a few steps, so its residual blocks are not all still at the identity."""
    torch.manual_seed(0)
    model = VQTokenizer(TINY).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    images = scenes(4)
    target = images.float() / 255
    for _ in range(10):
        full, coarse = model(images)
        loss = reconstruction_loss(full, target, 1.0) + reconstruction_loss(coarse, target, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_a_run_that_keeps_overflowing_stops_without_saving_over_its_last_good_checkpoint(tmp_path, monkeypatch):
    from imgen.training import NonFiniteGuard, TrainingDiverged

    cfg = tiny_folder_run(tmp_path, 6, max_steps=2)
    last = train_tokenizer(cfg)
    good = {name: last.parent.joinpath(name).read_bytes() for name in ("last.safetensors", "state.safetensors")}
    real_clip = torch.nn.utils.clip_grad_norm_

    def always_overflowing(parameters, max_norm):
        parameters = list(parameters)
        for p in parameters:
            p.grad.fill_(float("inf"))
        return real_clip(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", always_overflowing)
    limit = NonFiniteGuard().limit
    with pytest.raises(TrainingDiverged, match=f"{limit} steps in a row"):
        train_tokenizer(dataclasses.replace(cfg, max_steps=2 + 2 * limit))
    for name, content in good.items():
        assert last.parent.joinpath(name).read_bytes() == content, name
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "skipped" for r in records) == limit - 1  # the last one stops the run


def test_the_guard_allows_finite_steps_and_counts_only_a_run_of_bad_ones():
    from imgen.training import NonFiniteGuard, TrainingDiverged

    guard = NonFiniteGuard(limit=3)
    verdicts = [guard.allows(torch.tensor(v)) for v in (1.0, float("nan"), float("inf"), 2.0, float("nan"))]
    assert verdicts == [True, False, False, True, False] and guard.skipped == 3
    guard.allows(torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged):
        guard.allows(torch.tensor(float("-inf")))


def test_coarse_rows_are_the_asked_share_of_the_batch_evenly_spread():
    for fraction, expected in [(0.0, 0), (0.25, 4), (0.4, 6), (0.5, 8), (0.6, 9), (0.75, 12), (1.0, 16)]:
        rows = coarse_rows(16, fraction)
        assert rows.dtype == torch.bool and int(rows.sum()) == expected, fraction
    assert coarse_rows(8, 0.5).tolist() == [False, True] * 4


def test_decoder_only_needs_a_trained_tokenizer_to_keep(tmp_path):
    from imgen.train_config import ConfigError

    with pytest.raises(ConfigError, match="--decoder-only keeps a trained tokenizer's token ids"):
        TokenizerTrainConfig(out_dir=str(tmp_path / "run"), decoder_only=True).check_can_start()


def test_the_quantiser_gives_the_same_ids_under_bf16_autocast_as_in_fp32():
    model = tiny_model()
    width = model.config.channels[-1]
    f = torch.randn(4, width, 16, 16, generator=torch.Generator().manual_seed(0)) * 3
    _, _, coarse, detail = model.quantizer(f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, coarse_bf16, detail_bf16 = model.quantizer(f)
    assert torch.equal(coarse, coarse_bf16) and torch.equal(detail, detail_bf16)


def test_init_from_a_tokenizer_run_folder_starts_from_its_latest_weights(tmp_path):
    from imgen.checkpoints import load_tokenizer
    from imgen.tokenizer.train import initial_tokenizer

    cfg = tiny_folder_run(tmp_path, 4, max_steps=1, warmup_steps=0)
    last = train_tokenizer(cfg)
    started = initial_tokenizer(dataclasses.replace(cfg, init=str(tmp_path / "run"), out_dir=str(tmp_path / "next")))
    saved = load_tokenizer(last).state_dict()
    assert all(torch.equal(value, saved[name]) for name, value in started.state_dict().items())
