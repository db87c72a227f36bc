"""Files in and out: atomic PNG writes, the image formats accepted, writable output folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from imgen.io import ImageInputError, OutputExistsError, OutputFolderError, ensure_folder, load_image, save_png


def test_a_write_that_fails_part_way_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")

    def half_then_interrupted(self, stream, *args, **kwargs):
        stream.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_png(Image.new("RGB", (4, 4)), target, overwrite=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_an_existing_file_is_replaced_only_when_asked(tmp_path: Path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        save_png(Image.new("RGB", (4, 4), (255, 0, 0)), target)
    assert target.read_bytes() == b"old"
    save_png(Image.new("RGB", (4, 4), (255, 0, 0)), target, overwrite=True, metadata={"seed": 1})
    with Image.open(target) as written:
        assert written.getpixel((0, 0)) == (255, 0, 0) and '"seed": 1' in written.info["imgen"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_images_other_than_png_jpeg_and_webp_are_refused_by_name(tmp_path: Path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.gif")
    with pytest.raises(ImageInputError, match="GIF images are not supported"):
        load_image(tmp_path / "a.gif")
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(ImageInputError, match="not a readable image"):
        load_image(tmp_path / "b.png")
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_a_folder_that_cannot_be_written_is_named_before_any_work(tmp_path: Path, monkeypatch):
    ensure_folder(tmp_path / "new" / "deeper")
    assert (tmp_path / "new" / "deeper").is_dir()
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # as for a read-only folder (tests run as root)
    with pytest.raises(OutputFolderError, match="permission denied"):
        ensure_folder(tmp_path / "new")
