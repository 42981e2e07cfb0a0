"""fal-kontext: FLUX.1 Kontext multi-image editing on fal.ai as ComfyUI nodes.

ComfyUI reads NODE_CLASS_MAPPINGS from this module. They are resolved lazily (PEP 562) so that
`fal_kontext.client` and the CLI import without torch or ComfyUI; ComfyUI's loader asks for the
attribute right after import, which loads the nodes then.
"""
from __future__ import annotations

from typing import Any

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]

# ComfyUI serves this folder to the browser and loads its .js files (the price badge).
WEB_DIRECTORY = "./web"

_NODE_EXPORTS = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from pyproject.toml, its one source (see version.py)
        from .version import pack_version

        return pack_version()
    if name in _NODE_EXPORTS:
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
