"""The pack's version: `pyproject.toml` is its one source, read at run time.

It lives at the package root rather than in `client/`: it is the version of the whole pack (what
the Comfy Registry publishes, what `info` and `--version` report), and `client/` stays free of
the pack's packaging so it could be published alone.
"""
from __future__ import annotations

import functools
import re
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "fal-kontext"
UNKNOWN = "unknown"
PYPROJECT = Path(__file__).resolve().parent / "pyproject.toml"

_TABLE = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(?:#.*)?$")
_VERSION = re.compile(r"""^\s*version\s*=\s*["']([^"']+)["']\s*(?:#.*)?$""")


@functools.lru_cache(maxsize=1)
def pack_version() -> str:
    """The version of the files that are running, e.g. "0.2.0" ("unknown" if nothing says)."""
    # pyproject.toml beside this file wins: ComfyUI loads the pack from its custom_nodes folder
    # without installing it, and an editable install's metadata keeps the version it had when
    # `pip install -e` ran; either way pyproject.toml describes exactly these files. A wheel
    # ships no pyproject.toml, so there the installed metadata is the source.
    if PYPROJECT.is_file():
        found = version_in_pyproject(PYPROJECT.read_text(encoding="utf-8"))
        if found:
            return found
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def version_in_pyproject(text: str) -> str | None:
    """`version` of the `[project]` table, without a TOML parser (tomllib is Python 3.11+ and
    the pack supports 3.10); None when the table or the key is missing."""
    in_project = False
    for line in text.splitlines():
        table = _TABLE.match(line)
        if table:
            in_project = table.group(1).strip() == "project"
            continue
        version = _VERSION.match(line) if in_project else None
        if version:
            return version.group(1)
    return None
