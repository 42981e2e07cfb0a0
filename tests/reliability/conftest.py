"""Fixtures of the reliability suites: the results book, fast-failing clients, FakeComfy."""
from __future__ import annotations

import functools

import httpx
import pytest

from fal_kontext.client import FalClient, RetryPolicy
from results_book import ResultsBook

# Same retry logic as production, shorter waits, so a persistent fault fails in well under 1 s.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=1.0)
# Loopback answers in milliseconds; a short read timeout makes the "read timeout" fault cheap.
SHORT_TIMEOUT = httpx.Timeout(connect=2.0, read=0.2, write=5.0, pool=5.0)
READ_TIMEOUT_FAULT_DELAY = 0.4


@pytest.fixture(scope="session")
def results_book():
    book = ResultsBook()
    yield book
    book.write()


def fast_client_factory(**overrides):
    """FalClient with fast retries; the node's client pool builds it from the environment."""
    return functools.partial(FalClient, **{"retry": FAST_RETRY, "timeout": SHORT_TIMEOUT, **overrides})


@pytest.fixture
def fast_node_clients(monkeypatch):
    """Nodes get FalClients with FAST_RETRY and SHORT_TIMEOUT (everything else as in ComfyUI)."""
    import fal_kontext.nodes.client_pool as client_pool
    monkeypatch.setattr(client_pool, "FalClient", fast_client_factory())
