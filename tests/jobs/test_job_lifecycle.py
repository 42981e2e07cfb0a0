"""Specification of the job state machine (jobs/lifecycle.py, jobs/job.py, jobs/runner.py): every
move of the table, every way a job ends, cancel in each phase, adoption, the cache switched off.

fal is scripted (tests/jobs/scripted_fal.py): the test moves each job through fal's states.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from fal_kontext.client.errors import JobNotFoundError, ValidationError
from fal_kontext.jobs.job import JobNotStartedError, JobOrder, Ticket
from fal_kontext.jobs.ledger import LedgerEntry, ledger_for
from fal_kontext.jobs.lifecycle import (TRANSITIONS, EndingKind, JobPhase, TransitionError,
                                        check_transition)
from fal_kontext.jobs.result_cache import ResultCache
from fal_kontext.jobs.result_collection import CollectSpec
from fal_kontext.jobs.result_images import decode_image
from fal_kontext.jobs.runner import JobRunner
from fal_kontext.jobs.store import JobStore
from scripted_fal import ENDPOINT, ScriptedFal
from support import wait_until

pytestmark = pytest.mark.anyio
KEY = "a" * 64
SPEC = CollectSpec(endpoint_id=ENDPOINT, instruction="p", default_content_type="image/png",
                   estimated_cost_usd=0.04)
ORDER = JobOrder(arguments=lambda urls: {"prompt": "p", "image_urls": urls},
                 urls=["https://cdn.example.test/a.png"])
P = JobPhase


@pytest.fixture
def fal():
    return ScriptedFal()


def store(tmp_path, *, cache: bool = True) -> JobStore:
    directory = tmp_path / "results"
    return JobStore(ledger_for(directory), ResultCache(directory) if cache else None)


def join(runner: JobRunner, client, job_store: JobStore, key: str = KEY) -> Ticket:
    return runner.join(key, client, SPEC, job_store, start_deadline=60.0, decode=decode_image)


async def phase_reached(ticket: Ticket, phase: JobPhase) -> None:
    await wait_until(lambda: ticket.job.phase is phase, timeout=5)


async def submitted(runner: JobRunner, fal: ScriptedFal, job_store: JobStore, *,
                    running: bool = False) -> Ticket:
    """A job this run leads, submitted and queued at fal (and running there, if asked)."""
    ticket = join(runner, fal.client(), job_store)
    ticket.submit(ORDER)
    await phase_reached(ticket, P.QUEUED)
    if running:
        fal.move_all("IN_PROGRESS")
        await phase_reached(ticket, P.RUNNING)
    return ticket


# -- the table ----------------------------------------------------------------------------------
@pytest.mark.parametrize("current", list(JobPhase))
@pytest.mark.parametrize("new", list(JobPhase))
def test_a_move_is_allowed_exactly_when_the_table_lists_it(current, new):
    if new is current or new in TRANSITIONS[current]:
        check_transition(current, new)
    else:
        with pytest.raises(TransitionError):
            check_transition(current, new)


def test_an_ended_job_goes_nowhere_and_every_phase_can_end():
    assert TRANSITIONS[P.ENDED] == frozenset()
    assert all(P.ENDED in moves for phase, moves in TRANSITIONS.items() if phase is not P.ENDED)


# -- a job's life -------------------------------------------------------------------------------
async def test_a_job_goes_through_every_phase_and_is_delivered_and_stored(runner, fal, tmp_path):
    job_store = store(tmp_path)
    client = fal.client()
    ticket = join(runner, client, job_store)
    assert ticket.leading and ticket.job.phase is P.PREPARING
    assert job_store.ledger.read(KEY).state == "preparing", "claimed before anything is sent"
    ticket.submit(ORDER)
    await phase_reached(ticket, P.QUEUED)
    assert job_store.ledger.read(KEY).request_id == "req-1"
    fal.move_all("IN_PROGRESS")
    await phase_reached(ticket, P.RUNNING)
    fal.move_all("COMPLETED")
    result = await ticket.result()
    assert result.info["request_id"] == "req-1"
    assert ticket.job.phases == [P.PREPARING, P.SUBMITTING, P.QUEUED, P.RUNNING, P.COLLECTING,
                                 P.ENDED]
    assert ticket.job.ending.kind is EndingKind.COMPLETED_DELIVERED
    assert ticket.job.ending.kept == "cache"
    assert job_store.cache.get(KEY) is not None and job_store.ledger.read(KEY) is None
    await client.aclose()


async def test_a_job_fal_fails_ends_failed_and_forgets_its_ledger_entry(runner, fal, tmp_path):
    job_store = store(tmp_path)
    ticket = await submitted(runner, fal, job_store)
    fal.jobs["req-1"].result = {"detail": [{"loc": ["body", "prompt"], "msg": "bad",
                                            "type": "value_error"}]}
    fal.move_all("COMPLETED")
    with pytest.raises(ValidationError):
        await ticket.result()
    assert ticket.job.ending.kind is EndingKind.FAILED
    assert ticket.job.ending.request_id == "req-1" and not ticket.job.ending.nothing_billed
    assert job_store.ledger.read(KEY) is None


# -- cancel in each phase -----------------------------------------------------------------------
async def test_cancel_while_preparing_ends_it_never_submitted(runner, fal, tmp_path):
    job_store = store(tmp_path)
    ticket = join(runner, fal.client(), job_store)
    ending = await ticket.leave()
    assert ending.kind is EndingKind.NEVER_SUBMITTED and ending.nothing_billed
    assert fal.submits() == [] and job_store.ledger.read(KEY) is None
    with pytest.raises(JobNotStartedError):
        await ticket.result()


async def test_cancel_while_submitting_cancels_the_job_the_moment_fal_names_it(runner, fal,
                                                                                tmp_path):
    fal.submit_gate = asyncio.Event()
    ticket = join(runner, fal.client(), store(tmp_path))
    ticket.submit(ORDER)
    await phase_reached(ticket, P.SUBMITTING)
    ending = await ticket.leave()
    assert ending.kind is EndingKind.CANCEL_REQUESTED and ending.request_id is None
    runner.call_soon(fal.submit_gate.set)  # the gate belongs to the runner's loop
    await wait_until(lambda: len(fal.cancels()) == 1, timeout=5)
    assert fal.jobs["req-1"].cancelled


async def test_cancel_while_queued_stops_it_before_it_starts(runner, fal, tmp_path):
    ticket = await submitted(runner, fal, store(tmp_path))
    ending = await ticket.leave()
    assert ending.kind is EndingKind.CANCELLED_BEFORE_START and ending.nothing_billed
    assert ending.request_id == "req-1" and len(fal.cancels()) == 1


async def test_cancel_while_running_asks_fal_and_keeps_what_it_still_delivers(runner, fal,
                                                                              tmp_path):
    job_store = store(tmp_path)
    ticket = await submitted(runner, fal, job_store, running=True)
    ending = await ticket.leave()
    assert ending.kind is EndingKind.CANCEL_REQUESTED and not ending.nothing_billed
    assert ending.kept == "cache"
    assert job_store.ledger.read(KEY).state == "cancel_requested"
    fal.move_all("COMPLETED")  # the app ignored the cancel signal
    await wait_until(lambda: job_store.cache.get(KEY) is not None, timeout=5)
    assert ticket.job.ending.kind is EndingKind.COMPLETED_KEPT
    # Never handed to a run: the ledger keeps it, so a re-run with the cache off gets it too.
    assert job_store.ledger.read(KEY).state == "completed"
    rerun = join(runner, fal.client(), JobStore(job_store.ledger, None))
    assert not rerun.leading
    assert (await rerun.result()).info["request_id"] == "req-1" and len(fal.submits()) == 1
    assert job_store.ledger.read(KEY) is None, "delivered with the cache off: forgotten"


async def test_cancel_answered_already_completed_keeps_the_paid_result(runner, fal, tmp_path):
    fal.cancel_answer = 400
    job_store = store(tmp_path)
    ticket = await submitted(runner, fal, job_store)
    fal.move_all("COMPLETED")  # finished at fal, before the status shows it to us
    ending = await ticket.leave()
    assert ending.kind is EndingKind.COMPLETED_KEPT and not ending.nothing_billed
    await wait_until(lambda: job_store.cache.get(KEY) is not None, timeout=5)


async def test_an_unconfirmed_cancel_leaves_the_job_followed(runner, fal, tmp_path):
    fal.cancel_answer = 500
    ticket = await submitted(runner, fal, store(tmp_path), running=True)
    ending = await ticket.leave()
    assert ending.kind is EndingKind.LEFT_RUNNING and not ending.shared
    assert ticket.job.ending is None, "still followed"


async def test_a_cancel_fal_does_not_know_ends_it_failed(runner, fal, tmp_path):
    fal.cancel_answer = 404
    ticket = await submitted(runner, fal, store(tmp_path))
    ending = await ticket.leave()
    assert ending.kind is EndingKind.FAILED and isinstance(ending.error, JobNotFoundError)


async def test_a_run_that_leaves_while_another_waits_leaves_the_job_going(runner, fal, tmp_path):
    job_store = store(tmp_path, cache=False)
    client = fal.client()
    leader, follower = join(runner, client, job_store), join(runner, client, job_store)
    assert leader.leading and not follower.leading and follower.job is leader.job
    leader.submit(ORDER)
    await phase_reached(leader, P.QUEUED)
    ending = await leader.leave()
    assert ending.kind is EndingKind.LEFT_RUNNING and ending.still_wanted
    assert fal.cancels() == []
    fal.move_all("COMPLETED")
    assert (await follower.result()).info["request_id"] == "req-1"


async def test_a_leader_stopping_before_its_submit_lets_a_waiting_run_lead(runner, fal, tmp_path):
    job_store = store(tmp_path)
    client = fal.client()
    leader, follower = join(runner, client, job_store), join(runner, client, job_store)
    leader.fail_before_submit(JobNotStartedError("stopped"))
    with pytest.raises(JobNotStartedError) as caught:
        await follower.result()
    assert follower.may_run_anew(caught.value) and not leader.may_run_anew(caught.value)
    again = join(runner, client, job_store)
    assert again.leading, "the key is free again"


# -- adoption -----------------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def left_entry(request_id: str | None, *, pid: int, state: str = "submitted") -> LedgerEntry:
    now = time.time()
    return LedgerEntry(cache_key=KEY, endpoint_id=ENDPOINT, submitted_at=now, keep_until=now + 3600,
                       request_id=request_id, state=state, owner_pid=pid, owner_token="other",
                       collect=asdict(SPEC))


async def test_a_job_left_by_a_dead_process_is_adopted_not_paid_again(runner, fal, tmp_path):
    job_store = store(tmp_path)
    client = fal.client()
    fal.jobs.clear()
    first = join(runner, client, store(tmp_path / "elsewhere"))  # makes req-1 at fal
    first.submit(ORDER)
    await phase_reached(first, P.QUEUED)
    job_store.ledger.write(left_entry("req-1", pid=dead_pid()))
    ticket = join(runner, client, job_store)
    assert not ticket.leading and ticket.job.phase is P.QUEUED
    assert job_store.ledger.read(KEY).owner_token != "other", "this process follows it now"
    fal.move_all("COMPLETED")
    result = await ticket.result()
    assert result.info["request_id"] == "req-1" and len(fal.submits()) == 1
    assert ticket.job.ending.kind is EndingKind.COMPLETED_DELIVERED and ticket.job.ending.shared
    assert job_store.ledger.read(KEY) is None and job_store.cache.get(KEY) is not None


async def test_a_submit_in_flight_in_another_process_is_awaited_then_followed(runner, fal,
                                                                              tmp_path):
    job_store = store(tmp_path)
    client = fal.client()
    other = left_entry(None, pid=os.getppid(), state="submitting")  # a live owner
    job_store.ledger.write(other)
    ticket = join(runner, client, job_store)
    assert not ticket.leading
    await phase_reached(ticket, P.AWAITING_NAME)
    elsewhere = join(runner, client, store(tmp_path / "other-process"))
    elsewhere.submit(ORDER)  # what the other process does: its submit reaches fal ...
    await phase_reached(elsewhere, P.QUEUED)
    other.request_id, other.state = "req-1", "submitted"
    job_store.ledger.write(other)  # ... and its ledger entry names the job
    await phase_reached(ticket, P.QUEUED)
    fal.move_all("COMPLETED")
    assert (await ticket.result()).info["request_id"] == "req-1"
    assert len(fal.submits()) == 1


async def test_when_the_other_process_gives_up_before_naming_the_job_this_run_may_lead(
        runner, fal, tmp_path):
    job_store = store(tmp_path)
    job_store.ledger.write(left_entry(None, pid=os.getppid(), state="preparing"))
    ticket = join(runner, fal.client(), job_store)
    await phase_reached(ticket, P.AWAITING_NAME)
    job_store.ledger.remove(KEY)  # its run failed before submitting
    with pytest.raises(JobNotStartedError) as caught:
        await ticket.result()
    assert ticket.may_run_anew(caught.value)
    assert join(runner, fal.client(), job_store).leading


async def test_an_unnamed_submit_of_a_dead_process_frees_the_key(runner, fal, tmp_path, caplog):
    job_store = store(tmp_path)
    job_store.ledger.write(left_entry(None, pid=dead_pid(), state="submitting"))
    ticket = join(runner, fal.client(), job_store)
    assert ticket.leading
    assert "Result by Request ID" in caplog.text, "the log names the way to get that result"


# -- the cache switched off ---------------------------------------------------------------------
async def test_with_the_cache_off_identical_runs_share_one_job_and_forget_it_once_delivered(
        runner, fal, tmp_path):
    job_store = store(tmp_path, cache=False)
    client = fal.client()
    first, second = join(runner, client, job_store), join(runner, client, job_store)
    first.submit(ORDER)
    await phase_reached(first, P.QUEUED)
    fal.move_all("COMPLETED")
    results = await asyncio.gather(first.result(), second.result())
    assert [r.info["request_id"] for r in results] == ["req-1", "req-1"]
    assert len(fal.submits()) == 1
    assert job_store.ledger.read(KEY) is None, "finished results are not re-used with the cache off"
    assert join(runner, client, job_store).leading


async def test_with_the_cache_off_a_result_finished_after_cancel_is_fetched_by_the_rerun(
        runner, fal, tmp_path):
    fal.cancel_answer = 400  # it had finished already
    job_store = store(tmp_path, cache=False)
    client = fal.client()
    ticket = join(runner, client, job_store)
    ticket.submit(ORDER)
    await phase_reached(ticket, P.QUEUED)
    fal.move_all("COMPLETED")
    ending = await ticket.leave()
    assert ending.kind is EndingKind.COMPLETED_KEPT and ending.kept == "fal"
    await wait_until(lambda: ticket.job.ending is not None, timeout=5)
    assert job_store.ledger.read(KEY).state == "completed"
    rerun = join(runner, client, job_store)
    assert not rerun.leading
    assert (await rerun.result()).info["request_id"] == "req-1" and len(fal.submits()) == 1


# -- bad disks ----------------------------------------------------------------------------------
async def test_a_result_the_cache_cannot_store_keeps_its_entry_and_the_rerun_fetches_it(
        runner, fal, tmp_path, monkeypatch):
    job_store = store(tmp_path)
    monkeypatch.setattr(ResultCache, "_put", lambda *args: (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    client = fal.client()
    ticket = join(runner, client, job_store)
    ticket.submit(ORDER)
    await phase_reached(ticket, P.QUEUED)
    fal.move_all("COMPLETED")
    await ticket.result()
    assert ticket.job.ending.kept == "fal"
    assert job_store.ledger.read(KEY).state == "completed"
    rerun = join(runner, client, job_store)
    assert not rerun.leading
    assert (await rerun.result()).info["request_id"] == "req-1" and len(fal.submits()) == 1


async def test_a_ledger_the_disk_refuses_is_kept_in_memory(runner, fal, tmp_path, caplog):
    blocked = tmp_path / "results"
    blocked.mkdir()
    (blocked / "jobs").write_text("a file where the folder should be")
    job_store = JobStore(ledger_for(blocked), None)
    client = fal.client()
    ticket = join(runner, client, job_store)
    ticket.submit(ORDER)
    await phase_reached(ticket, P.QUEUED)
    assert job_store.ledger.read(KEY).request_id == "req-1"
    assert "remembers it until it ends" in caplog.text
    again = join(runner, client, job_store)
    assert again.job is ticket.job and len(fal.submits()) == 1


@pytest.mark.parametrize("damage", [{"request_id": 42}, {"submitted_at": "yesterday"},
                                    {"collect": ["not", "a", "dict"]}, {"state": "exploded"},
                                    {"surprise": True}])
async def test_a_ledger_entry_with_wrong_types_is_set_aside_not_fatal(runner, fal, tmp_path,
                                                                       caplog, damage):
    import json
    job_store = store(tmp_path)
    path = job_store.ledger.path_for(KEY)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": 1, **asdict(left_entry("req-9", pid=1)), **damage}))
    ticket = join(runner, fal.client(), job_store)
    assert ticket.leading, "the bad entry does not block the run"
    assert path.with_name(path.name + ".bad").exists()
    assert sum("set aside" in record.message for record in caplog.records) == 1
