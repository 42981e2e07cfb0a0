"""The billing ledger: what fal would charge, job by job."""
from __future__ import annotations

import time

from fal_kontext.standin import StandInServer
from standin_helpers import MAX_MULTI, MULTI, wait_completed


def _submit(client, server, refs, endpoint=MULTI, **fields):
    return client.post(f"{server.base_url}/{endpoint}",
                       json={"prompt": "p", "image_urls": refs, **fields}).json()


def test_completed_jobs_are_billed_per_image_at_the_endpoint_price(server, client, refs):
    pro = _submit(client, server, refs, num_images=2)
    max_ = _submit(client, server, refs, MAX_MULTI)
    for body in (pro, max_):
        wait_completed(client, body["status_url"])
    billed = server.billed_jobs()
    assert [(b.request_id, b.images, b.usd, b.route) for b in billed] == [
        (pro["request_id"], 2, 0.08, "queue"), (max_["request_id"], 1, 0.08, "queue")]
    assert server.billed_usd() == 0.16


def test_a_job_is_billed_only_once_it_completes(client, refs):
    with StandInServer(processing_delay=0.4) as server:
        body = _submit(client, server, refs)
        assert server.billed_jobs() == []
        wait_completed(client, body["status_url"])
        assert server.billed_request_ids() == [body["request_id"]]


def test_refused_failed_and_cancelled_jobs_are_not_billed(client, refs):
    with StandInServer(processing_delay=0.2, queue_delay=0.0) as server:
        refused = client.post(f"{server.base_url}/{MULTI}", json={"image_urls": refs})
        server.faults.add("submit", status=429)
        limited = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
        server.fail_next_jobs(1, status=500)
        failed = _submit(client, server, refs)
        policy = _submit(client, server, refs, prompt="[policy] p")
        cancelled = _submit(client, server, refs)
        client.put(cancelled["cancel_url"])
        for body in (failed, policy, cancelled):
            wait_completed(client, body["status_url"])
        billed = server.billed_jobs()
    assert (refused.status_code, limited.status_code) == (422, 429)
    assert billed == []


def test_blocking_runs_are_billed_too(server, client, refs):
    response = client.post(f"{server.run_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
    assert [(b.request_id, b.route) for b in server.billed_jobs()] == [
        (response.headers["x-fal-request-id"], "run")]


def test_billing_survives_the_result_retention_window(client, refs):
    with StandInServer(processing_delay=0.05, result_retention=0.2) as server:
        body = _submit(client, server, refs)
        wait_completed(client, body["status_url"])
        time.sleep(0.3)
        assert client.get(body["status_url"]).status_code == 404
        assert server.billed_request_ids() == [body["request_id"]]
