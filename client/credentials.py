"""Where the fal key comes from, and how it is cleaned and kept out of sight.

Order: explicit argument, FAL_KEY, FAL_KEY_ID + FAL_KEY_SECRET, then the user config file
(outside the pack folder, so it is never shared with a workflow or committed with the pack).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Mapping

from .errors import KEY_HELP, ConfigurationError, MissingKeyError
from .redaction import register_secret

CONFIG_PATH_ENV = "FAL_KONTEXT_CONFIG"
CONFIG_KEY_FIELD = "fal_key"
_QUOTES = "\"'`"


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The user config file: FAL_KONTEXT_CONFIG, else the platform's user config directory."""
    if environ.get(CONFIG_PATH_ENV):
        return Path(environ[CONFIG_PATH_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "fal-kontext" / "config.json"


def clean_key(raw: str, source: str) -> str:
    """Strip the whitespace and quotes that copy-pasting adds; refuse what cannot be a key."""
    key = raw.strip().strip(_QUOTES).strip()
    if key.lower().startswith("key "):
        key = key[4:].strip()
    if not key:
        raise MissingKeyError(f"The fal key from {source} is empty. " + key_help())
    if any(ch.isspace() for ch in key) or not key.isprintable():
        raise ConfigurationError(
            f"The fal key from {source} contains spaces or control characters; "
            "copy it again from https://fal.ai/dashboard/keys")
    register_secret(key)
    return key


def key_help(environ: Mapping[str, str] = os.environ) -> str:
    return KEY_HELP.format(config_path=default_config_path(environ))


def _key_from_config(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the fal-kontext config file {path}: {exc.strerror}") from None
    try:
        value = json.loads(text).get(CONFIG_KEY_FIELD) if text.strip() else None
    except (json.JSONDecodeError, AttributeError):
        raise ConfigurationError(
            f'The config file {path} is not JSON like {{"{CONFIG_KEY_FIELD}": "<your key>"}}') from None
    return value if isinstance(value, str) else None


def resolve_key(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """Find the fal key, or raise MissingKeyError saying exactly how to set one."""
    if explicit is not None:
        return clean_key(explicit, "the key argument")
    if environ.get("FAL_KEY", "").strip():
        return clean_key(environ["FAL_KEY"], "FAL_KEY")
    key_id, secret = environ.get("FAL_KEY_ID", "").strip(), environ.get("FAL_KEY_SECRET", "").strip()
    if key_id and secret:
        return clean_key(f"{clean_key(key_id, 'FAL_KEY_ID')}:{clean_key(secret, 'FAL_KEY_SECRET')}",
                         "FAL_KEY_ID and FAL_KEY_SECRET")
    path = default_config_path(environ)
    from_file = _key_from_config(path)
    if from_file is not None:
        return clean_key(from_file, f"the config file {path}")
    raise MissingKeyError("No fal API key found. " + key_help(environ))
