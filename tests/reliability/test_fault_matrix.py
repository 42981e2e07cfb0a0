"""Every fault at every stage: the edit recovers or raises a clear typed error; never more than
one job at fal (a submit is repeated only after a 429, when fal took nothing), and every job we
stop waiting for is cancelled."""
from __future__ import annotations

import itertools

import pytest

from conftest import READ_TIMEOUT_FAULT_DELAY, fast_client_factory
from fal_kontext.client import JobCancelledError, FalError, JobNotFoundError
from fal_kontext.standin import StandInServer
from fault_matrix import (HTTP_STAGES, MODES, CellOutcome, check_message, check_right_result,
                          fault_kinds, render_matrix, run_cell)
from foreign_host import ForeignHost
from support import TEST_KEY

pytestmark = pytest.mark.anyio

# The foreign host's address is only known once it runs; the cells are named by its placeholder.
KINDS = fault_kinds("http://foreign.invalid", READ_TIMEOUT_FAULT_DELAY)
CELLS = [(kind.name, stage, mode) for kind in KINDS for stage in HTTP_STAGES for mode in MODES
         if kind.applies_to(stage)]
_seeds = itertools.count(1000)


@pytest.fixture(scope="module")
def matrix(results_book):
    with StandInServer(processing_delay=0.05, api_key=TEST_KEY) as server, \
            ForeignHost(mirror_of=server.cdn_url) as foreign:
        kinds = {kind.name: kind for kind in fault_kinds(foreign.url, READ_TIMEOUT_FAULT_DELAY)}
        outcomes: dict[tuple[str, str, str], CellOutcome] = {}
        yield server, foreign, kinds, outcomes
    if len(outcomes) == len(CELLS):  # only a complete run may replace the published table
        results_book.set_section("fault-matrix", render_matrix(outcomes, list(kinds.values())))


@pytest.mark.parametrize("fault,stage,mode", CELLS)
async def test_fault_cell(matrix, fault, stage, mode):
    server, foreign, kinds, outcomes = matrix
    foreign.clear()
    outcome = await run_cell(server, fast_client_factory(), kinds[fault], stage, mode, next(_seeds))

    assert len(outcome.jobs_created) <= 1, "one edit, at most one job at fal"
    if not (stage == "submit" and "429" in fault):
        assert outcome.submits <= 1, "a submit is repeated only when fal took nothing (429)"
    if outcome.request_id and not outcome.completed_seen and not isinstance(outcome.error,
                                                                              JobNotFoundError):
        assert outcome.cancels_for_job >= 1, f"stopped waiting for {outcome.request_id} without cancelling"
    if outcome.orphaned_jobs:
        assert stage == "submit" and outcome.error is not None, "only a lost submit answer leaves a job unknown"
    assert not any(TEST_KEY in str(seen.headers) or TEST_KEY.encode() in seen.body
                   for seen in foreign.seen), "the key reached a foreign host"

    if outcome.error is None:
        check_right_result(outcome, server)
    else:
        assert isinstance(outcome.error, FalError)
        check_message(outcome)
    if stage == "cancel":
        assert isinstance(outcome.error, JobCancelledError) and outcome.cancels_for_job >= 1
    outcomes[(fault, stage, mode)] = outcome
