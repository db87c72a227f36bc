"""Training configs from three layers: dataclass defaults < a TOML file (`--config`) < flags given on the command line.

A run is described by one dataclass (`TokenizerTrainConfig`,
`GeneratorTrainConfig`) whose field names are the TOML keys and, with dashes,
the flags. The TOML file makes a run reproducible from a file in version
control; a flag typed on the command line still wins, because that is what the
user looked at last. Unknown keys and wrong types are errors that name the key:
a typo must never fall back silently to a default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the run's options; the message names the key."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The key/value pairs of a TOML config file (top level, or its `[train]` table)."""
    from imgen.toml_subset import TomlError, loads

    try:
        data = loads(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    except TomlError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(data.get("train"), dict):
        return data
    outside = sorted(key for key in data if key != "train")
    if outside:  # both forms at once: the top-level keys would be dropped without a word
        raise ConfigError(f"{path}: keys outside [train] would be ignored: {', '.join(outside)}; move them into it")
    return data["train"]


def check_limits(config: Any, limits: dict[str, tuple[float, float | None]]) -> None:
    """A `ConfigError` naming the first option outside its (lowest, highest) range; None = no upper bound.

    Why in the config: the flags have the same bounds, but a TOML file or the
    Python API would otherwise pass `log_every = 0` or `batch_size = 0` on to
    a division by zero or an empty batch minutes into a run.
    """
    for name, (lowest, highest) in limits.items():
        value = getattr(config, name)
        if value < lowest or (highest is not None and value > highest):
            bound = f"at least {lowest}" if highest is None else f"between {lowest} and {highest}"
            raise ConfigError(f"{name} must be {bound}, not {value!r}")


def build_config(cls: type[T], file_values: dict[str, Any], flag_values: dict[str, Any], where: str = "config") -> T:
    """`cls` with `file_values` applied over its defaults and `flag_values` over those."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for source, layer in ((where, file_values), ("flag", flag_values)):
        for key, value in layer.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise ConfigError(f"{source}: unknown option {key!r}; known: {', '.join(sorted(fields))}")
            values[name] = _checked(name, value, type(fields[name].default), source)
    return cls(**values)


def _checked(name: str, value: Any, wanted: type, source: str) -> Any:
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {name} must be {wanted.__name__}, not {type(value).__name__} ({value!r})")
    return value
