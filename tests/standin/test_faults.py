"""Fault injection: each kind of fault does what it says, for `times` requests, then expires."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, anon, wait_completed


def test_status_fault_answers_fal_flat_error_then_expires(server, client, submit):
    status_url = submit().json()["status_url"]
    server.faults.add("status", times=2, status=503)
    first, second, third = (client.get(status_url) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json()["error_type"] == first.headers["x-fal-error-type"] == "runner_scheduling_failure"
    assert first.headers["x-fal-request-id"]
    assert server.count("status") == 3  # faulted requests are still recorded
    assert server.faults.pending == []


def test_fault_can_set_retry_after_headers_and_body(server, client, submit):
    status_url = submit().json()["status_url"]
    server.faults.add("status", status=429, retry_after=2, headers={"X-Extra": "yes"},
                      body={"detail": "slow down"})
    response = client.get(status_url)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["x-extra"] == "yes"
    assert response.json() == {"detail": "slow down"}


def test_status_fault_on_submit_creates_no_job(server, submit):
    server.faults.add("submit", status=500)
    assert submit().status_code == 500
    assert server.jobs == {} and len(server.submits()) == 1


def test_ingress_502_is_nginx_html_without_request_id(server, client, submit):
    status_url = submit().json()["status_url"]
    server.faults.add("status", ingress_502=True)
    response = client.get(status_url)
    assert response.status_code == 502
    assert "nginx" in response.text and response.headers["content-type"].startswith("text/html")
    assert "x-fal-request-id" not in response.headers


def test_drop_connection_closes_without_a_response_and_runs_nothing(server, client, submit):
    server.faults.add("submit", drop_connection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        submit()
    assert server.jobs == {} and len(server.submits()) == 1


def test_reset_mid_response_breaks_the_body_but_the_job_exists(server, client, submit):
    server.faults.add("submit", reset_mid_response=True)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        submit()
    assert len(server.jobs) == 1  # the submit landed: the client cannot know


def test_reset_mid_response_aborts_a_download_with_connection_reset(server):
    url = server.put_file(b"x" * 5000, "image/png")
    server.faults.add("file", reset_mid_response=True)
    with pytest.raises(httpx.ReadError):
        anon().get(url)


def test_truncate_sends_less_body_than_content_length(server, client):
    url = server.put_file(b"x" * 1000, "image/png")
    server.faults.add("file", truncate=True)
    with pytest.raises(httpx.RemoteProtocolError):
        anon().get(url)
    assert anon().get(url).content == b"x" * 1000  # expired after one request


def test_truncate_with_raw_socket_shows_the_short_body(server):
    import socket
    from urllib.parse import urlsplit

    url = server.put_file(b"y" * 100, "image/png")
    server.faults.add("file", truncate=True)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in head and len(body) < 100


def test_malformed_json_is_200_with_unparseable_body(server, client, submit):
    server.faults.add("submit", malformed_json=True)
    response = submit()
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert response.text.startswith('{"status": "IN_QU')
    assert len(server.jobs) == 1


def test_delay_causes_client_read_timeout(server, client, submit):
    status_url = submit().json()["status_url"]
    server.faults.add("status", delay=0.5)
    with pytest.raises(httpx.ReadTimeout):
        client.get(status_url, timeout=0.1)
    started = time.monotonic()
    assert client.get(status_url).status_code == 200
    assert time.monotonic() - started < 0.4


def test_redirect_to_answers_302_with_location(server, client, submit):
    response_url = submit().json()["response_url"]
    server.faults.add("result", redirect_to="http://127.0.0.1:9/elsewhere")
    response = client.get(response_url)
    assert response.status_code == 302
    assert response.headers["location"] == "http://127.0.0.1:9/elsewhere"


def test_content_type_override_on_a_file(server):
    url = server.put_file(b"\x89PNG...", "image/png")
    server.faults.add("file", content_type="text/html")
    assert anon().get(url).headers["content-type"] == "text/html"
    assert anon().get(url).headers["content-type"] == "image/png"


def test_faults_on_upload_routes(server, client):
    server.faults.add("token", status=500)
    server.faults.add("initiate", status=503)
    assert client.post(f"{server.base_url}/storage/auth/token").status_code == 500
    assert client.post(f"{server.base_url}/storage/upload/initiate", json={}).status_code == 503
    assert client.post(f"{server.base_url}/storage/auth/token").status_code == 200


def test_fault_on_status_stream_breaks_the_stream(server, client, submit):
    status_url = submit().json()["status_url"]
    server.faults.add("status_stream", reset_mid_response=True)
    lines = []
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        with client.stream("GET", status_url + "/stream") as response:
            for line in response.iter_lines():
                lines.append(line)
    assert len([line for line in lines if line.startswith("data:")]) <= 1


def test_fault_on_run_route(server, client, refs):
    server.faults.add("run", status=504)
    response = client.post(f"{server.run_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 504 and response.json()["error_type"] == "request_timeout"


def test_unknown_route_name_is_rejected(server):
    with pytest.raises(ValueError):
        server.faults.add("statuz")


def test_transient_faults_hit_only_retry_safe_routes(client, refs):
    with StandInServer(processing_delay=0.05, transient_fault_rate=1.0) as server:
        submitted = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
        assert submitted.status_code == 200  # never on submit
        codes = {client.get(submitted.json()["status_url"]).status_code for _ in range(12)}
        body = client.get(submitted.json()["status_url"]).json()
    assert codes == {503, 429}
    assert "detail" in body


def test_transient_faults_are_seeded(client, refs):
    def pattern() -> list[int]:
        with StandInServer(transient_fault_rate=0.5, seed=11) as server:
            url = server.put_file(b"z", "text/plain")
            return [anon().get(url).status_code for _ in range(12)]

    first = pattern()
    assert first == pattern() and {200} < set(first)


def test_jitter_delays_responses(client):
    with StandInServer(jitter=0.05, seed=3) as server:
        url = server.put_file(b"z", "text/plain")
        started = time.monotonic()
        for _ in range(8):
            anon().get(url)
        elapsed = time.monotonic() - started
    assert elapsed > 8 * 0.01


def test_fail_next_jobs_complete_with_error_then_fetch_returns_it(server, client, submit):
    server.fail_next_jobs(count=1)
    failed = submit().json()
    status = wait_completed(client, failed["status_url"])
    assert status["status"] == "COMPLETED" and status["error"]
    result = client.get(failed["response_url"])
    assert result.status_code == 422 and isinstance(result.json()["detail"], list)
    ok = submit().json()
    wait_completed(client, ok["status_url"])
    assert client.get(ok["response_url"]).status_code == 200


def test_fail_next_jobs_with_server_error(server, client, submit):
    server.fail_next_jobs(count=2, status=500, detail="runner crashed")
    for _ in range(2):
        body = submit().json()
        status = wait_completed(client, body["status_url"])
        assert status["error"] == "runner crashed" and status["error_type"] == "runner_server_error"
        result = client.get(body["response_url"])
        assert result.status_code == 500
        assert result.json() == {"detail": "runner crashed", "error_type": "runner_server_error"}
        assert result.headers["x-fal-error-type"] == "runner_server_error"


def test_fail_next_jobs_still_waits_for_the_clock(server, client, submit):
    server.fail_next_jobs(status=503, error_type="runner_disconnected")
    body = submit().json()
    assert client.get(body["status_url"]).json()["status"] == "IN_PROGRESS"
    assert wait_completed(client, body["status_url"])["error_type"] == "runner_disconnected"


def test_outage_fails_every_status_call_for_its_window_then_ends(server, client, submit):
    body = submit().json()
    server.outage(0.4)
    during = [client.get(body["status_url"]).status_code for _ in range(3)]
    stream = client.get(body["status_url"] + "/stream").status_code
    time.sleep(0.45)
    after = client.get(body["status_url"]).status_code
    assert during == [503, 503, 503] and stream == 503 and after == 200
    assert server.faults.pending == []
    assert server.cancels() == []


def test_outage_can_drop_connections_instead(server, client, submit):
    body = submit().json()
    server.outage(0.3, routes=("status",), drop_connection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(body["status_url"])


def test_fault_can_mark_its_answer_retryable(server, client, submit):
    body = submit().json()
    server.faults.add("status", status=503, retryable=True)
    server.faults.add("status", status=500, retryable=False)
    first, second = client.get(body["status_url"]), client.get(body["status_url"])
    assert first.headers["x-fal-retryable"] == "true"
    assert second.headers["x-fal-retryable"] == "false"
    assert "x-fal-retryable" not in client.get(body["status_url"]).headers


def test_submit_429_with_retry_after_creates_no_job_and_the_retry_makes_one(server, client, submit):
    server.faults.add("submit", status=429, retry_after=2)
    refused = submit()
    accepted = submit()
    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
    assert accepted.status_code == 200
    assert list(server.jobs) == [accepted.json()["request_id"]]
    assert accepted.headers["x-fal-request-id"] == accepted.json()["request_id"]


def test_failed_job_model_errors_say_they_are_not_retryable(server, client, submit):
    server.fail_next_jobs(1, status=422, detail="bad input")
    server.fail_next_jobs(1, status=503, retryable=True)
    model, infra = submit().json(), submit().json()
    wait_completed(client, model["status_url"])
    wait_completed(client, infra["status_url"])
    assert client.get(model["response_url"]).headers["x-fal-retryable"] == "false"
    assert client.get(infra["response_url"]).headers["x-fal-retryable"] == "true"
