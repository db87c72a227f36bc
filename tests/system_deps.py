"""Skips for system packages a developer may lack but CI installs (tesseract, Noto Color Emoji, a C++ compiler).

On a developer machine a test that needs tesseract is skipped when it is
missing. CI installs these packages, so there a skip would hide a broken
install or a renamed package: `.ci/run` sets IMGEN_REQUIRE_SYSTEM_DEPS=1 and
the tests run (and fail) instead of skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_SYSTEM_DEPS = os.environ.get("IMGEN_REQUIRE_SYSTEM_DEPS") == "1"


def needs(missing: str | None) -> pytest.MarkDecorator:
    """Skip when `missing` names an absent dependency, unless CI promises it (then run, and fail)."""
    return pytest.mark.skipif(bool(missing) and not REQUIRE_SYSTEM_DEPS, reason=missing or "")
