"""A ComfyUI and a fal stand-in of a test's own, for scenarios that kill or restart ComfyUI.

A module sets `PROCESSING_DELAY` (seconds per job at the stand-in) to suit its scenario; a module
that shares one ComfyUI between its tests defines its own module-scoped `standin` and `comfy`.
"""
from __future__ import annotations

import pytest
from comfyui_process import own_comfyui
from fal_kontext.standin import StandInServer


@pytest.fixture
def standin(request):
    with StandInServer(processing_delay=getattr(request.module, "PROCESSING_DELAY", 1.0)) as server:
        yield server


@pytest.fixture
def comfy(standin, tmp_path):
    server = own_comfyui(standin.base_url, tmp_path)
    yield server
    server.stop()
