"""imgen: a command-line image generator and editor over image tokens.

The Python API, the same functions the commands call:

    from imgen import load, edit, restyle

    pipe = load()                                   # the bundled checkpoint
    images = pipe.generate(["a red circle"], seed=0)  # PIL images
    edited = edit(pipe, "scene.png", "mask.png", "a yellow star and a blue car").image
    styled = restyle(pipe, "scene.png", "the same scene, pixel art", strength=0.5)[0]

Heavy modules (torch) are imported only when one of these names is first used,
so `import imgen`, `imgen --help` and the world tools start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load": "imgen.api",
    "Pipeline": "imgen.api",
    "ModelUnavailableError": "imgen.api",
    "SamplerConfig": "imgen.sampler",
    "edit": "imgen.editing",
    "restyle": "imgen.editing",
    "EditResult": "imgen.editing",
    "Recipe": "imgen.recipe",
    "recipe_from_image": "imgen.recipe",
    "NotAnImgenImage": "imgen.recipe",
}

__all__ = [  # noqa: RUF022 (grouped by module, as in _EXPORTS)
    "__version__",
    "load",
    "Pipeline",
    "ModelUnavailableError",
    "SamplerConfig",
    "edit",
    "restyle",
    "EditResult",
    "Recipe",
    "recipe_from_image",
    "NotAnImgenImage",
]

if TYPE_CHECKING:
    from imgen.api import ModelUnavailableError, Pipeline, load
    from imgen.editing import EditResult, edit, restyle
    from imgen.recipe import NotAnImgenImage, Recipe, recipe_from_image
    from imgen.sampler import SamplerConfig


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'imgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
