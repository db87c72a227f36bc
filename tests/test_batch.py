"""Batches from shell scripts: prompt files, resume after kills, --from-image, torchrun sharding."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from imgen.batch import (
    PromptFileError,
    PromptLine,
    auto_batch_size,
    batches_of,
    generate_batch,
    plan_jobs,
    read_prompt_lines,
    sampling_threads,
    shard,
)
from imgen.outputs import single_output, slugify
from imgen.recipe import Recipe, read_metadata, request_from, sampler_from_metadata
from imgen.sampler import SamplerConfig
from tests.cli_runner import ENV, imgen, restore_ctrl_c, torchrun


def test_prompt_files_accept_plain_lines_comments_and_json_lines():
    text = '# a comment\n\na red circle\n{"prompt": "a cat", "seed": 5, "n": 2, "cfg": 2.5, "name": "cat"}\n'
    lines = read_prompt_lines(text)
    assert lines == [PromptLine("a red circle"), PromptLine("a cat", seed=5, n=2, cfg=2.5, name="cat")]
    # a file saved with a byte-order mark: its first line is still a comment or a JSON line
    assert read_prompt_lines("\ufeff" + text) == lines
    assert read_prompt_lines('\ufeff{"prompt": "a dog", "seed": 2}') == [PromptLine("a dog", seed=2)]
    jobs = plan_jobs(lines, base_seed=10, sampler=SamplerConfig())
    assert [(j.prompt, j.seed, j.sampler.cfg, j.path.name) for j in jobs] == [
        ("a red circle", 10, 3.0, "a-red-circle-s10.png"),
        ("a cat", 5, 2.5, "cat-0.png"),
        ("a cat", 6, 2.5, "cat-1.png"),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"prompt": "a cat", "colour": 1}', "unknown field"),
        ('{"prompt": ""}', "'prompt'"),
        ('{"prompt": "a cat", "n": 0}', "'n'"),
        ('{"prompt": "a cat", "n": true}', "'n'"),
        ('{"prompt": "a cat", "seed": true}', "'seed'"),
        ('{"prompt": "a cat", "cfg": false}', "'cfg'"),
        ("{not json", "not valid JSON"),
        ("# only a comment\n", "no prompts"),
    ],
)
def test_bad_prompt_file_lines_name_the_line(text: str, fragment: str):
    with pytest.raises(PromptFileError, match=fragment):
        read_prompt_lines(text, "p.txt")


def test_two_jobs_writing_one_file_is_refused():
    with pytest.raises(PromptFileError, match="both be written"):
        plan_jobs([PromptLine("a cat"), PromptLine("a cat")], 0, SamplerConfig(), pattern="{slug}.png")


def test_a_seed_outside_what_torch_takes_is_refused_before_any_work():
    last = plan_jobs([PromptLine("a cat", seed=2**64 - 2)], 0, SamplerConfig(), count=2)
    assert [job.seed for job in last] == [2**64 - 2, 2**64 - 1]  # the last seed torch takes
    with pytest.raises(PromptFileError, match=r"image 2 \('a cat'\): seed 18446744073709551616 is out of range"):
        plan_jobs([PromptLine("a cat", seed=2**64 - 2)], 0, SamplerConfig(), count=3)
    with pytest.raises(PromptFileError, match="out of range"):
        plan_jobs([PromptLine("a cat")], -(2**63) - 1, SamplerConfig())


@pytest.mark.parametrize("pattern", ["{name}.png", "{0}.png", "{seed:q}.png", "{slug.x}.png"])
def test_an_output_pattern_with_an_unknown_placeholder_names_the_ones_there_are(pattern: str):
    with pytest.raises(ValueError, match=r"placeholders are \{index\}, \{seed\} and \{slug\}"):
        plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern=pattern)


def test_output_patterns_fill_in_and_a_plain_name_is_numbered():
    jobs = plan_jobs([PromptLine("a red cat")], 5, SamplerConfig(), pattern="out/{slug}-{seed}-{index}.png", count=2)
    assert [str(job.path) for job in jobs] == ["out/a-red-cat-5-0.png", "out/a-red-cat-6-1.png"]
    numbered = plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern="x.png", count=3)
    assert [job.path.name for job in numbered] == ["x-0.png", "x-1.png", "x-2.png"]
    assert [j.path.name for j in plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern="x.png")] == ["x.png"]


def test_an_output_naming_a_folder_gets_the_default_names_and_other_formats_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    for pattern in ("existing", "new/"):
        jobs = plan_jobs([PromptLine("a cat")], 3, SamplerConfig(), pattern=pattern, count=2)
        assert [job.path for job in jobs] == [Path(pattern) / "a-cat-s3.png", Path(pattern) / "a-cat-s4.png"]
    assert plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern="plain")[0].path == Path("plain.png")
    assert plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern="cat v1.0")[0].path == Path("cat v1.0.png")
    assert single_output("fresh/", "x-edit-s0.png") == Path("fresh") / "x-edit-s0.png"
    for pattern in ("a.jpg", "{slug}.webp"):
        with pytest.raises(ValueError, match="imgen writes PNG files"):
            plan_jobs([PromptLine("a cat")], 0, SamplerConfig(), pattern=pattern)
    assert single_output(tmp_path / "existing", "x-edit-s0.png") == tmp_path / "existing" / "x-edit-s0.png"
    assert single_output(Path("y.PNG"), "x-edit-s0.png") == Path("y.PNG")
    with pytest.raises(ValueError, match=r"name the output \.png"):
        single_output(Path("y.jpg"), "x-edit-s0.png")


def test_the_library_batch_writes_the_planned_files_and_a_second_call_skips_them(tmp_path: Path, tiny_checkpoint: Path):
    request = request_from(None, seed=7, model=str(tiny_checkpoint), precision="fp32")
    seen = []
    first = generate_batch(
        request, [PromptLine("a cat")], out_dir=tmp_path, count=2, on_loaded=lambda p, j: seen.append(j)
    )
    assert [r.status for r in first] == ["written", "written"] and len(seen[0]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-cat-s7.png", "a-cat-s8.png"]
    respelled = dataclasses.replace(request, model=f"{tiny_checkpoint}/.")  # the same checkpoint, named otherwise
    again = generate_batch(respelled, [PromptLine("a cat")], out_dir=tmp_path, count=2)
    assert [r.status for r in again] == ["skipped", "skipped"]
    with pytest.raises(ValueError, match="imgen writes PNG"):
        generate_batch(request, [PromptLine("a cat")], output=str(tmp_path / "x.jpg"))


def test_a_retrained_decoder_under_the_same_generator_makes_written_images_out_of_date(
    tmp_path: Path, tiny_checkpoint: Path
):
    import shutil

    import torch

    from imgen.checkpoints import load_tokenizer, save_tokenizer
    from imgen.io import save_png

    retrained = tmp_path / "retrained"
    shutil.copytree(tiny_checkpoint, retrained)
    tokenizer = load_tokenizer(retrained / "tokenizer.safetensors")
    with torch.no_grad():  # what a decoder-only run changes: the pixels of the same token ids
        next(p for n, p in tokenizer.named_parameters() if n.startswith("decoder")).add_(0.01)
    save_tokenizer(tokenizer, retrained / "tokenizer.safetensors")
    out = tmp_path / "out"
    request = request_from(None, seed=7, model=str(tiny_checkpoint), precision="fp32")
    written = generate_batch(request, [PromptLine("a cat")], out_dir=out)
    assert read_metadata(written[0].job.path)["tokenizer_sha256"]
    newer = dataclasses.replace(request, model=str(retrained))
    assert [r.status for r in generate_batch(newer, [PromptLine("a cat")], out_dir=out)] == ["failed"]
    assert [r.status for r in generate_batch(newer, [PromptLine("a cat")], out_dir=out, overwrite=True)] == ["written"]
    path = written[0].job.path  # an image written before tokenizer digests were recorded: judged by the generator
    record = read_metadata(path)
    del record["tokenizer_sha256"]
    save_png(Image.open(path), path, overwrite=True, metadata=record)
    assert [r.status for r in generate_batch(request, [PromptLine("a cat")], out_dir=out)] == ["skipped"]


def test_shards_cover_every_job_exactly_once():
    jobs = plan_jobs([PromptLine(f"{i} cats") for i in range(1, 12)], 0, SamplerConfig())
    parts = [shard(jobs, rank, 3) for rank in range(3)]
    assert sorted(j.index for part in parts for j in part) == list(range(11))


def test_killed_runs_resume_to_exactly_the_planned_images(tmp_path: Path, tiny_checkpoint: Path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "\n".join(f"{['a red', 'a blue', 'a green', 'a pink'][i % 4]} star number {i}" for i in range(40))
    )
    command = [sys.executable, "-m", "imgen", "generate", "--prompts", str(prompts), "--out-dir", "out", "-n", "10"]
    command += ["--model", str(tiny_checkpoint), "--json", "--threads", "1"]
    out = tmp_path / "out"
    for target in (10, 60, 110):  # each run is killed once it has added images, far from the 400 planned
        process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while len(list(out.glob("*.png"))) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(list(out.glob("*.png"))) >= target, f"setup: {target} images not made within 300 s"
    before = len(list(out.glob("*.png")))
    assert 110 <= before < 400  # the last kill landed in the middle of the run
    final = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    records = [json.loads(line) for line in final.stdout.splitlines()]
    assert len({(r["prompt"], r["seed"]) for r in records}) == len(records) == 400
    statuses = [r["status"] for r in records]
    assert statuses.count("skipped") == before and statuses.count("written") == 400 - before
    files = sorted(out.iterdir())
    assert len(files) == 400 and all(f.suffix == ".png" for f in files)
    for file in files:
        with Image.open(file) as image:
            image.load()
            assert image.size == (128, 128)
        record = read_metadata(file)
        assert file.name == f"{slugify(record['prompt'])}-s{record['seed']}.png"  # each file holds its own image


def test_from_image_reproduces_images_of_a_batch_byte_for_byte(tmp_path: Path, tiny_checkpoint: Path):
    model = str(tiny_checkpoint)
    imgen("generate", "two yellow hearts", "-n", "12", "--batch-size", "6", "--seed", "100", "--out-dir", "batch",
          "--model", model, cwd=tmp_path)  # fmt: skip
    files = sorted((tmp_path / "batch").iterdir())
    assert len(files) == 12
    for file in (files[0], files[5], files[6], files[11]):  # first and last of each batch of 6
        again = tmp_path / f"again-{file.name}"
        imgen("generate", "--from-image", str(file), "-o", str(again), "--model", model, cwd=tmp_path)
        assert again.read_bytes() == file.read_bytes()


def test_from_image_names_the_image_when_its_recorded_checkpoint_is_not_here(tmp_path: Path, tiny_checkpoint: Path):
    import shutil

    shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    made = tmp_path / "made.png"
    imgen("generate", "a red circle", "-o", str(made), "--model", "ckpt", cwd=tmp_path)  # recorded as "ckpt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = imgen("generate", "--from-image", str(made), "-o", "again.png", cwd=elsewhere, check=False)
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(made) in result.stderr and "--model" in result.stderr
    assert not (elsewhere / "again.png").exists()
    imgen("generate", "--from-image", str(made), "-o", "again.png", "--model", "../ckpt", cwd=elsewhere)
    with Image.open(made) as first, Image.open(elsewhere / "again.png") as second:
        assert first.tobytes() == second.tobytes()
    assert read_metadata(elsewhere / "again.png")["model"] == "../ckpt"


def test_batches_are_cut_evenly_and_never_mix_sampler_settings():
    jobs = plan_jobs([PromptLine("a cat", n=9), PromptLine("a dog", n=3, cfg=2.0)], 0, SamplerConfig())
    groups = batches_of(jobs, 8)
    assert [len(g) for g in groups] == [5, 4, 3]
    assert [j for g in groups for j in g] == jobs
    assert all(j.sampler == g[0].sampler for g in groups for j in g)
    assert groups[0][0].sampler != groups[2][0].sampler
    assert [len(g) for g in batches_of(jobs, 1)] == [1] * 12


def test_several_images_by_default_share_the_cores_and_match_images_made_one_at_a_time(
    tmp_path: Path, tiny_checkpoint: Path
):
    model = str(tiny_checkpoint)
    common = ["generate", "a red circle", "-n", "5", "--seed", "3", "--model", model]
    imgen(*common, "--threads", "2", "--out-dir", "auto", cwd=tmp_path)  # batch of 5, two shards
    imgen(*common, "--batch-size", "1", "--out-dir", "single", cwd=tmp_path)
    auto, single = sorted((tmp_path / "auto").iterdir()), sorted((tmp_path / "single").iterdir())
    assert [f.name for f in auto] == [f.name for f in single] and len(auto) == 5
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(auto, single, strict=True))


def test_ctrl_c_during_a_sharded_batch_exits_130_and_leaves_only_whole_images(tmp_path: Path, tiny_checkpoint: Path):
    # far more images than a tiny model makes before a starved test process gets to send the signal
    colours, shapes = ("red", "blue", "green", "yellow", "orange", "purple"), ("circle", "square", "star", "heart")
    (tmp_path / "prompts.txt").write_text("".join(f"a {c} {s}\n" for c in colours for s in shapes))
    command = [sys.executable, "-m", "imgen", "generate", "--prompts", "prompts.txt", "-n", "1000", "--threads", "2"]
    command += ["--out-dir", "out", "--model", str(tiny_checkpoint)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=restore_ctrl_c
    )
    out = tmp_path / "out"
    deadline = time.monotonic() + 120
    while not (out.exists() and any(out.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.1)  # interrupt once images are being made, in the middle of a batch
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "imgen: interrupted"  # said in one line, no traceback
    assert "Traceback" not in stderr.decode()
    files = list(out.iterdir())
    assert 0 < len(files) < 24 * 1000 and all(f.suffix == ".png" for f in files)
    for file in files:
        with Image.open(file) as image:
            image.load()


def test_an_empty_file_left_where_an_image_was_being_written_is_made_again(tmp_path: Path, tiny_checkpoint: Path):
    common = ["generate", "a red circle", "-n", "2", "--out-dir", "out", "--model", str(tiny_checkpoint)]
    imgen(*common, cwd=tmp_path)
    _, second = sorted((tmp_path / "out").iterdir())
    made = second.read_bytes()
    second.write_bytes(b"")  # what a power cut can leave of a file being written
    result = imgen(*common, "--json", cwd=tmp_path)
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses == ["skipped", "written"] and second.read_bytes() == made


def test_an_existing_file_with_other_settings_is_not_overwritten(tmp_path: Path, tiny_checkpoint: Path):
    model = str(tiny_checkpoint)
    imgen("generate", "a red circle", "-o", "x.png", "--model", model, cwd=tmp_path)
    before = (tmp_path / "x.png").read_bytes()
    result = imgen("generate", "a blue circle", "-o", "x.png", "--model", model, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "--overwrite" in result.stderr and "no image was written" in result.stderr
    assert (tmp_path / "x.png").read_bytes() == before
    imgen("generate", "a blue circle", "-o", "x.png", "--model", model, "--overwrite", cwd=tmp_path)
    assert read_metadata(tmp_path / "x.png")["prompt"] == "a blue circle"


def test_a_batch_where_some_images_fail_exits_1_and_makes_the_others(tmp_path: Path, tiny_checkpoint: Path):
    common = ["generate", "a red circle", "-n", "3", "--out-dir", "out", "--model", str(tiny_checkpoint)]
    imgen(*common, cwd=tmp_path)
    first, second, third = sorted((tmp_path / "out").iterdir())
    imgen("generate", "a blue circle", "-o", str(second), "--model", str(tiny_checkpoint), "--overwrite", cwd=tmp_path)
    theirs = second.read_bytes()  # now an image of other settings, which a rerun must not replace
    first.unlink()
    result = imgen(*common, "--json", cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr
    statuses = {Path(r["path"]).name: r["status"] for r in map(json.loads, result.stdout.splitlines())}
    assert statuses == {first.name: "written", second.name: "failed", third.name: "skipped"}
    assert second.read_bytes() == theirs and first.is_file() and third.is_file()


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(tmp_path: Path, tiny_checkpoint: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".a-red-circle-s0.png.abc123.tmp").write_bytes(b"half a png")
    (tmp_path / "out" / ".notes.tmp").write_bytes(b"not ours")
    imgen("generate", "a red circle", "--out-dir", "out", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".notes.tmp", "a-red-circle-s0.png"]


def test_torchrun_with_two_processes_makes_the_same_images_as_one(tmp_path: Path, tiny_checkpoint: Path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na cat\nthree blue stars\na green square in the top left\na dog\n")
    args = ["generate", "--prompts", str(prompts), "--model", str(tiny_checkpoint), "--threads", "1"]
    imgen(*args, "--out-dir", "one", cwd=tmp_path)
    result = torchrun(2, *args, "--out-dir", "two", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    one = {f.name: f.read_bytes() for f in (tmp_path / "one").iterdir()}
    two = {f.name: f.read_bytes() for f in (tmp_path / "two").iterdir()}
    assert len(one) == 5 and one == two


def test_a_record_from_before_the_phases_had_their_own_settings_keeps_them_in_both_phases():
    old = sampler_from_metadata({"sampler": {"cfg": 4.0, "temperature": 0.7, "coarse_steps": 8}})
    assert (old.cfg, old.detail_cfg, old.temperature, old.detail_temperature) == (4.0, 4.0, 0.7, 0.7)
    record = {"cfg": 4.0, "detail_cfg": 1.0, "temperature": 0.7, "detail_temperature": 0.5}
    new = sampler_from_metadata({"sampler": record})
    assert (new.cfg, new.detail_cfg, new.temperature, new.detail_temperature) == (4.0, 1.0, 0.7, 0.5)


def test_a_request_takes_what_is_given_then_the_earlier_images_recipe_then_the_defaults():
    earlier = Recipe("a red circle", 7, SamplerConfig(cfg=4.0, coarse_steps=16), "bf16", "icons", "ab" * 32)
    request = request_from(earlier, seed=9, cfg=2.0, temperature=None)
    assert (request.prompt, request.seed, request.precision, request.model) == ("a red circle", 9, "bf16", "icons")
    assert request.sampler == SamplerConfig(cfg=2.0, coarse_steps=16)
    assert request.model_sha256 == "ab" * 32  # kept, to warn when another checkpoint draws it
    assert request_from(earlier, prompt="a dog", model="other").prompt == "a dog"
    fresh = request_from(None, prompt="a cat")
    assert (fresh.seed, fresh.sampler, fresh.precision, fresh.model, fresh.model_sha256) == (
        0, SamplerConfig(), "auto", None, None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown sampler 'zigzag'"):
        request_from(None, prompt="a cat", mode="zigzag")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("coarse_steps", 0), ("top_p", -0.1), ("top_p", 1.5), ("temperature", -1.0), ("top_k", -1), ("cfg", "3")],
)
def test_sampler_settings_no_sampler_can_use_are_refused_by_name(setting: str, value):
    with pytest.raises(ValueError, match=f"sampler setting {setting} = "):
        SamplerConfig(**{setting: value})


def test_a_png_whose_recorded_sampler_settings_cannot_be_used_is_named(tmp_path: Path):
    from imgen.io import save_png
    from imgen.recipe import NotAnImgenImage, recipe_from_image

    record = {"prompt": "a cat", "seed": 0, "sampler": {"coarse_steps": 0}}
    save_png(Image.new("RGB", (8, 8)), tmp_path / "odd.png", metadata=record)
    with pytest.raises(NotAnImgenImage, match=r"odd\.png: its recorded sampler settings cannot be used"):
        recipe_from_image(tmp_path / "odd.png")


def test_the_automatic_batch_gives_each_thread_a_shard_and_one_image_runs_on_one_thread():
    assert [auto_batch_size(jobs, threads=2) for jobs in (1, 5, 8, 100)] == [1, 5, 8, 8]
    assert auto_batch_size(0, threads=2) == 1
    assert sampling_threads(3, batch_size=8, jobs=20) == 3  # asked for: kept
    assert sampling_threads(0, batch_size=1, jobs=20) == 1  # one image per call
    assert sampling_threads(0, batch_size=0, jobs=1) == 1  # a single image
    assert sampling_threads(0, batch_size=0, jobs=20) is None  # torch's default
