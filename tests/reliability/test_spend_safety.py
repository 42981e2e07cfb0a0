"""Spend safety: one submit per node run whatever fails, a cancel after every interrupt and
timeout, ALREADY_COMPLETED reported as billed, and the spend cap holding under concurrency."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from conftest import fast_client_factory
from fake_comfy import FakeComfy
from node_calls import call_node, solid
from fal_kontext.client import FalError, FalTimeoutError
from fal_kontext.kontext.errors import SpendCapError
from fal_kontext.kontext import models as m
from fal_kontext.kontext.edit_request import EditRequest
from fal_kontext.kontext.pipeline import EditOptions, run_edit
from fal_kontext.kontext.progress import ProgressReporter
from fal_kontext.jobs.result_cache import default_result_cache
from fal_kontext.jobs.store import JobStore
from fal_kontext.kontext.spending import PROCESS_SPENDING, SPEND_CAP_ENV
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from fal_kontext.standin import StandInServer
from fault_matrix import reference
from results_book import table
from support import allow_short_timeouts, TEST_KEY, stored_bytes, wait_until

pytestmark = pytest.mark.anyio
RED = (1.0, 0.0, 0.0)
ROWS: dict[str, list[object]] = {}
STALE_IN_PROGRESS = {"status": "IN_PROGRESS", "logs": []}  # a status answer that never moves on


def freeze_status(server) -> None:
    """Every status answer (stream or poll) says IN_PROGRESS, whatever the job really does."""
    server.faults.add("status_stream", times=100, status=404)
    server.faults.add("status", times=100, status=200, body=STALE_IN_PROGRESS)


async def stop_after(seconds: float, work):
    """Run `work`, then cancel it after `seconds` (the one cancel path ComfyUI and the CLI use)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
    return await task


class EndingProgress(ProgressReporter):
    """Keeps the final words of a cancelled run ("" until there are some)."""

    ending = ""


@pytest.fixture(scope="module", autouse=True)
def spend_results(results_book):
    yield
    if len(ROWS) == EXPECTED_ROWS:
        results_book.set_section("spend-safety", "## Spend safety\n\n" + table(
            ["scenario", "submits", "cancels", "outcome"], list(ROWS.values())))


@pytest.fixture
def fal(monkeypatch, fast_node_clients):
    with StandInServer(processing_delay=0.1) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        yield server


def record(scenario: str, server, outcome: str) -> None:
    ROWS[scenario] = [scenario, len(server.submits()), len(server.cancels()), outcome]


NODE_FAULTS = {
    "status 503 on every poll": ("status", {"status": 503, "times": 20}),
    "result fetch reset every time": ("result", {"reset_mid_response": True, "times": 20}),
    "result download truncated once": ("file", {"truncate": True}),
    "submit answer lost (reset)": ("submit", {"reset_mid_response": True}),
    "submit 429": ("submit", {"status": 429}),
    "upload 500 on every try": ("upload", {"status": 500, "times": 20}),
}


@pytest.mark.parametrize("scenario", NODE_FAULTS)
async def test_one_node_run_is_one_submit_whatever_fails(fal, scenario):
    route, fault = NODE_FAULTS[scenario]
    fal.faults.add(route, **fault)
    try:
        await call_node(FalKontextMulti, prompt="p", images=solid(RED), use_result_cache=False)
        outcome = "recovered"
    except FalError as error:
        outcome = type(error).__name__
    assert len(fal.jobs) == 1
    # A submit is sent again only after a 429, which says fal took nothing.
    assert len(fal.submits()) == (2 if scenario == "submit 429" else 1)
    record(f"node run, {scenario}", fal, outcome)


@pytest.mark.parametrize("moment", ["during a slow upload", "during a slow submit",
                                    "while queued", "while running", "cancel answered 503 once"])
async def test_every_interrupt_cancels_the_job(monkeypatch, moment):
    comfy = FakeComfy().install(monkeypatch)
    with StandInServer(processing_delay=30, queue_delay=0.6 if moment == "while queued" else 0) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        if moment == "during a slow upload":
            server.faults.add("upload", delay=0.5)
        if moment == "during a slow submit":
            server.faults.add("submit", delay=0.5)
        if moment == "cancel answered 503 once":
            server.faults.add("cancel", status=503)
        node = asyncio.ensure_future(call_node(FalKontextMulti, prompt="p", images=solid(RED)))
        route = "upload" if moment == "during a slow upload" else "submit"
        while not server.count(route):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        comfy.press_cancel()
        with pytest.raises(comfy.InterruptProcessingException):
            await node
        await asyncio.sleep(0.5)  # a slow submit lands after the interrupt: it must be cancelled
        jobs = server.jobs
        assert len(server.submits()) <= 1
        for request_id, job in jobs.items():
            assert any(request_id in r.path for r in server.cancels()), f"{moment}: job left running"
            assert job.cancelled
        record(f"ComfyUI Cancel {moment}", server, "interrupted; " + (
            "job cancelled" if jobs else "nothing submitted"))


