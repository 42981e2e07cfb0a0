"""Cancel: 202 while queued or running (the job freezes as COMPLETED with an error), 400 after."""
from __future__ import annotations

import time

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, wait_completed


def test_cancel_of_queued_job_is_202_and_completes_it_with_an_error(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        response = client.put(body["cancel_url"])
        status = client.get(body["status_url"], params={"logs": "1"}).json()
        job = server.jobs[body["request_id"]]
    assert response.status_code == 202
    assert response.json() == {"status": "CANCELLATION_REQUESTED"}
    assert status["status"] == "COMPLETED"
    assert status["error"] == "Request was cancelled" and status["error_type"] == "client_cancelled"
    assert job.cancelled and job.completed_at is not None


def test_cancel_of_running_job_freezes_its_logs(client, refs):
    with StandInServer(processing_delay=0.8) as server:
        body = client.post(f"{server.base_url}/{MULTI}",
                           json={"prompt": "p", "image_urls": refs, "num_images": 3}).json()
        time.sleep(0.3)
        assert client.put(body["cancel_url"]).status_code == 202
        frozen = client.get(body["status_url"], params={"logs": "1"}).json()
        time.sleep(0.6)
        later = client.get(body["status_url"], params={"logs": "1"}).json()
    assert frozen == later
    messages = [entry["message"] for entry in frozen["logs"]]
    assert messages[-1] == "Cancellation requested"
    assert "Generating image 3/3" not in messages


def test_result_of_cancelled_job_is_499_client_cancelled(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        client.put(body["cancel_url"])
        result = client.get(body["response_url"])
    assert result.status_code == 499
    assert result.json() == {"detail": "Request was cancelled", "error_type": "client_cancelled"}
    assert result.headers["x-fal-error-type"] == "client_cancelled"


def test_repeated_cancel_is_still_202(client, refs):
    with StandInServer(queue_delay=5.0) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        codes = [client.put(body["cancel_url"]).status_code for _ in range(2)]
        assert len(server.cancels()) == 2
    assert codes == [202, 202]


def test_cancel_of_completed_job_is_400_already_completed(server, client, submit):
    body = submit().json()
    wait_completed(client, body["status_url"])
    response = client.put(body["cancel_url"])
    assert response.status_code == 400
    assert response.json() == {"status": "ALREADY_COMPLETED"}
    assert not server.jobs[body["request_id"]].cancelled
    assert client.get(body["response_url"]).status_code == 200


def test_cancel_of_unknown_job_is_404_not_found(server, client):
    response = client.put(f"{server.base_url}/fal-ai/flux-pro/requests/nope/cancel")
    assert response.status_code == 404 and response.json() == {"status": "NOT_FOUND"}


def test_cancel_accepts_the_subpath_form(server, client, submit):
    request_id = submit().json()["request_id"]
    response = client.put(f"{server.base_url}/{MULTI}/requests/{request_id}/cancel")
    assert response.status_code == 202


def test_ignored_cancel_of_running_job_is_202_yet_it_completes_and_bills(client, refs):
    with StandInServer(processing_delay=0.5, ignore_cancel_in_progress=True) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        time.sleep(0.15)
        response = client.put(body["cancel_url"])
        status = wait_completed(client, body["status_url"])
        result = client.get(body["response_url"])
        billed = server.billed_jobs()
        job = server.jobs[body["request_id"]]
    assert response.status_code == 202 and response.json() == {"status": "CANCELLATION_REQUESTED"}
    assert "error" not in status and result.status_code == 200
    assert not job.cancelled and len(job.cancel_requests) == 1
    assert [(b.request_id, b.cancel_was_requested) for b in billed] == [(body["request_id"], True)]


def test_ignored_cancel_mode_still_removes_a_queued_job_unbilled(client, refs):
    with StandInServer(queue_delay=5.0, ignore_cancel_in_progress=True) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        assert client.put(body["cancel_url"]).status_code == 202
        result = client.get(body["response_url"])
        billed = server.billed_jobs()
    assert result.status_code == 499 and billed == []


def test_honoured_cancel_of_running_job_is_not_billed(client, refs):
    with StandInServer(processing_delay=0.5) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        time.sleep(0.15)
        client.put(body["cancel_url"])
        time.sleep(0.5)
        assert server.billed_jobs() == []
