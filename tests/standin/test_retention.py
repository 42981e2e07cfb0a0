"""Result retention and output lifetimes: what fal keeps, and for how long."""
from __future__ import annotations

import json
import time

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, anon, wait_completed


def _job(client, server, refs, headers=None, **fields):
    return client.post(f"{server.base_url}/{MULTI}", headers=headers or {},
                       json={"prompt": "p", "image_urls": refs, **fields}).json()


def test_defaults_are_an_hour_and_six_minutes_for_large_results(server):
    assert (server.result_retention, server.large_result_retention) == (3600.0, 360.0)


def test_a_result_is_forgotten_after_the_retention_window(client, refs):
    with StandInServer(processing_delay=0.05, result_retention=0.4) as server:
        body = _job(client, server, refs)
        wait_completed(client, body["status_url"])
        kept = client.get(body["response_url"]).status_code
        time.sleep(0.45)
        status = client.get(body["status_url"])
        stream = client.get(body["status_url"] + "/stream")
        result = client.get(body["response_url"])
        cancel = client.put(body["cancel_url"])
    assert kept == 200
    assert (status.status_code, stream.status_code, result.status_code) == (404, 404, 404)
    assert cancel.status_code == 404 and cancel.json() == {"status": "NOT_FOUND"}


def test_large_inline_results_are_kept_the_shorter_time(client, refs):
    with StandInServer(processing_delay=0.05, result_retention=30.0,
                       large_result_retention=0.4) as server:
        small = _job(client, server, refs)
        large = _job(client, server, refs, sync_mode=True)  # data URIs: well over 10 KB
        for body in (small, large):
            wait_completed(client, body["status_url"])
        time.sleep(0.45)
        codes = [client.get(body["response_url"]).status_code for body in (small, large)]
        sizes = [server.jobs[body["request_id"]].result_bytes for body in (small, large)]
    assert codes == [200, 404]
    assert sizes[0] < 10_240 <= sizes[1]


def test_a_job_still_running_is_never_forgotten(client, refs):
    with StandInServer(processing_delay=0.6, result_retention=0.1) as server:
        body = _job(client, server, refs)
        time.sleep(0.3)
        assert client.get(body["status_url"]).json()["status"] == "IN_PROGRESS"
        status = wait_completed(client, body["status_url"])
    assert status["status"] == "COMPLETED"


def test_submit_lifecycle_preference_sets_how_long_outputs_stay_on_the_cdn(server, client, refs):
    body = _job(client, server, refs, headers={
        "X-Fal-Object-Lifecycle-Preference": json.dumps({"expiration_duration_seconds": 1})})
    wait_completed(client, body["status_url"])
    url = client.get(body["response_url"]).json()["images"][0]["url"]
    assert anon().get(url).status_code == 200
    assert server.lifecycle_headers("submit") == [
        {"x-fal-object-lifecycle-preference": {"expiration_duration_seconds": 1}}]
    time.sleep(1.05)
    assert anon().get(url).status_code == 404


def test_outputs_without_a_lifecycle_preference_stay(server, client, refs):
    body = _job(client, server, refs)
    wait_completed(client, body["status_url"])
    url = client.get(body["response_url"]).json()["images"][0]["url"]
    time.sleep(0.2)
    assert anon().get(url).status_code == 200
