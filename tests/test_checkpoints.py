"""Checkpoint files: exact round trips, config in the header, one-line errors, resumable state, safe loading only."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from imgen.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_tokenizer,
    read_header,
    save_checkpoint,
    save_tokenizer,
)
from imgen.tokenizer import VQ_SIZES, VQConfig, VQTokenizer
from imgen.tokenizer.token_ids import TOKEN_IDS_KEY
from imgen.training import load_training_state, save_training_state
from tests.tiny_checkpoint import with_generator_header

PACKAGE = Path(__file__).resolve().parents[1] / "imgen"


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def trained_like_model(seed: int = 0) -> VQTokenizer:
    """A tiny tokenizer with every weight non-zero, so a missed tensor would change the output."""
    torch.manual_seed(seed)
    model = VQTokenizer(VQ_SIZES["tiny"])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 128, 128), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


@pytest.fixture
def saved(tmp_path) -> tuple[VQTokenizer, Path]:
    model = trained_like_model()
    return model, save_tokenizer(model, tmp_path / "vq.safetensors", {"note": "test"})


def test_save_then_load_gives_identical_tokens_and_pixels(saved):
    model, path = saved
    loaded = load_tokenizer(path)
    x = images()
    a, b = model.encode(x), loaded.encode(x)
    assert torch.equal(a.coarse, b.coarse) and torch.equal(a.detail, b.detail)
    assert torch.equal(model.decode(a.coarse, a.detail), loaded.decode(b.coarse, b.detail))
    assert torch.equal(model.decode(a.coarse), loaded.decode(b.coarse))
    assert not loaded.training


def test_metadata_rebuilds_the_config(saved):
    model, path = saved
    tensors, metadata = load_checkpoint(path)
    assert metadata["kind"] == "imgen-vq" and metadata["format_version"] == "1" and metadata["note"] == "test"
    assert VQConfig.from_json(metadata["config"]) == model.config
    assert set(tensors) == set(model.state_dict())


def test_bf16_bundling_halves_the_file_and_loads_back_close(saved, tmp_path):
    model, path = saved
    small = save_tokenizer(model, tmp_path / "vq16.safetensors", dtype="bf16")
    assert small.stat().st_size < 0.6 * path.stat().st_size
    tensors, _ = load_checkpoint(small)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    loaded = load_tokenizer(small)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = images(1)
    grids = model.encode(x)
    diff = (model.decode(grids.coarse, grids.detail) - loaded.decode(grids.coarse, grids.detail)).abs().max()
    assert diff < 0.05


def _assert_one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_tokenizer(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    error = info.value  # no chained safetensors traceback behind the message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


def test_truncated_file_raises_checkpoint_error(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(path)


def test_corrupted_header_raises_checkpoint_error(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[8:16] = b"#garbage"  # the JSON header starts after the 8-byte length
    path.write_bytes(bytes(data))
    _assert_one_line_error(path)


def test_missing_file_and_folder_raise_checkpoint_error(tmp_path):
    assert "no such" in _assert_one_line_error(tmp_path / "absent.safetensors")
    _assert_one_line_error(tmp_path)


def test_non_safetensors_files_raise_checkpoint_error(tmp_path):
    for name, content in (("text.safetensors", b"hello, I am not a checkpoint\n"), ("empty.safetensors", b"")):
        (tmp_path / name).write_bytes(content)
        _assert_one_line_error(tmp_path / name)


def test_wrong_kind_and_mismatched_weights_raise_checkpoint_error(saved, tmp_path):
    model, _ = saved
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, model.state_dict(), {"kind": "something-else"})
    assert "not an imgen tokenizer" in _assert_one_line_error(other)
    wider = VQ_SIZES["tiny"].with_overrides(channels=(8, 24))
    lying = tmp_path / "lying.safetensors"
    save_checkpoint(lying, model.state_dict(), {"kind": "imgen-vq", "format_version": "1", "config": wider.to_json()})
    assert "do not match" in _assert_one_line_error(lying)
    partial = tmp_path / "partial.safetensors"
    state = dict(model.state_dict())
    state.pop(next(iter(state)))
    save_checkpoint(partial, state, {"kind": "imgen-vq", "format_version": "1", "config": model.config.to_json()})
    assert "missing" in _assert_one_line_error(partial)


def test_writes_are_atomic_and_leave_no_temporary_files(saved, tmp_path, monkeypatch):
    import imgen.checkpoints as checkpoints

    model, path = saved
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, model.state_dict(), {"config": {"not": "a string"}})  # type: ignore[dict-item]
    assert path.read_bytes() == before

    def write_half_then_fail(tensors, filename, metadata=None):  # a disk that fills up mid-write
        Path(filename).write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", write_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_tokenizer(trained_like_model(seed=1), path)
    assert path.read_bytes() == before  # a save that fails while writing never touches the existing file
    assert sorted(os.listdir(tmp_path)) == ["vq.safetensors"]
    monkeypatch.undo()
    save_tokenizer(trained_like_model(seed=1), path)
    assert path.read_bytes() != before
    assert sorted(os.listdir(tmp_path)) == ["vq.safetensors"]


def test_a_save_reaches_the_disk_before_it_replaces_the_old_file(saved, monkeypatch):
    import imgen.durable as durable

    model, path = saved
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(durable.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(durable.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_tokenizer(model, path)
    assert calls[:2] == ["fsync", "replace"]


def test_exporting_a_run_folder_instead_of_its_checkpoint_names_the_checkpoint(tiny_checkpoint, tmp_path):
    import imgen.checkpoints as checkpoints

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run / "checkpoint")
    (run / "state.safetensors").write_bytes((tiny_checkpoint / "generator.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as refused:
        checkpoints.export_checkpoint_folder(run, tmp_path / "out")
    assert "not a checkpoint folder" in str(refused.value)
    assert str(refused.value).endswith(f"the run's checkpoint is {run / 'checkpoint'}")
    assert not (tmp_path / "out").exists()


def _train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    x = images(2)
    for _ in range(steps):
        full, coarse = model(x)
        loss = (full - x.float() / 255).abs().mean() + (coarse - x.float() / 255).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_training_state_round_trip_restores_model_optimizer_and_step(tmp_path):
    torch.manual_seed(0)
    model = VQTokenizer(VQ_SIZES["tiny"]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)
    _train_steps(model, optimizer, 3)
    path = save_training_state(tmp_path / "state.safetensors", model, optimizer, step=3, samples=6, extra={"a": "b"})

    torch.manual_seed(123)
    restored = VQTokenizer(VQ_SIZES["tiny"]).train()
    restored_opt = torch.optim.AdamW(restored.parameters(), lr=5.0)
    assert load_training_state(path, restored, restored_opt) == (3, 6)
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert restored_opt.param_groups[0]["lr"] == 1e-3 and restored_opt.param_groups[0]["betas"] == (0.9, 0.99)
    # the proof that the Adam moments came back: one more step lands on identical weights
    _train_steps(model, optimizer, 1)
    _train_steps(restored, restored_opt, 1)
    for a, b in zip(model.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)
    _, metadata = load_checkpoint(path)
    assert metadata["a"] == "b" and json.loads(metadata["optimizer"])["param_groups"]


def test_training_state_for_another_model_is_rejected(tmp_path):
    model = VQTokenizer(VQ_SIZES["tiny"])
    optimizer = torch.optim.AdamW(model.parameters())
    path = save_training_state(tmp_path / "state.safetensors", model, optimizer, step=0, samples=0)
    other = VQTokenizer(VQ_SIZES["tiny"].with_overrides(channels=(8, 8)))
    with pytest.raises(CheckpointError, match="do not match"):
        load_training_state(path, other, torch.optim.AdamW(other.parameters()))


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
UNSAFE_CALLS = {("torch", "load"), ("torch", "save"), ("jit", "load")}


def test_no_unsafe_deserialisation_anywhere_in_the_package():
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        if "torch.load" in text or "pickle" in text:
            offenders.append(f"{source.name}: mentions torch.load or pickle")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                offenders += [f"{source.name}: import {a.name}" for a in node.names if a.name in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                offenders.append(f"{source.name}: from {node.module} import")
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in UNSAFE_CALLS
            ):
                offenders.append(f"{source.name}: {node.value.id}.{node.attr}")
    assert not offenders, offenders


# ---------------------------------------------------------------- generator headers and pairs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {k: v for k, v in m.items() if k != "config"}, "config in the header is missing or invalid"),
        (lambda m: {**m, "config": json.dumps({**json.loads(m["config"]), "rope": 1})}, "config in the header"),
        (lambda m: {**m, "config": "{not json"}, "config in the header"),
        (lambda m: {**m, "text_tokenizer": "{}"}, "prompt tokenizer in the header"),
        (lambda m: {**m, "format_version": "2"}, "format version '2' is not supported"),
    ],
    ids=["no-config", "unknown-field", "bad-json", "bad-prompt-tokenizer", "newer-format"],
)
def test_a_bad_generator_header_is_one_checkpoint_error(tiny_checkpoint, tmp_path, change, message):
    from imgen.api import load

    folder = with_generator_header(tiny_checkpoint, tmp_path / "bad", change)
    with pytest.raises(CheckpointError) as caught:
        load(folder, precision="fp32")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_tokenizer_from_another_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, load

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / GENERATOR_FILE).write_bytes((tiny_checkpoint / GENERATOR_FILE).read_bytes())
    other = VQ_SIZES["tiny"].with_overrides(detail_levels=(8, 5, 5))  # another detail codebook size
    save_tokenizer(VQTokenizer(other), mixed / TOKENIZER_FILE)
    with pytest.raises(CheckpointError, match="does not match the generator"):
        load(mixed, precision="fp32")
    load(tiny_checkpoint, precision="fp32")  # the pair it was saved with loads


def test_a_tokenizer_of_the_same_size_trained_apart_is_refused_and_one_with_a_retrained_decoder_pairs(
    tiny_checkpoint, tmp_path
):
    from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, load
    from imgen.checkpoints import export_checkpoint_folder

    def folder_with(name: str, tokenizer: VQTokenizer, generator_folder: Path = tiny_checkpoint) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / GENERATOR_FILE).write_bytes((generator_folder / GENERATOR_FILE).read_bytes())
        save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
        return folder

    torch.manual_seed(1)
    apart = VQTokenizer(VQ_SIZES["tiny"])  # the same sizes, other weights: other ids for the same pictures
    with pytest.raises(CheckpointError, match="not the one the generator was trained with") as caught:
        load(folder_with("apart", apart), precision="fp32")
    assert "\n" not in str(caught.value)

    retrained = load_tokenizer(tiny_checkpoint / TOKENIZER_FILE)
    with torch.no_grad():  # what a decoder-only run changes: the pictures the ids decode to, not the ids
        for param in retrained.decoder.parameters():
            param.add_(0.01)
    load(folder_with("decoder", retrained), precision="fp32")
    for dtype in ("fp16", "bf16"):  # an export records its tokenizer at the precision it stores it in
        exported = export_checkpoint_folder(tiny_checkpoint, tmp_path / dtype, dtype=dtype)
        assert read_header(exported / GENERATOR_FILE)[TOKEN_IDS_KEY].startswith(f"{dtype}:")
        load(exported, precision="fp32")
    with pytest.raises(CheckpointError, match="would pin a mismatched pair"):
        export_checkpoint_folder(folder_with("apart-again", apart), tmp_path / "never", dtype="bf16")

    def without_fingerprint(metadata: dict) -> dict:
        return {k: v for k, v in metadata.items() if k != TOKEN_IDS_KEY}

    unrecorded = with_generator_header(tiny_checkpoint, tmp_path / "old", without_fingerprint)
    load(folder_with("old-apart", apart, unrecorded), precision="fp32")  # saved before the fingerprint: sizes alone


def test_an_export_that_fails_part_way_leaves_the_old_checkpoint_whole(tiny_checkpoint, tmp_path, monkeypatch):
    import imgen.checkpoints as checkpoints

    out = tmp_path / "out"
    checkpoints.export_checkpoint_folder(tiny_checkpoint, out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    real_save, calls = checkpoints.save_checkpoint, []

    def fail_on_the_second_file(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save_checkpoint", fail_on_the_second_file)
    with pytest.raises(OSError, match="No space"):
        checkpoints.export_checkpoint_folder(tiny_checkpoint, out, dtype="bf16", overwrite=True)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # neither file replaced, nothing left over


def test_a_plain_generator_header_names_only_the_fields_readers_before_the_reference_input_know():
    from dataclasses import replace

    from imgen.model import GPTConfig

    plain = GPTConfig(text_vocab=50, coarse_vocab=30, detail_vocab=40)
    assert "reference_input" not in json.loads(plain.to_json())  # such readers refuse unknown fields
    assert GPTConfig.from_json(plain.to_json()) == plain
    assert "detail_reference_input" not in json.loads(plain.to_json())
    paired = replace(plain, reference_input=True)
    assert json.loads(paired.to_json())["reference_input"] is True and GPTConfig.from_json(paired.to_json()) == paired
    assert "detail_reference_input" not in json.loads(paired.to_json())  # what the previous release reads
    both = replace(paired, detail_reference_input=True)
    assert json.loads(both.to_json())["detail_reference_input"] is True and GPTConfig.from_json(both.to_json()) == both
