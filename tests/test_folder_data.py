"""A user's captioned folder: both caption conventions, every kind of problem, a seeded resumable order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from imgen.folder_data import scan_folder
from imgen.folder_examples import FolderExamples


def _image(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (200, 10, 10, 128)[: len(mode)]).save(path)


def test_captions_come_from_metadata_files_in_any_folder_and_from_sidecars(tmp_path: Path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "sub" / "b.webp", (64, 64))
    _image(tmp_path / "c.png", mode="RGBA")
    _image(tmp_path / "d.png")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "  a red\n box "}) + "\n")
    (tmp_path / "sub" / "metadata.csv").write_text('file_name,caption\nb.webp,"a square, red"\n')
    (tmp_path / "c.txt").write_text("a see-through box\n")
    (tmp_path / "d.txt").write_text("ignored")
    (tmp_path / "metadata.jsonl").write_text(
        (tmp_path / "metadata.jsonl").read_text() + json.dumps({"file_name": "d.png", "text": "metadata wins"}) + "\n"
    )
    scan = scan_folder(tmp_path)
    captions = {item.path.name: item.caption for item in scan.items}
    assert captions == {
        "a.png": "a red box",
        "b.webp": "a square, red",
        "c.png": "a see-through box",
        "d.png": "metadata wins",
    }
    assert scan.problems() == []
    assert scan.summary()["sizes"] == {"40x30": 3, "64x64": 1}


def test_every_problem_is_listed_and_none_is_fatal(tmp_path: Path):
    _image(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("a good one")
    _image(tmp_path / "bare.jpg")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.png").read_bytes()[:40])
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    (tmp_path / "readme.md").write_text("hi")
    (tmp_path / ".hidden.png").write_bytes(b"nothing")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "gone.png", "text": "x"}\nnot json\n{"text": "no file"}\n')
    scan = scan_folder(tmp_path)
    problems = scan.problems()
    assert [item.path.name for item in scan.captioned] == ["good.png"] and scan.missing_captions == [
        tmp_path / "bare.jpg"
    ]
    assert sum(p.startswith("cut.png: ") for p in problems) == 1
    assert "anim.gif: not an image" in problems and "readme.md: not an image" in problems
    assert "bare.jpg: no caption" in problems
    assert {p for p in problems if p.startswith("metadata.jsonl")} == {
        "metadata.jsonl line 1: gone.png does not exist",
        "metadata.jsonl line 2: not JSON",
        "metadata.jsonl line 3: needs 'file_name' and 'text'",
    }
    assert not any("hidden" in p for p in problems)


def test_a_jpeg_with_extra_frames_as_cameras_write_it_loads_as_its_first_frame(tmp_path: Path):
    from imgen.io import load_image

    first, preview = Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (20, 15), (10, 10, 200))
    first.save(tmp_path / "camera.jpg", "MPO", save_all=True, append_images=[preview])
    with Image.open(tmp_path / "camera.jpg") as opened:
        assert opened.format == "MPO"  # what Pillow calls such a JPEG
    loaded = load_image(tmp_path / "camera.jpg")
    assert loaded.size == (40, 30) and loaded.convert("RGB").getpixel((20, 15))[0] > 150


def test_a_metadata_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(tmp_path: Path):
    _image(tmp_path / "img0.png")
    (tmp_path / "metadata.csv").write_bytes("file_name,text\nimg0.png,a red circle\n".encode("utf-8-sig"))
    scan = scan_folder(tmp_path)
    assert [item.caption for item in scan.captioned] == ["a red circle"] and scan.bad_metadata == []


def test_an_image_that_breaks_after_the_scan_gives_way_to_the_next_one(tmp_path: Path, capsys):
    for i in range(4):
        _image(tmp_path / f"{i}.png", (20 + i, 20))
        (tmp_path / f"{i}.txt").write_text(f"image {i}")
    items = scan_folder(tmp_path).captioned
    order = [FolderExamples(items, seed=1, size=16).item(p) for p in range(4)]
    order[1].path.write_bytes(b"rewritten while training ran")
    images, captions = FolderExamples(items, seed=1, size=16).batch(range(4))
    assert images.shape == (4, 3, 16, 16)  # the batch keeps its size
    assert captions == [order[0].caption, order[2].caption, order[2].caption, order[3].caption]
    assert f"{order[1].path} can no longer be read" in capsys.readouterr().err


def test_examples_follow_a_seeded_order_that_resumes_at_any_position(tmp_path: Path):
    for i in range(5):
        _image(tmp_path / f"{i}.png", (20 + i, 20))
        (tmp_path / f"{i}.txt").write_text(f"image {i}")
    items = scan_folder(tmp_path).captioned
    first = FolderExamples(items, seed=1, size=16)
    order = [first.item(p).caption for p in range(10)]
    assert sorted(order[:5]) == sorted(order[5:]) == [f"image {i}" for i in range(5)]  # each epoch is a permutation
    assert order[:5] != order[5:]  # and epochs are shuffled differently
    assert [FolderExamples(items, seed=1, size=16).item(p).caption for p in range(10)] == order  # resumable
    images, captions = FolderExamples(items, seed=1, size=16).batch(range(7, 10))
    assert images.shape == (3, 3, 16, 16) and captions == order[7:10]
    with pytest.raises(ValueError, match="no usable"):
        FolderExamples([], seed=0, size=16)
    with pytest.raises(ValueError, match="not a folder"):
        scan_folder(tmp_path / "missing")
