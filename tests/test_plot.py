"""Behaviour of the loss-curve plot: reading metrics logs and drawing them with Pillow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgen.plot import (
    curve_keys,
    plot_curves,
    plot_run,
    read_metrics,
    series_colour,
    step_series,
    use_log_scale,
)


def _write_metrics(folder: Path, records: list[dict], tail: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + tail, encoding="utf-8")
    return path


def _generator_records(n: int = 10) -> list[dict]:
    return [
        {"step": 20 * (i + 1), "loss": 13.0 / (i + 1), "coarse_loss": 5.0 / (i + 1), "lr": 1e-4, "samples": 640 * i}
        for i in range(n)
    ]


def _colour_mask(image: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.asarray(image.convert("RGB")) == np.array(colour, dtype=np.uint8), axis=-1)


def test_two_keys_give_image_of_requested_size_with_both_colours(tmp_path: Path) -> None:
    _write_metrics(tmp_path, _generator_records())
    image = plot_curves(read_metrics(tmp_path), width=640, height=360)
    assert image.size == (640, 360)
    assert _colour_mask(image, series_colour(0)).sum() > 50
    assert _colour_mask(image, series_colour(1)).sum() > 50
    assert not _colour_mask(image, series_colour(2)).any()


def test_curve_goes_down_when_loss_falls() -> None:
    """The left end of the drawn line sits high for a falling loss and low for a rising one."""

    def left_end_row(values: list[float]) -> float:
        records = [{"step": step, "loss": value} for step, value in enumerate(values)]
        mask = _colour_mask(plot_curves(records), series_colour(0))
        columns = np.nonzero(mask.any(axis=0))[0]
        return float(np.nonzero(mask[:, columns.min()])[0].mean())

    falling = [10.0, 5.0, 2.0, 1.0, 0.5]
    assert left_end_row(falling) < left_end_row(falling[::-1]) - 100


def test_read_metrics_skips_blank_and_truncated_lines(tmp_path: Path) -> None:
    path = _write_metrics(tmp_path, _generator_records(3), tail='\n\n{"step": 80, "loss": 2.')
    records = read_metrics(tmp_path)
    assert [record["step"] for record in records] == [20, 40, 60]
    assert read_metrics(path) == records  # the file path itself is accepted too


def test_read_metrics_skips_malformed_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 3.0}\nnot json\n[1, 2]\n{"step": 2, "loss": 2.0}\n', encoding="utf-8")
    assert [record["step"] for record in read_metrics(tmp_path)] == [1, 2]


def test_missing_metrics_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"metrics\.jsonl"):
        read_metrics(tmp_path)
    with pytest.raises(FileNotFoundError):
        plot_run(tmp_path / "no-such-run")


def test_repeated_steps_keep_the_last_value_sorted_by_step() -> None:
    records = [
        {"step": 10, "loss": 5.0},
        {"step": 20, "loss": 4.0},
        {"step": 30, "loss": 3.5},
        {"event": "resume", "step": 20, "samples": 0},
        {"step": 20, "loss": 4.2},  # re-logged after a crash
        {"step": 30, "loss": 3.4},
        {"step": 40, "loss": 3.0},
    ]
    assert step_series(records, "loss") == [(10, 5.0), (20, 4.2), (30, 3.4), (40, 3.0)]


def test_non_finite_values_are_skipped(tmp_path: Path) -> None:
    # json.dumps writes NaN/Infinity for non-finite floats, and json.loads reads them back.
    _write_metrics(
        tmp_path,
        [
            {"step": 1, "loss": 3.0},
            {"step": 2, "loss": math.nan},
            {"step": 3, "loss": math.inf},
            {"step": 4, "loss": 1.0},
        ],
    )
    records = read_metrics(tmp_path)
    assert step_series(records, "loss") == [(1, 3.0), (4, 1.0)]
    assert plot_curves(records).size == (800, 480)


def test_curve_keys_takes_losses_from_step_records_only() -> None:
    records = [
        {"event": "start", "step": 0, "samples": 0, "parameters": 123, "vq_config": "{}"},
        {"step": 50, "loss": 0.38, "loss_full": 0.25, "psnr_full": 14.4, "lr": 1e-4, "images_per_s": 28.0},
        {"step": 100, "loss": 0.18, "loss_full": 0.12, "psnr_full": 18.5, "lr": 2e-4, "images_per_s": 29.0},
        {"event": "end", "step": 100, "final_loss": 0.18},
        {"step": 110, "loss": 0.17, "loss_note": "text, not a number"},
    ]
    assert curve_keys(records) == ["loss", "loss_full"]
    gen = [{"step": 20, "loss": 13.4, "coarse_loss": 5.7, "detail_loss": 7.7, "lr": 8e-5, "samples_per_s": 5.0}]
    assert curve_keys(gen) == ["loss", "coarse_loss", "detail_loss"]


def test_records_without_losses_raise_value_error() -> None:
    records = [
        {"event": "start", "step": 0, "samples": 0},
        {"step": 10, "lr": 1e-4, "samples_per_s": 5.0},
        {"event": "end", "step": 10},
    ]
    assert curve_keys(records) == []
    with pytest.raises(ValueError, match="no loss values to plot"):
        plot_curves(records)
    with pytest.raises(ValueError, match="no loss values to plot"):
        plot_curves(_generator_records(), keys=["no_such_loss"])


def test_log_scale_only_for_positive_values() -> None:
    assert use_log_scale([3.0, 0.01, 120.0])
    assert not use_log_scale([3.0, 0.0, 1.0])
    assert not use_log_scale([3.0, -0.5])
    assert not use_log_scale([3.0, 1.0], log_y=False)
    assert not use_log_scale([])


def test_non_positive_values_still_plot_on_a_linear_axis() -> None:
    records = [{"step": step, "loss": value} for step, value in enumerate([2.0, 1.0, 0.0, -1.0])]
    image = plot_curves(records, log_y=True)
    assert _colour_mask(image, series_colour(0)).sum() > 50


def test_single_point_is_drawn() -> None:
    image = plot_curves([{"step": 5, "loss": 1.5}])
    assert _colour_mask(image, series_colour(0)).sum() > 20


def test_plot_run_writes_png_next_to_the_log_by_default(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _write_metrics(run_dir, _generator_records())
    out = plot_run(run_dir)
    assert out == run_dir / "loss.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (800, 480)

    custom = plot_run(run_dir, tmp_path / "plots" / "only_loss.png", keys=["loss"])
    assert custom == tmp_path / "plots" / "only_loss.png"
    with Image.open(custom) as image:
        assert _colour_mask(image, series_colour(0)).any()
        assert not _colour_mask(image, series_colour(1)).any()
