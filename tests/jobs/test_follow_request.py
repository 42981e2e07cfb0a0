"""Specification of `JobRunner.follow_request`: a request fal already has, named by its id, is an
adopted job in the state machine: followed from QUEUED, collected and stored, never submitted,
never cancelled, one job for every run that asks for the same request.

fal is scripted (tests/jobs/scripted_fal.py); the nodes and the CLI over real HTTP are in
tests/nodes/test_result_by_request_id.py and tests/cli/test_cli_collect.py.
"""
from __future__ import annotations

import pytest

from fal_kontext.client.errors import JobNotFoundError
from fal_kontext.jobs.job import Origin, Ticket
from fal_kontext.jobs.ledger import ledger_for
from fal_kontext.jobs.lifecycle import EndingKind, JobPhase
from fal_kontext.jobs.result_cache import ResultCache
from fal_kontext.jobs.result_collection import CollectSpec
from fal_kontext.jobs.result_images import decode_image
from fal_kontext.jobs.runner import JobRunner
from fal_kontext.jobs.store import JobStore
from scripted_fal import ENDPOINT, ScriptedFal, ScriptedJob
from support import wait_until

pytestmark = pytest.mark.anyio
KEY = "b" * 64
SPEC = CollectSpec(endpoint_id=ENDPOINT, instruction="", default_content_type="image/png",
                   estimated_cost_usd=0.0)
P = JobPhase


@pytest.fixture
def fal():
    fal = ScriptedFal()
    fal.jobs["req-9"] = ScriptedJob("req-9", {"prompt": "sent by a run that died"})
    return fal


def store(tmp_path) -> JobStore:
    directory = tmp_path / "results"
    return JobStore(ledger_for(directory), ResultCache(directory))


def follow(runner: JobRunner, client, job_store: JobStore, request_id: str = "req-9") -> Ticket:
    return runner.follow_request(KEY, request_id, client, SPEC, job_store, decode=decode_image)


async def test_a_followed_request_is_adopted_collected_and_stored_without_a_submit(runner, fal,
                                                                                   tmp_path):
    job_store = store(tmp_path)
    ticket = follow(runner, fal.client(), job_store)
    assert not ticket.leading and ticket.job.origin is Origin.ADOPTED
    assert ticket.request_id == "req-9" and ticket.job.phases == [P.QUEUED]
    fal.move_all("IN_PROGRESS")
    await wait_until(lambda: ticket.job.phase is P.RUNNING, timeout=5)
    fal.move_all("COMPLETED")
    result = await ticket.result()
    assert result.info["request_id"] == "req-9" and result.info["estimated_cost_usd"] == 0.0
    assert ticket.job.phases == [P.QUEUED, P.RUNNING, P.COLLECTING, P.ENDED]
    assert ticket.job.ending.kind is EndingKind.COMPLETED_DELIVERED and ticket.job.ending.shared
    assert fal.submits() == [] and fal.cancels() == []
    assert job_store.cache.get(KEY) is not None, "stored under the key it was asked for"
    assert list(job_store.ledger.entries()) == [], "an id the user holds needs no ledger entry"


async def test_leaving_a_followed_request_never_cancels_it_and_its_result_is_still_kept(
        runner, fal, tmp_path):
    job_store = store(tmp_path)
    ticket = follow(runner, fal.client(), job_store)
    fal.move_all("IN_PROGRESS")
    await wait_until(lambda: ticket.job.phase is P.RUNNING, timeout=5)
    ending = await ticket.leave()
    assert ending.kind is EndingKind.LEFT_RUNNING and ending.shared
    fal.move_all("COMPLETED")
    await wait_until(lambda: job_store.cache.get(KEY) is not None, timeout=5)
    assert fal.cancels() == [] and ticket.job.ending.kind is EndingKind.COMPLETED_KEPT


async def test_runs_following_the_same_request_share_one_job(runner, fal, tmp_path):
    job_store = store(tmp_path)
    client = fal.client()
    first, second = follow(runner, client, job_store), follow(runner, client, job_store)
    assert first.job is second.job
    fal.move_all("COMPLETED")
    assert (await first.result()).images[0].data == (await second.result()).images[0].data


async def test_an_id_fal_does_not_know_ends_the_follow_with_job_not_found(runner, fal, tmp_path):
    job_store = store(tmp_path)
    ticket = follow(runner, fal.client(), job_store, "req-404")
    with pytest.raises(JobNotFoundError):
        await ticket.result()
    assert ticket.job.ending.kind is EndingKind.FAILED and fal.submits() == []
    assert job_store.cache.get(KEY) is None and list(job_store.ledger.entries()) == []
