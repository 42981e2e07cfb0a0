"""At ComfyUI start: collect the fal jobs a previous ComfyUI left running (crash, kill, close)."""
from __future__ import annotations

import importlib.util

from ..client.logs import logger
from ..jobs.result_images import decode_image
from ..jobs.runner import start_collecting_left_jobs
from .comfy_paths import node_job_store


def collect_left_jobs_on_load() -> None:
    """Only inside ComfyUI (tests and scripts import the nodes too); never breaks the load."""
    if importlib.util.find_spec("folder_paths") is None:
        return
    try:
        jobs = start_collecting_left_jobs(node_job_store(), decode_image)
    except Exception as error:  # noqa: BLE001 - the pack must load whatever the ledger holds
        logger.warning("could not look for fal jobs left by an earlier ComfyUI: %s", error)
        return
    if jobs:
        logger.info("collecting %d fal job(s) left running by an earlier ComfyUI", len(jobs))
