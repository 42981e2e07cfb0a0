"""Where ComfyUI keeps the pack's data: its user folder (or, in old versions, its temp folder)."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..client.logs import logger
from ..jobs.store import JobStore, default_job_store


def comfy_data_directory() -> Path | None:
    """ComfyUI's user folder, which survives restarts (ComfyUI empties its temp folder at start,
    so that is only a fallback for versions without a user folder); None outside ComfyUI."""
    try:
        folder_paths = importlib.import_module("folder_paths")  # only exists inside ComfyUI
    except ImportError:
        return None
    for getter_name in ("get_user_directory", "get_temp_directory"):
        getter = getattr(folder_paths, getter_name, None)
        if callable(getter):
            try:
                return Path(getter())
            except Exception as error:  # noqa: BLE001 - fall back to the next location
                logger.debug("folder_paths.%s() failed: %s", getter_name, error)
    return None


def node_job_store(use_result_cache: bool = True) -> JobStore:
    """The job ledger and result cache the nodes use: in ComfyUI's user folder unless
    configured elsewhere; `use_result_cache` only decides whether finished results are re-used."""
    return default_job_store(use_result_cache, app_directory=comfy_data_directory())
