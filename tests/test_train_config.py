"""Training options: defaults < TOML file < flags, with unknown keys and wrong types named."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgen.generator_train import GeneratorTrainConfig
from imgen.train_config import ConfigError, build_config, read_config_file


def test_file_values_override_defaults_and_flags_override_the_file(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nlr = 1\nmax_steps = 50\ndata = "icons"\n')
    config = build_config(GeneratorTrainConfig, read_config_file(path), {"max-steps": 70})
    assert (config.lr, config.max_steps, config.data) == (1.0, 70, "icons")
    assert isinstance(config.lr, float) and config.batch_size == GeneratorTrainConfig().batch_size


def test_keys_above_a_train_table_are_an_error_not_dropped(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("lr = 0.001\nseed = 3\n[train]\nmax_steps = 5\n")
    with pytest.raises(ConfigError, match="keys outside \\[train\\] would be ignored: lr, seed"):
        read_config_file(path)
    path.write_text("lr = 0.001\nmax_steps = 5\n")  # the top level alone is fine
    assert read_config_file(path) == {"lr": 0.001, "max_steps": 5}


def test_unknown_keys_and_wrong_types_are_errors_that_name_the_key(tmp_path: Path):
    with pytest.raises(ConfigError, match="'max_step'"):
        build_config(GeneratorTrainConfig, {"max_step": 5}, {})
    with pytest.raises(ConfigError, match="batch_size must be int"):
        build_config(GeneratorTrainConfig, {"batch_size": "big"}, {})
    with pytest.raises(ConfigError, match="batch_size must be int"):
        build_config(GeneratorTrainConfig, {"batch_size": True}, {})
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        read_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(tmp_path / "missing.toml")
