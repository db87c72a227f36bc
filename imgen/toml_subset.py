"""TOML for `weights.lock` without a new dependency: `tomllib`, else `tomli`, else a reader for a small subset.

Python 3.11 reads TOML with the standard library's `tomllib`; on 3.10 the
`tomli` backport is used when it happens to be installed. Without it, the lock
is still readable because imgen writes only a small subset of TOML (comments,
`[table]` and `[[array.of.tables]]` headers, `key = value` with basic strings,
integers, decimal floats and booleans), which `parse_subset` reads; so does
a training config (`--config`). Writing needs no library:
`basic_string` quotes a value.
"""

from __future__ import annotations

import json
import re
from typing import Any


class TomlError(ValueError):
    """The text is not TOML (or, on the fallback reader, not the subset); the message names file and line."""


def loads(text: str, where: str = "<toml>") -> dict[str, Any]:
    """Parse `text` with the best reader available; `where` names the source in error messages."""
    try:
        import tomllib as toml
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as toml  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return parse_subset(text, where)
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as error:
        raise TomlError(f"{where}: not valid TOML ({error})") from None


def basic_string(value: str) -> str:
    """`value` as a TOML basic string: JSON's escaping is valid TOML, plus DEL, which TOML forbids raw."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
_DOTTED = re.compile(rf"\s*{_KEY}(?:\s*\.\s*{_KEY})*\s*")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_STRING = re.compile(r'"((?:[^"\\\x00-\x1f\x7f]|\\(?:[btnfr"\\]|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))*)"')
_INTEGER = re.compile(r"[+-]?(?:0|[1-9](?:_?[0-9])*)(?![0-9A-Za-z_.:])")
_BOOLEAN = re.compile(r"(true|false)(?![0-9A-Za-z_])")
# a decimal float: an integer part, then a fraction, an exponent or both (training configs: lr = 3e-4)
_FLOAT = re.compile(
    r"[+-]?(?:0|[1-9](?:_?[0-9])*)(?:\.[0-9](?:_?[0-9])*(?:[eE][+-]?[0-9](?:_?[0-9])*)?|[eE][+-]?[0-9](?:_?[0-9])*)"
    r"(?![0-9A-Za-z_.:])"
)


def parse_subset(text: str, where: str = "<toml>") -> dict[str, Any]:
    """Read the subset of TOML described in the module docstring; anything else is a `TomlError` with its line."""
    root: dict[str, Any] = {}
    table = root
    for number, raw in enumerate(text.splitlines(), start=1):
        line, place = raw.strip(), f"{where}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            table = _open_table(root, line, place)
            continue
        key_text, equals, value_text = line.partition("=")
        if not equals or not _DOTTED.fullmatch(key_text):
            raise TomlError(f"{place}: expected `key = value`, got {line!r}")
        keys = _split_key(key_text)
        value, rest = _parse_value(value_text.strip(), place)
        if rest and not rest.startswith("#"):
            raise TomlError(f"{place}: unexpected text after the value: {rest!r}")
        target = table
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise TomlError(f"{place}: {key!r} is not a table")
        if keys[-1] in target:
            raise TomlError(f"{place}: {keys[-1]!r} is defined twice")
        target[keys[-1]] = value
    return root


def _open_table(root: dict[str, Any], line: str, place: str) -> dict[str, Any]:
    """Handle a `[a.b]` or `[[a.b]]` header: the table that the following keys go into."""
    is_array = line.startswith("[[")
    opening, closing = ("[[", "]]") if is_array else ("[", "]")
    end = line.find(closing, len(opening))
    inner = line[len(opening) : end] if end >= 0 else ""
    rest = line[end + len(closing) :].strip() if end >= 0 else ""
    if end < 0 or not _DOTTED.fullmatch(inner) or (rest and not rest.startswith("#")):
        raise TomlError(f"{place}: cannot read the table header {line!r}")
    keys = _split_key(inner)
    node: Any = root
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if isinstance(node, list):  # a key inside an array of tables names its last element
            node = node[-1]
        if not isinstance(node, dict):
            raise TomlError(f"{place}: {key!r} is not a table")
    last = keys[-1]
    if is_array:
        array = node.setdefault(last, [])
        if not isinstance(array, list):
            raise TomlError(f"{place}: {last!r} is not an array of tables")
        array.append({})
        return array[-1]
    existing = node.setdefault(last, {})
    if not isinstance(existing, dict):
        raise TomlError(f"{place}: {last!r} is not a table")
    return existing


def _split_key(text: str) -> list[str]:
    parts = re.findall(_KEY, text)
    return [_unescape(part[1:-1]) if part.startswith('"') else part for part in parts]


def _parse_value(text: str, place: str) -> tuple[Any, str]:
    """One value at the start of `text`, and what follows it."""
    match = _STRING.match(text)
    if match:
        return _unescape(match.group(1)), text[match.end() :].strip()
    match = _BOOLEAN.match(text)
    if match:
        return match.group(1) == "true", text[match.end() :].strip()
    match = _FLOAT.match(text)
    if match:
        return float(match.group(0).replace("_", "")), text[match.end() :].strip()
    match = _INTEGER.match(text)
    if match:
        return int(match.group(0).replace("_", "")), text[match.end() :].strip()
    raise TomlError(f"{place}: unsupported value {text!r} (this reader knows strings, numbers and booleans)")


def _unescape(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        return _ESCAPES[token] if token in _ESCAPES else chr(int(token[1:], 16))

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[btnfr\"\\])", one, body)
