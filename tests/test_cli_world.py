"""The `imgen world` commands as a user runs them: files, exit codes, one-line errors."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from imgen.cli import app

runner = CliRunner()


def test_world_render_writes_a_png(tmp_path):
    out = tmp_path / "gt.png"
    result = runner.invoke(app, ["world", "render", 'a red star in the top left and the word "OPEN"', "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (128, 128)
        assert "imgen" in image.info


def test_world_render_256(tmp_path):
    out = tmp_path / "big.png"
    result = runner.invoke(app, ["world", "render", "two dogs", "-o", str(out), "--size", "256"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (256, 256)


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("", "empty"),
        ("21 red circles", "21"),
        ('the word "ABCDEFGHIJKLM"', "13 characters"),
        ('the word "你好"', "unsupported"),
    ],
)
def test_bad_prompts_fail_with_one_line_and_exit_2(tmp_path, prompt, fragment):
    out = tmp_path / "x.png"
    result = runner.invoke(app, ["world", "render", prompt, "-o", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0]
    assert not out.exists()


def test_unknown_words_are_named_in_a_warning(tmp_path):
    result = runner.invoke(app, ["world", "render", "a red circle and a zebra", "-o", str(tmp_path / "z.png")])
    assert result.exit_code == 0 and (tmp_path / "z.png").is_file()
    assert "unknown words ignored: zebra" in result.stderr


def test_existing_output_is_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "gt.png"
    out.write_bytes(b"keep me")
    result = runner.invoke(app, ["world", "render", "a blue circle", "-o", str(out)])
    assert result.exit_code == 2 and "pass --overwrite" in result.stderr
    assert out.read_bytes() == b"keep me"
    result = runner.invoke(app, ["world", "render", "a blue circle", "-o", str(out), "--overwrite"])
    assert result.exit_code == 0
    assert out.read_bytes() != b"keep me"


def test_world_sample_writes_a_grid_and_prints_captions(tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["world", "sample", "-n", "6", "-o", str(out), "--captions", "--columns", "3"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 7
    with Image.open(out) as image:
        assert image.width > 3 * 128


def test_help_of_every_command_group_does_not_import_torch():
    for args in ([], ["world"], ["train"], ["weights"], ["generate"], ["edit"]):
        code = (
            "import sys\nfrom imgen.cli import app\n"
            f"try:\n    app({[*args, '--help']!r})\nexcept SystemExit as done:\n    assert done.code == 0, done.code\n"
            "print('torch' in sys.modules)"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert "Usage" in result.stdout and result.stdout.strip().endswith("False"), (args, result.stdout[-200:])


def _readme_commands(prefix: str) -> list[str]:
    """The README's example command lines that start with `prefix` (comments after `#` dropped)."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    lines = [line.split("  #")[0].strip() for line in readme.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def test_every_world_command_in_the_readme_runs(tmp_path, monkeypatch):
    commands = _readme_commands("imgen world ")
    assert len(commands) >= 4  # the README's world section
    monkeypatch.chdir(tmp_path)
    for command in commands:
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}: {result.output}"
