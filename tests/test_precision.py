"""Sampling precision: bf16 only where the CPU runs it natively, recorded in the PNG, reproduced from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgen import precision
from imgen.api import load
from imgen.recipe import read_metadata
from tests.cli_runner import imgen


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch, native: bool):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_precision("auto") == ("bf16" if native else "fp32")
    assert precision.resolve_precision("fp32") == "fp32" and precision.resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        precision.resolve_precision("fp16")


@pytest.mark.parametrize(("name", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_generator_runs_in_the_chosen_precision_and_the_tokenizer_stays_fp32(
    tiny_checkpoint: Path, name: str, dtype: torch.dtype
):
    pipe = load(tiny_checkpoint, precision=name)
    assert pipe.precision == name
    assert {p.dtype for p in pipe.generator.parameters()} == {dtype}
    assert {p.dtype for p in pipe.tokenizer.parameters()} == {torch.float32}
    first, again = pipe.generate(["a red circle"], seed=3), pipe.generate(["a red circle"], seed=3)
    assert first[0].size == (pipe.image_size, pipe.image_size) and first[0].tobytes() == again[0].tobytes()
    batch = pipe.generate(["a blue star", "a red circle"], seeds=[9, 3])
    assert batch[1].tobytes() == first[0].tobytes()  # the batch does not change an image


def test_a_bf16_png_records_its_precision_and_from_image_reproduces_it(tmp_path: Path, tiny_checkpoint: Path):
    model = str(tiny_checkpoint)
    imgen("generate", "a red circle", "-o", "bf.png", "--precision", "bf16", "--model", model, cwd=tmp_path)
    assert read_metadata(tmp_path / "bf.png")["precision"] == "bf16"
    imgen("generate", "--from-image", "bf.png", "-o", "again.png", "--model", model, cwd=tmp_path)
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "bf.png").read_bytes()
    imgen("generate", "a red circle", "-o", "fp.png", "--precision", "fp32", "--model", model, cwd=tmp_path)
    assert "precision" not in read_metadata(tmp_path / "fp.png")  # fp32 records read as before


def test_an_unknown_precision_is_one_line_and_exit_code_2(tmp_path: Path, tiny_checkpoint: Path):
    result = imgen("generate", "a red circle", "-o", "x.png", "--precision", "fp16", "--model", str(tiny_checkpoint),
                   cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "imgen: error: unknown precision 'fp16'; choose one of auto, fp32, bf16"
    assert list(tmp_path.iterdir()) == []
