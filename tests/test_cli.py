"""The command line as a whole: lazy imports and the main error paths of `imgen generate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_runner import ENV, run
from tests.tiny_checkpoint import with_generator_header


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, imgen.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_empty_prompt_is_one_line_and_exit_code_2(tmp_path: Path, tiny_checkpoint: Path):
    result = run("generate", "  ", "-o", "x.png", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "imgen: error: the prompt is empty"
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint_exits_3_without_output(tmp_path: Path):
    result = run("generate", "a red circle", "-o", "x.png", "--model", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1 and "no checkpoint" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_corrupt_checkpoint_exits_3_with_one_line(tmp_path: Path, tiny_checkpoint: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in tiny_checkpoint.iterdir():
        data = file.read_bytes()
        (broken / file.name).write_bytes(data[: len(data) // 2])
    result = run("generate", "a red circle", "-o", "x.png", "--model", str(broken), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_unwritable_output_folder_is_a_clear_error_and_leaves_nothing(tmp_path: Path, tiny_checkpoint: Path):
    target = tmp_path / "missing-folder" / "sub"
    target.parent.write_text("a file where a folder should be")
    result = run("generate", "a red circle", "-o", str(target / "x.png"), "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "cannot write into" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["missing-folder"]


def test_generate_writes_a_png_with_metadata(tmp_path: Path, tiny_checkpoint: Path):
    result = run("generate", "a red circle", "-o", "x.png", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = run("info", "x.png", cwd=tmp_path)
    assert info.returncode == 0 and '"prompt": "a red circle"' in info.stdout


def test_export_halves_a_checkpoint_that_still_generates(tmp_path: Path, tiny_checkpoint: Path):
    out = tmp_path / "half"
    result = run("train", "export", str(tiny_checkpoint), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for file in tiny_checkpoint.iterdir():
        assert (out / file.name).stat().st_size < 0.6 * file.stat().st_size
    made = run("generate", "a red circle", "-o", "x.png", "--model", str(out), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    again = run("train", "export", str(tiny_checkpoint), "--out", str(out), "--dtype", "bf16", cwd=tmp_path)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr, again.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    replaced = run("train", "export", str(tiny_checkpoint), "--out", str(out), "--dtype", "bf16", "--overwrite",
                   cwd=tmp_path)  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(f.name for f in out.iterdir()) == sorted(before)  # no staging folder left behind
    assert {f.name: f.read_bytes() for f in out.iterdir()} != before


def test_the_bundled_checkpoint_verifies_against_weights_lock(tmp_path: Path):
    result = run("weights", "verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_bundled_checkpoint_generates_offline(tmp_path: Path):
    env = {**ENV, "HF_HUB_OFFLINE": "1"}
    result = run("generate", "a red circle in the top left", "-o", "x.png", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "x.png") as image:
        assert image.size == (128, 128)


def test_the_edit_command_blends_as_the_library_does_by_default():
    import inspect

    from imgen.cli import edit_command
    from imgen.editing import DEFAULT_FEATHER, edit

    command = inspect.signature(edit_command).parameters
    library = inspect.signature(edit).parameters
    assert command["feather"].default == library["feather"].default == DEFAULT_FEATHER
    assert command["seamless"].default is library["seamless"].default is True


def test_the_sampling_commands_state_the_sampler_defaults_in_their_help():
    import inspect
    import re

    from imgen.cli import eval_command, generate
    from imgen.sampler import SamplerConfig

    defaults = SamplerConfig()
    for command in (generate, eval_command):
        stated = {}
        for name, parameter in inspect.signature(command, eval_str=True).parameters.items():
            for option in getattr(parameter.annotation, "__metadata__", ()):
                found = re.search(r"\[default: ([^\]]+)\]", getattr(option, "help", None) or "")
                if found:
                    stated["mode" if name == "sampler" else name] = found.group(1)
        expected = {"cfg", "detail_cfg", "temperature", "detail_temperature", "coarse_steps", "detail_window"}
        assert expected <= set(stated), command.__name__
        for name, text in stated.items():
            assert text == str(getattr(defaults, name)), (command.__name__, name)


def test_growing_the_tokenizer_decoder_needs_a_start_and_cannot_shrink(tmp_path: Path, tiny_checkpoint: Path):
    out = tmp_path / "run"
    alone = run("train", "tokenizer", "--decoder-blocks", "2,4", "--out", str(out), cwd=tmp_path)
    assert alone.returncode == 2 and "--init" in alone.stderr and len(alone.stderr.strip().splitlines()) == 1
    shrink = run(
        "train", "tokenizer", "--init", str(tiny_checkpoint), "--decoder-only", "--decoder-blocks", "0,0",
        "--out", str(out), "--max-steps", "1", cwd=tmp_path,
    )  # fmt: skip
    assert shrink.returncode == 2 and "only grow" in shrink.stderr and len(shrink.stderr.strip().splitlines()) == 1
    assert not out.exists()  # a run that cannot start leaves no folder


def test_a_generator_header_without_config_exits_3_with_one_line(tmp_path: Path, tiny_checkpoint: Path):
    broken = with_generator_header(
        tiny_checkpoint, tmp_path / "broken", lambda metadata: {k: v for k, v in metadata.items() if k != "config"}
    )
    result = run("generate", "a red circle", "-o", "x.png", "--model", str(broken), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "config" in result.stderr
    assert not (tmp_path / "x.png").exists()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels: enough for a reader to judge its size before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_edit_refuses_bad_inputs_with_one_line_exit_2_and_no_output(tmp_path: Path, tiny_checkpoint: Path):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "scene.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "black.png")
    small = Image.new("L", (32, 32), 0)
    small.paste(255, (8, 8, 16, 16))
    small.save(tmp_path / "small.png")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "scene.png").read_bytes()[:60])
    (tmp_path / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    cases = {
        ("scene.png", "small.png"): "--resize-mask",
        ("scene.png", "black.png"): "nothing to edit",
        ("notes.png", "black.png"): "not a readable image",
        ("cut.png", "black.png"): "not a readable image",
        ("bomb.png", "black.png"): "too large",
    }
    for (image, mask), message in cases.items():
        result = run("edit", image, "a blue star", "--mask", mask, "-o", "out.png",
                     "--model", str(tiny_checkpoint), "--no-preview", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2, (image, mask, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
        assert not (tmp_path / "out.png").exists()


def test_a_prompt_longer_than_the_checkpoint_reads_is_warned_about(tmp_path: Path, tiny_checkpoint: Path):
    prompt = 'two red stars above a blue car, the word "HELLO" at the bottom, a yellow sun in the top right at night'
    result = run("generate", prompt, "-o", "x.png", "--model", str(tiny_checkpoint), "--no-preview", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the prompt is longer than this checkpoint reads (24 tokens); ignored: 'top right at night'" in result.stderr
    short = run("generate", "a red star", "-o", "y.png", "--model", str(tiny_checkpoint), "--no-preview", cwd=tmp_path)
    assert short.returncode == 0 and "longer than" not in short.stderr


def test_edit_makes_its_output_folder_and_fails_early_where_it_cannot(tmp_path: Path, tiny_checkpoint: Path):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "scene.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    mask.save(tmp_path / "mask.png")
    (tmp_path / "taken").write_text("a file where a folder should be")
    args = ("edit", "scene.png", "a blue star", "--mask", "mask.png", "--model", str(tiny_checkpoint), "--no-preview")
    blocked = run(*args, "-o", "taken/out.png", cwd=tmp_path)
    assert blocked.returncode == 2 and "cannot write into taken" in blocked.stderr, blocked.stderr
    made = run(*args, "-o", "new/sub/out.png", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "new" / "sub" / "out.png").is_file()


def test_eval_and_plot_refuse_an_output_they_cannot_write_in_one_line(tmp_path: Path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    evaluated = run("eval", "--out", "taken/sub", "--model", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert evaluated.returncode == 2 and "cannot write into taken/sub" in evaluated.stderr, evaluated.stderr
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    plotted = run("train", "plot", "run", "-o", "taken/loss.png", cwd=tmp_path)
    assert plotted.returncode == 2 and "cannot write into taken" in plotted.stderr, plotted.stderr
    assert len(plotted.stderr.strip().splitlines()) == 1
    again = run("train", "plot", "run", "-o", "plots/loss.png", cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "plots" / "loss.png").is_file(), again.stderr


def test_usage_errors_are_reported_by_click_with_exit_2_and_no_traceback(tmp_path: Path):
    for args, message in ((["--bogus"], "No such option: --bogus"), (["generate", "--cfg", "x", "a"], "'--cfg'")):
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_training_output_that_cannot_be_a_folder_is_one_line_not_a_traceback(tmp_path: Path):
    (tmp_path / "taken").write_text("a file where the run folder should go")
    result = run("train", "tokenizer", "--size", "tiny", "--out", "taken", "--max-steps", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"imgen: error: taken: {os.strerror(17)}"]  # EEXIST


def test_exporting_a_run_folder_is_refused_and_names_its_checkpoint(tmp_path: Path, tiny_checkpoint: Path):
    import shutil

    shutil.copytree(tiny_checkpoint, tmp_path / "run" / "checkpoint")
    result = run("train", "export", "run", "--out", "release", cwd=tmp_path)
    assert result.returncode == 3 and "the run's checkpoint is run/checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "release").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a cat", "--prompts", "p.txt"), "give a prompt or --prompts, not both"),
        ((), "no prompt: give one, or --prompts FILE, or --from-image PNG"),
        (("--prompts", "missing.txt"), "missing.txt: no such prompt file"),
        (("--prompts", "latin1.txt"), "latin1.txt: not UTF-8 text"),
        (("--from-image", "plain.png"), "plain.png"),
    ],
)
def test_generate_refuses_bad_prompt_sources_in_one_line(tmp_path: Path, tiny_checkpoint: Path, args, message: str):
    (tmp_path / "p.txt").write_text("a cat\n")
    (tmp_path / "latin1.txt").write_bytes("a caf\xe9\n".encode("latin-1"))
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    result = run("generate", *args, "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.txt", "p.txt", "plain.png"]


def test_info_refuses_a_missing_file_and_a_png_not_written_by_imgen(tmp_path: Path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    for name, message in (("gone.png", "gone.png: no such file"), ("plain.png", "not a PNG written by imgen")):
        result = run("info", name, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tokenizer", "--size", "huge"), "unknown size 'huge'"),
        (("tokenizer", "--data", "nowhere"), "nowhere: not a folder"),
        (("generator", "--init", "default", "--size", "huge"), "unknown size 'huge'"),
        (("generator",), "give the image tokenizer (--tokenizer FILE) or a checkpoint"),
        (("generator", "--tokenizer", "missing.safetensors"), "missing.safetensors: no such tokenizer checkpoint"),
        (("generator", "--init", "default", "--data", "nowhere"), "nowhere: not a folder"),
    ],
)
def test_training_that_cannot_start_says_why_in_one_line_and_leaves_no_folder(tmp_path: Path, args, message: str):
    result = run("train", *args, "--out", "run", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_export_refuses_an_unknown_dtype(tmp_path: Path, tiny_checkpoint: Path):
    result = run("train", "export", str(tiny_checkpoint), "--out", "half", "--dtype", "fp8", cwd=tmp_path)
    assert result.returncode == 2 and "unknown dtype 'fp8'; choose fp16 or bf16" in result.stderr
    assert not (tmp_path / "half").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "x", "seed": "abc", "sampler": {}}, "recorded seed is 'abc', not a int"),
        ({"prompt": "x", "seed": 1, "sampler": "junk"}, "sampler settings are not a table"),
        ({"prompt": 5, "seed": 1, "sampler": {}}, "recorded prompt is 5, not a str"),
        ({"prompt": "x", "seed": True, "sampler": {}}, "recorded seed is True"),
    ],
)
def test_a_png_whose_record_has_the_wrong_types_is_refused_in_one_line(tmp_path: Path, record: dict, message: str):
    from imgen.io import save_png

    save_png(Image.new("RGB", (8, 8)), tmp_path / "odd.png", metadata=record)
    result = run("generate", "--from-image", "odd.png", "--no-preview", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("*-s*.png"))


def test_a_recorded_checkpoint_that_is_gone_is_refused_naming_the_png(tmp_path: Path):
    from imgen.io import save_png

    save_png(
        Image.new("RGB", (8, 8)),
        tmp_path / "old.png",
        metadata={"prompt": "x", "seed": 1, "sampler": {}, "model": "gone-dir"},
    )
    result = run("generate", "--from-image", "old.png", "--no-preview", "-o", "x.png", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "old.png records it; pass --model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_generate_refuses_a_model_that_names_nothing_without_importing_torch(tmp_path: Path):
    script = (
        "import sys; sys.modules['torch'] = None; from imgen.cli import main; "  # any `import torch` now fails
        "sys.argv = ['imgen', 'generate', 'a red circle', '--model', 'nowhere', '--no-preview']; main()"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "nowhere" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_internal_error_exits_70_in_one_line_and_shows_its_traceback_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import imgen.recipe
    from imgen.cli import main

    def broken(path):
        raise RuntimeError("a defect")

    monkeypatch.setattr(imgen.recipe, "read_metadata", broken)
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    monkeypatch.setattr(sys, "argv", ["imgen", "info", str(tmp_path / "plain.png")])
    monkeypatch.delenv("IMGEN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 70 and err.strip().splitlines() == [
        "imgen: internal error: RuntimeError: a defect (run with IMGEN_DEBUG=1 for the traceback)"
    ]
    monkeypatch.setenv("IMGEN_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a defect"):
        main()


@pytest.mark.parametrize("command", ["generator", "tokenizer"])
def test_warmup_steps_is_a_flag_that_wins_over_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
):
    from typer.testing import CliRunner

    import imgen.cli

    runs = []
    monkeypatch.setattr(imgen.cli, "_run_training", lambda train, run: runs.append(run))
    (tmp_path / "run.toml").write_text("warmup_steps = 5\n")
    start = ["train", command, "--init", "default", "--out", str(tmp_path / "out")]
    for extra, expected in (([], 200), (["--config", str(tmp_path / "run.toml")], 5)):
        for flag in ([], ["--warmup-steps", "7"]):
            result = CliRunner().invoke(imgen.cli.app, [*start, *extra, *flag])
            assert result.exit_code == 0, result.output
            assert runs[-1].warmup_steps == (7 if flag else expected)


def test_version_prints_the_package_version_and_exits_0(tmp_path: Path):
    import imgen

    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"imgen {imgen.__version__}"
