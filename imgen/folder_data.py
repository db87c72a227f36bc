"""A user's folder of captioned images: what `imgen data check` reports and which examples training reads.

Two caption conventions are understood, so a folder prepared for other tools
works here unchanged:

- Hugging Face `imagefolder`: a `metadata.jsonl` (or `metadata.csv`) with a
  `file_name` column relative to the metadata file's folder and a `text` (or
  `caption`) column. Several metadata files in subfolders are fine.
- Sidecar files: `cat.png` with its caption in `cat.txt`.

Where both give a caption, the metadata file wins. Images of any size are
composited on white (if they have transparency), centre-cropped to a square and
resized to the model size at load time.

A broken file never stops training. `scan_folder` decodes every image once, up
front, so the list of usable examples is known before the first step: a batch
always has its full size, a resumed run and an N-process run see the same
examples in the same order, and every problem (unreadable image, missing
caption, non-image file, metadata naming a missing file) is listed at the start
instead of surfacing hours into a run. Reading the examples in training order
is `imgen.folder_examples`; the scan here needs no torch, so `imgen data check`
starts at once.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_COLUMNS = ("text", "caption")


@dataclass(frozen=True)
class FolderItem:
    """One readable image and its caption (None when the folder gives it none)."""

    path: Path
    caption: str | None
    width: int
    height: int


@dataclass
class FolderScan:
    """Everything found in a folder: usable images and, separately, each kind of problem."""

    root: Path
    items: list[FolderItem] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)
    non_images: list[Path] = field(default_factory=list)
    bad_metadata: list[str] = field(default_factory=list)  # "metadata.jsonl line 3: ..." entries

    @property
    def captioned(self) -> list[FolderItem]:
        return [item for item in self.items if item.caption]

    @property
    def missing_captions(self) -> list[Path]:
        return [item.path for item in self.items if not item.caption]

    def problems(self) -> list[str]:
        """One line per problem, paths relative to the folder."""
        lines = [f"{self._shown(path)}: {why}" for path, why in self.unreadable]
        lines += [f"{self._shown(path)}: no caption" for path in self.missing_captions]
        lines += [f"{self._shown(path)}: not an image" for path in self.non_images]
        return lines + self.bad_metadata

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def summary(self) -> dict:
        """Counts, image sizes and caption lengths: the content of `imgen data check`."""
        sizes = Counter(f"{item.width}x{item.height}" for item in self.items)
        words = [len(item.caption.split()) for item in self.captioned]
        return {
            "folder": str(self.root),
            "images": len(self.items),
            "captioned": len(self.captioned),
            "missing_captions": len(self.missing_captions),
            "unreadable": len(self.unreadable),
            "non_images": len(self.non_images),
            "bad_metadata": len(self.bad_metadata),
            "sizes": dict(sizes.most_common(5)),
            "min_side": min((min(i.width, i.height) for i in self.items), default=None),
            "max_side": max((max(i.width, i.height) for i in self.items), default=None),
            "caption_words": {
                "min": min(words, default=None),
                "mean": round(statistics.fmean(words), 2) if words else None,
                "max": max(words, default=None),
            },
            "problems": self.problems(),
        }


def scan_folder(root: str | Path) -> FolderScan:
    """Find images and captions under `root` (recursively); decode each image once to know it is usable."""
    from imgen.io import ImageInputError, load_image

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    scan = FolderScan(root=root)
    files = _visible_files(root, scan)
    captions = _metadata_captions(root, files, scan)
    for path in files:
        suffix = path.suffix.lower()
        if path.name in METADATA_FILES:
            continue
        if suffix == ".txt" and any(
            path.with_suffix(s).exists() or path.with_suffix(s.upper()).exists() for s in IMAGE_SUFFIXES
        ):
            continue  # a sidecar caption
        if suffix not in IMAGE_SUFFIXES:
            scan.non_images.append(path)
            continue
        try:
            image = load_image(path)
            image.load()
        except (ImageInputError, OSError, ValueError) as error:
            message = str(error).removeprefix(f"{path}: ")  # e.g. "not a readable image (...)"
            scan.unreadable.append((path, message or f"unreadable image ({type(error).__name__})"))
            continue
        caption = captions.get(path)
        sidecar = path.with_suffix(".txt")
        if caption is None and sidecar.is_file():
            try:
                caption = sidecar.read_text(encoding="utf-8-sig", errors="replace")
            except OSError as error:
                scan.unreadable.append((sidecar, f"unreadable caption ({error.strerror or error})"))
        caption = " ".join(caption.split()) if caption else None
        scan.items.append(FolderItem(path, caption or None, image.width, image.height))
    return scan


def _visible_files(root: Path, scan: FolderScan) -> list[Path]:
    """Every file under `root` outside hidden folders, sorted; folders that cannot be listed go into `scan`."""

    def unlistable(error: OSError) -> None:
        scan.unreadable.append((Path(error.filename or root), f"unreadable folder ({error.strerror or error})"))

    found: list[Path] = []
    for folder, subfolders, names in os.walk(root, onerror=unlistable):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found.extend(Path(folder) / name for name in names if not name.startswith("."))
    return sorted(path for path in found if path.is_file())


def _metadata_captions(root: Path, files: list[Path], scan: FolderScan) -> dict[Path, str]:
    """file -> caption from every metadata.jsonl / metadata.csv; bad rows are reported in `scan`."""
    captions: dict[Path, str] = {}
    for meta in (p for p in files if p.name in METADATA_FILES):
        where = meta.relative_to(root)
        try:
            text = meta.read_text(encoding="utf-8-sig")  # what spreadsheets save starts with a byte-order mark
        except (OSError, UnicodeDecodeError) as error:
            scan.bad_metadata.append(f"{where}: unreadable ({error})")
            continue
        rows: list[tuple[int, object]]
        if meta.suffix == ".jsonl":
            rows = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError:
                    scan.bad_metadata.append(f"{where} line {number}: not JSON")
        else:
            rows = list(enumerate(csv.DictReader(text.splitlines()), start=2))
        for number, row in rows:
            name = row.get("file_name") if isinstance(row, dict) else None
            caption = next(
                (row[c] for c in CAPTION_COLUMNS if isinstance(row, dict) and isinstance(row.get(c), str)), None
            )
            if not isinstance(name, str) or caption is None:
                scan.bad_metadata.append(f"{where} line {number}: needs 'file_name' and 'text'")
                continue
            target = meta.parent / name
            if not target.is_file():
                scan.bad_metadata.append(f"{where} line {number}: {name} does not exist")
                continue
            captions[target] = caption
    return captions