async def test_timeout_cancels_even_when_the_cancel_fails_once(monkeypatch):
    allow_short_timeouts(monkeypatch, 0.1)
    with StandInServer(processing_delay=30) as server:
        server.faults.add("cancel", status=500)
        async with fast_client_factory()(key=TEST_KEY, base_url=server.base_url) as client:
            with pytest.raises(FalTimeoutError) as caught:
                await run_edit(client, EditRequest(m.MULTI_MODELS["pro"], "p", seed=1), [reference(1)],
                               options=EditOptions(timeout=0.5))
        assert caught.value.cancel_confirmed and "cancel" in str(caught.value)
        assert caught.value.request_id in str(caught.value)
        assert len(server.submits()) == 1 and server.count("cancel") == 2
        assert next(iter(server.jobs.values())).cancelled
        record("timeout, first cancel answered 500", server, f"FalTimeoutError: {caught.value}")


async def test_a_cancel_answered_already_completed_says_finished_and_billed_and_keeps_it(monkeypatch):
    with StandInServer(processing_delay=0.1) as server:
        freeze_status(server)
        request = EditRequest(m.MULTI_MODELS["pro"], "p", seed=1)
        cache = default_result_cache()
        progress = EndingProgress()
        async with fast_client_factory()(key=TEST_KEY, base_url=server.base_url) as client:
            with pytest.raises(asyncio.CancelledError):
                await stop_after(0.6, run_edit(client, request, [reference(1)], progress=progress,
                                               store=JobStore.beside(cache)))
            assert "finished already" in progress.ending and "$0.04 billed" in progress.ending
            assert "kept" in progress.ending
            await wait_until(lambda: stored_bytes(cache) > 0)
            again = await run_edit(client, request, [reference(1)], store=JobStore.beside(cache))
        assert again.info["cached"] and again.info["request_id"] == next(iter(server.jobs))
        assert len(server.submits()) == 1 and len(server.cancels()) == 1
        record("stop after the job finished (cancel answers ALREADY_COMPLETED)", server,
               f"{progress.ending}; the re-run is served from the cache")


async def test_a_timeout_after_the_job_finished_keeps_the_paid_result(monkeypatch):
    allow_short_timeouts(monkeypatch, 0.1)
    with StandInServer(processing_delay=0.1) as server:
        freeze_status(server)
        request = EditRequest(m.MULTI_MODELS["pro"], "p", seed=1)
        cache = default_result_cache()
        async with fast_client_factory()(key=TEST_KEY, base_url=server.base_url) as client:
            with pytest.raises(FalTimeoutError) as caught:
                await run_edit(client, request, [reference(1)], options=EditOptions(timeout=0.5),
                               store=JobStore.beside(cache))
            assert "billed" in str(caught.value) and "kept" in str(caught.value)
            await wait_until(lambda: stored_bytes(cache) > 0)
            again = await run_edit(client, request, [reference(1)], store=JobStore.beside(cache))
        assert again.info["cached"] and len(server.submits()) == 1
        record("timeout after the job finished (ALREADY_COMPLETED)", server,
               "FalTimeoutError; the paid result is kept and the re-run is served from the cache")


async def test_the_interrupt_after_the_job_finished_logs_that_it_was_billed(monkeypatch, caplog,
                                                                            fast_node_clients):
    comfy = FakeComfy().install(monkeypatch)
    caplog.set_level(logging.INFO, logger="fal_kontext")
    with StandInServer(processing_delay=0.1) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        freeze_status(server)
        node = asyncio.ensure_future(call_node(FalKontextMulti, prompt="p", images=solid(RED)))
        while not server.submits():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        comfy.press_cancel()
        with pytest.raises(comfy.InterruptProcessingException):
            await node
        assert len(server.submits()) == 1 and server.cancels()
    billed = [r.getMessage() for r in caplog.records if "billed" in r.getMessage()]
    assert billed and all(r.levelno >= logging.WARNING for r in caplog.records
                          if "billed" in r.getMessage())
    record("ComfyUI Cancel after the job finished", server, f"interrupted; logged: {billed[0]}")


async def test_the_spend_cap_holds_across_concurrent_nodes(fal, monkeypatch):
    monkeypatch.setenv(SPEND_CAP_ENV, "0.10")
    runs = [call_node(FalKontextMulti, prompt=f"run {i}", images=solid(RED), seed=i,
                      use_result_cache=False) for i in range(5)]
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    succeeded = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, SpendCapError)]
    assert len(succeeded) == 2 and len(refused) == 3, outcomes
    assert len(fal.submits()) == 2
    assert PROCESS_SPENDING.spent_usd == pytest.approx(0.08)
    assert all("FAL_KONTEXT_MAX_SPEND_USD" in str(e) and "\n" not in str(e) for e in refused)
    assert all(json.loads(info)["estimated_cost_usd"] == 0.04 for _, _, info in succeeded)
    record("cap $0.10, 5 concurrent runs at $0.04", fal,
           f"{len(succeeded)} succeeded, {len(refused)} SpendCapError: {refused[0]}")


EXPECTED_ROWS = len(NODE_FAULTS) + 5 + 5
