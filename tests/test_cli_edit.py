"""`imgen edit` and `imgen restyle` at the command line: names, records, refusals, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from imgen.recipe import read_metadata
from tests.cli_runner import run

COMMANDS = {
    "edit": ("edit", "scene.png", "a blue star and a dog", "--mask", "mask.png"),
    "restyle": ("restyle", "scene.png", "a blue star in pixel art style", "--strength", "0.7"),
}


def _scene(folder: Path) -> None:
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "scene.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    mask.save(folder / "mask.png")


@pytest.mark.parametrize("task", list(COMMANDS))
def test_the_default_name_and_record_and_no_overwrite_without_asking(tmp_path: Path, tiny_checkpoint: Path, task: str):
    _scene(tmp_path)
    args = (*COMMANDS[task], "--seed", "3", "--model", str(tiny_checkpoint), "--no-preview")
    made = run(*args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    written = tmp_path / f"scene-{task}-s3.png"
    record = read_metadata(written)
    assert record["task"] == task and record["seed"] == 3 and record["prompt"] == COMMANDS[task][2]
    if task == "restyle":
        assert record["strength"] == 0.7 and record["reference"] == "scene.png"
    else:
        assert record["mask"] == "mask.png" and record["source"] == "scene.png"

    before = written.read_bytes()
    refused = run(*args, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().endswith("exists; pass --overwrite to replace it")
    assert len(refused.stderr.strip().splitlines()) == 1 and written.read_bytes() == before
    again = run(*args, "--overwrite", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert written.read_bytes() == before  # same seed, same image


@pytest.mark.parametrize("task", list(COMMANDS))
def test_an_empty_prompt_and_a_missing_checkpoint_are_one_line_and_leave_nothing(
    tmp_path: Path, tiny_checkpoint: Path, task: str
):
    _scene(tmp_path)
    command, image, _, *rest = COMMANDS[task]
    model = ("--model", str(tiny_checkpoint))
    empty = run(command, image, "  ", *rest, "-o", "out.png", *model, cwd=tmp_path)
    assert empty.returncode == 2 and empty.stderr.strip() == "imgen: error: the prompt is empty"
    missing = run(*COMMANDS[task], "-o", "out.png", "--model", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 3 and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr
    unreadable = run(command, "gone.png", "a cat", *rest, "-o", "new/out.png", *model, cwd=tmp_path)
    assert unreadable.returncode == 2 and "gone.png: no such file" in unreadable.stderr
    jpeg = run(command, image, "a cat", *rest, "-o", "new/out.jpg", *model, cwd=tmp_path)
    assert jpeg.returncode == 2 and "imgen writes PNG files" in jpeg.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "scene.png"]
