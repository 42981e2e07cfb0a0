"""Fixtures shared by every suite: the stand-in fal server, a test key, real image bytes."""
from __future__ import annotations

import logging

import pytest
from fal_kontext.client import SHARED_UPLOAD_CACHE
from fal_kontext.jobs.runner import PROCESS_JOBS
from fal_kontext.kontext.spending import PROCESS_SPENDING
from fal_kontext.standin import StandInServer

from support import TEST_KEY


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def standin():
    with StandInServer(processing_delay=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No real key, config file or cache leaks into a test; process-wide state starts empty."""
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "FAL_KONTEXT_BASE_URL",
                 "FAL_KONTEXT_MAX_SPEND_USD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KONTEXT_CONFIG", str(tmp_path / "no-config.json"))
    monkeypatch.setenv("FAL_KONTEXT_RESULT_CACHE_DIR", str(tmp_path / "result-cache"))
    SHARED_UPLOAD_CACHE.clear()
    PROCESS_SPENDING.reset()
    yield
    PROCESS_JOBS.reset()  # no job a test left behind is still followed in the next one
    SHARED_UPLOAD_CACHE.clear()
    PROCESS_SPENDING.reset()


@pytest.fixture
def fal_env(monkeypatch, standin):
    """The environment a user sets: a key and (for tests) the stand-in as fal's origin."""
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    monkeypatch.setenv("FAL_KONTEXT_BASE_URL", standin.base_url)
    return standin


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog
