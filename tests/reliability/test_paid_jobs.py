"""What the user paid for survives: crashes, late cancels, cancels fal ignores, slow and garbled
submits, identical nodes, stalled downloads and status outages (the job ledger).

Every scenario runs over real HTTP against the stand-in, the crash ones in real processes killed
with a signal. Each asserts the submits, the jobs fal billed and cancelled, that the node returned
promptly, and that the identical re-run costs no new submit and delivers the first job's image.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_comfy import FakeComfy
from node_calls import call_node, solid
from fal_kontext.client import FalClient, FalTimeoutError
from fal_kontext.jobs.ledger import ledger_for
from fal_kontext.jobs.result_images import decode_image
from fal_kontext.jobs.runner import PROCESS_JOBS
from fal_kontext.jobs.store import JobStore
from fal_kontext.jobs.result_cache import default_result_cache
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from fal_kontext.standin import StandInServer
from results_book import table
from support import allow_short_timeouts, TEST_KEY, png_bytes, stored_bytes, wait_until

pytestmark = pytest.mark.anyio
RED = (0.9, 0.1, 0.1)
PROMPT_RETURN_SECONDS = 2.0  # the node must be back this soon after Cancel or its timeout
ROWS: dict[str, list[object]] = {}
EXPECTED_ROWS = 14


@pytest.fixture(scope="module", autouse=True)
def paid_jobs_results(results_book):
    yield
    if len(ROWS) == EXPECTED_ROWS:
        results_book.set_section("paid-jobs", "## What was paid for survives\n\n" + table(
            ["situation", "submits", "billed", "cancels", "node back after", "identical re-run"],
            list(ROWS.values())))


@pytest.fixture
def fal(monkeypatch):
    """The stand-in as fal, ComfyUI's runtime imitated, short timeouts allowed."""
    allow_short_timeouts(monkeypatch, 0.5)
    comfy = FakeComfy().install(monkeypatch)
    with StandInServer(processing_delay=0.2) as server:
        monkeypatch.setenv("FAL_KEY", TEST_KEY)
        monkeypatch.setenv("FAL_KONTEXT_BASE_URL", server.base_url)
        server.comfy = comfy
        yield server


def billed(server) -> list[str]:
    """The jobs the stand-in's billing counted (completed with an output)."""
    return server.billed_request_ids()


def run_node(**overrides):
    inputs = {"prompt": "put the duck on the shirt", "images": solid(RED), "seed": 7, **overrides}
    return asyncio.ensure_future(call_node(FalKontextMulti, **inputs))


async def cancel_and_time(server, node) -> float:
    """Press ComfyUI's Cancel; seconds until the node gave control back."""
    started = time.monotonic()
    server.comfy.press_cancel()
    with pytest.raises(server.comfy.InterruptProcessingException):
        await node
    seconds = time.monotonic() - started
    server.comfy.interrupt_flag = False  # ComfyUI clears it when the next prompt starts
    return seconds


async def rerun_is_free(server, first_job: str) -> None:
    """The identical run: no new submit, and the image is the first job's."""
    submits = len(server.submits())
    _, _, info = await run_node()
    info = json.loads(info)
    assert len(server.submits()) == submits, "the identical re-run paid again"
    assert info["request_id"] == first_job and info["cached"]


def cached_entries() -> int:
    cache = default_result_cache()
    return 0 if cache is None else int(stored_bytes(cache) > 0)


def last_status_text(server) -> str:
    return server.comfy.texts[-1][1] if server.comfy.texts else ""


def record(situation: str, server, seconds: float | None, rerun: str) -> None:
    ROWS[situation] = [situation, len(server.submits()), len(billed(server)), len(server.cancels()),
                       "—" if seconds is None else f"{seconds:.2f} s", rerun]


async def test_cancel_while_the_result_downloads_keeps_it(fal):
    fal.faults.add("file", delay=1.5)
    node = run_node()
    await wait_until(lambda: fal.count("file") >= 1)
    seconds = await cancel_and_time(fal, node)
    assert seconds < PROMPT_RETURN_SECONDS
    assert "Cancelled" in last_status_text(fal) and "kept" in last_status_text(fal)
    await wait_until(lambda: cached_entries())
    (job,) = fal.jobs
    await rerun_is_free(fal, job)
    assert billed(fal) == [job]
    record("Cancel while the result downloads", fal, seconds, "0 submits, first job's image")


async def test_a_cancel_fal_ignores_still_delivers_the_result_it_bills(fal):
    fal.processing_delay = 1.5
    node = run_node()
    await wait_until(lambda: any(job.status == "IN_PROGRESS" for job in fal.jobs.values()))
    # The app ignores the cancel signal: fal answers 202 and the job runs on (fal's docs allow it).
    fal.ignore_cancel_in_progress = True
    seconds = await cancel_and_time(fal, node)
    assert seconds < PROMPT_RETURN_SECONDS
    assert last_status_text(fal) == "Cancelled · fal may still bill $0.04; the result will be kept"
    await wait_until(lambda: cached_entries())
    (job,) = fal.jobs
    assert billed(fal) == [job] and len(fal.cancels()) == 1
    await rerun_is_free(fal, job)
    record("Cancel that fal ignores (job completes)", fal, seconds, "0 submits, first job's image")


async def test_cancel_during_a_slow_submit_cancels_the_job_once_it_has_an_id(fal):
    fal.queue_delay = 3.0
    fal.faults.add("submit", delay=1.0)  # the job is created at once; its answer comes late
    node = run_node()
    await wait_until(lambda: fal.count("submit") >= 1)
    await asyncio.sleep(0.2)
    seconds = await cancel_and_time(fal, node)
    assert seconds < PROMPT_RETURN_SECONDS
    await wait_until(lambda: fal.cancels())
    (job,) = fal.jobs.values()
    await wait_until(lambda: job.cancelled)
    assert billed(fal) == []
    fal.queue_delay = 0.0
    _, _, info = await run_node()  # nothing was billed, so the re-run has to submit
    assert json.loads(info)["request_id"] != job.request_id and len(fal.submits()) == 2
    record("Cancel during a slow submit", fal, seconds,
           "first job cancelled while queued (0 billed); the re-run submits once")


@pytest.mark.parametrize("damage", ["malformed_json", "truncate"])
async def test_a_garbled_submit_answer_is_followed_by_the_id_in_its_header(fal, damage):
    fal.faults.add("submit", **{damage: True})
    _, _, info = await run_node()
    (job,) = fal.jobs
    assert json.loads(info)["request_id"] == job and billed(fal) == [job]
    await rerun_is_free(fal, job)
    record(f"Submit answer garbled ({damage.replace('_', ' ')})", fal, None,
           "0 submits, first job's image")


async def test_two_identical_nodes_in_one_prompt_share_one_job(fal):
    first, second = await asyncio.gather(run_node(), run_node())
    (job,) = fal.jobs
    assert len(fal.submits()) == 1
    assert json.loads(first[2])["request_id"] == json.loads(second[2])["request_id"] == job
    assert first[0].equal(second[0])
    # One node paid; the other says it followed that job and was not billed again.
    shared = sorted(bool(json.loads(node[2]).get("shared_job")) for node in (first, second))
    assert shared == [False, True]
    finals = [text for _, text in fal.comfy.texts if text.startswith("Done")]
    assert "Done · 1 image · $0.04" in finals
    assert f"Done · 1 image · from fal request {job[:8]}, already paid · $0 (saved $0.04)" in finals
    await rerun_is_free(fal, job)
    record("Two identical nodes in one prompt", fal, None, "0 submits, first job's image")


async def test_the_timeout_bounds_a_stalled_download_and_the_result_is_kept(fal):
    fal.faults.add("file", delay=3.0)
    started = time.monotonic()
    with pytest.raises(FalTimeoutError) as caught:
        await run_node(timeout_seconds=1)
    seconds = time.monotonic() - started - 1
    assert seconds < PROMPT_RETURN_SECONDS
    assert "billed" in str(caught.value) and "kept" in str(caught.value)
    assert str(caught.value) in last_status_text(fal)  # the status line ends with the error
    await wait_until(lambda: cached_entries())
    (job,) = fal.jobs
    await rerun_is_free(fal, job)
    record("timeout_seconds=1 with a stalled download", fal, seconds, "0 submits, first job's image")


async def test_a_three_second_status_outage_is_ridden_out(fal):
    fal.processing_delay = 1.0
    for route in ("status", "status_stream"):
        fal.faults.add(route, times=10_000, status=503)
    threading.Timer(3.0, fal.faults.clear).start()
    _, _, info = await run_node()
    (job,) = fal.jobs
    assert json.loads(info)["request_id"] == job and fal.cancels() == [] and billed(fal) == [job]
    record("3 s of 503s on every status request", fal, None, "success, no cancel")


# -- the process running the job dies ----------------------------------------------------------

# The CLI's main in a child whose result cache cannot store anything (a full disk).
_FULL_DISK_CLI = """
import sys
from fal_kontext.jobs.result_cache import ResultCache
def no_space(*args):
    raise OSError(28, "No space left on device")
ResultCache._put = no_space
from fal_kontext.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _edit_arguments(reference: Path, output: Path, *extra: str) -> list[str]:
    return ["edit", str(reference), "--prompt", "p", "--seed", "11", "-o", str(output), "--quiet",
            "--timeout", "60", *extra]


def _start_edit(tmp_path: Path, server, *extra: str, full_disk: bool = False,
                output: str = "out") -> subprocess.Popen:
    reference = tmp_path / "reference.png"
    reference.write_bytes(png_bytes((10, 120, 200)))
    env = {**os.environ, "FAL_KEY": TEST_KEY, "FAL_KONTEXT_BASE_URL": server.base_url}
    program = ["-c", _FULL_DISK_CLI] if full_disk else ["-m", "fal_kontext"]
    return subprocess.Popen([sys.executable, *program,
                             *_edit_arguments(reference, tmp_path / output, *extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _ledger_names_job() -> bool:
    ledger = ledger_for(default_result_cache().directory)
    return any(entry.request_id for entry in ledger.entries())


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
async def test_a_process_killed_mid_job_costs_nothing_more(tmp_path, how):
    with StandInServer(processing_delay=1.5) as server:
        first = _start_edit(tmp_path, server)
        await wait_until(lambda: server.submits() and _ledger_names_job(), timeout=30)
        first.send_signal(how)
        first.wait(10)
        assert first.returncode != 0
        (job,) = server.jobs
        second = _start_edit(tmp_path, server)
        stdout, stderr = second.communicate(timeout=60)
        assert second.returncode == 0, stderr.decode()
        assert len(server.submits()) == 1 and billed(server) == [job]
        cache = default_result_cache()
        entries = list(cache.directory.glob("*/*/entry.json"))
        assert [json.loads(e.read_text())["info"]["request_id"] for e in entries] == [job]
        assert not list(ledger_for(cache.directory).entries()), "the ledger forgets collected jobs"
        name = "killed with SIGKILL" if how == signal.SIGKILL else "stopped with SIGTERM"
        record(f"Process {name} mid-job, then the same edit", server, None,
               "adopts the first job: 0 submits, its image")


async def test_with_the_cache_off_a_process_killed_mid_job_costs_nothing_more(tmp_path):
    with StandInServer(processing_delay=1.5) as server:
        first = _start_edit(tmp_path, server, "--no-result-cache")
        await wait_until(lambda: server.submits() and _ledger_names_job(), timeout=30)
        first.kill()
        first.wait(10)
        (job,) = server.jobs
        second = _start_edit(tmp_path, server, "--no-result-cache")
        stdout, stderr = second.communicate(timeout=60)
        assert second.returncode == 0, stderr.decode()
        assert len(server.submits()) == 1 and billed(server) == [job]
        assert not list(default_result_cache().directory.glob("*/*/entry.json")), "cache stays off"
        assert not list(ledger_for(default_result_cache().directory).entries())
        record("Cache off: process killed mid-job, then the same edit", server, None,
               "adopts the first job: 0 submits, its image")


async def test_two_processes_queueing_the_same_edit_at_once_pay_once(tmp_path):
    with StandInServer(processing_delay=1.0) as server:
        runs = [_start_edit(tmp_path, server, "--no-result-cache", output=f"out-{n}")
                for n in (1, 2)]
        for run in runs:
            _, stderr = run.communicate(timeout=60)
            assert run.returncode == 0, stderr.decode()
        (job,) = server.jobs
        assert len(server.submits()) == 1 and billed(server) == [job]
        sidecars = sorted(tmp_path.glob("out-*/*.json"))
        assert len(sidecars) == 2
        assert {json.loads(path.read_text())["request_id"] for path in sidecars} == {job}
        record("Two processes queue the same edit at once", server, None,
               "one submits, the other follows its job")


async def test_a_result_a_full_disk_could_not_store_is_fetched_from_fal_after_a_restart(tmp_path):
    with StandInServer(processing_delay=0.3) as server:
        first = _start_edit(tmp_path, server, full_disk=True)
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr.decode()
        (job,) = server.jobs
        (entry,) = ledger_for(default_result_cache().directory).entries()
        assert entry.request_id == job and entry.state == "completed"
        second = _start_edit(tmp_path, server, output="again")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 0, stderr.decode()
        assert len(server.submits()) == 1 and billed(server) == [job]
        (sidecar,) = (tmp_path / "again").glob("*.json")
        assert json.loads(sidecar.read_text())["request_id"] == job
        assert not list(ledger_for(default_result_cache().directory).entries())
        record("Result cache cannot store (disk full), then a restart", server, None,
               "fetched from fal by its id: 0 submits")


async def test_jobs_left_by_a_dead_process_are_collected_when_the_pack_loads(tmp_path):
    with StandInServer(processing_delay=1.0) as server:
        first = _start_edit(tmp_path, server)
        await wait_until(lambda: server.submits() and _ledger_names_job(), timeout=30)
        first.kill()
        first.wait(10)
        (job,) = server.jobs
        cache = default_result_cache()
        async with FalClient(key=TEST_KEY, base_url=server.base_url) as client:
            flights = PROCESS_JOBS.collect_left_jobs(client, JobStore.beside(cache), decode_image)
            assert [f.request_id for f in flights] == [job]
            await wait_until(lambda: stored_bytes(cache) > 0)
        second = _start_edit(tmp_path, server)
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 0, stderr.decode()
        assert len(server.submits()) == 1 and billed(server) == [job]
        record("Process killed; the pack loads again later", server, None,
               "collected in the background; the re-run is served from the cache")


@pytest.mark.parametrize("fal_ignores_the_cancel", [True, False], ids=["cancel ignored", "cancel works"])
async def test_queue_again_right_after_cancel(fal, fal_ignores_the_cancel):
    fal.processing_delay = 1.0
    node = run_node()
    await wait_until(lambda: any(job.status == "IN_PROGRESS" for job in fal.jobs.values()))
    fal.ignore_cancel_in_progress = fal_ignores_the_cancel
    await cancel_and_time(fal, node)
    _, _, info = await run_node()  # the user presses Queue again at once
    first = next(iter(fal.jobs))
    if fal_ignores_the_cancel:
        assert json.loads(info)["request_id"] == first and len(fal.submits()) == 1
        assert json.loads(info)["shared_job"] and "already paid · $0 (saved $0.04)" in last_status_text(fal)
    else:
        assert json.loads(info)["request_id"] != first and len(fal.submits()) == 2
        assert billed(fal) == [json.loads(info)["request_id"]]
