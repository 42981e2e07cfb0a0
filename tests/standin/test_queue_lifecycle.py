"""The queue protocol: submit, status (poll and stream), result, as fal's clients expect it."""
from __future__ import annotations

import json
import time


from fal_kontext.kontext.models import ALL_MODELS
from fal_kontext.standin import StandInServer
from standin_helpers import MULTI, SINGLE, anon, png_bytes, wait_completed


def test_submit_answers_in_queue_with_request_id_and_urls(server, submit):
    response = submit()
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "IN_QUEUE"
    assert isinstance(body["queue_position"], int)
    assert set(body) >= {"request_id", "response_url", "status_url", "cancel_url"}
    assert response.headers["x-fal-request-id"] == body["request_id"]
    assert body["request_id"] in server.jobs


def test_submit_drops_subpath_in_returned_urls(server, submit):
    body = submit().json()
    base = f"{server.base_url}/fal-ai/flux-pro/requests/{body['request_id']}"
    assert body["response_url"] == base
    assert body["status_url"] == base + "/status"
    assert body["cancel_url"] == base + "/cancel"


def test_every_kontext_endpoint_id_is_a_submit_route(server, client):
    reference = server.put_file(png_bytes(), "image/png")
    for model in ALL_MODELS:
        body = {"prompt": "p", model.reference_field: [reference] if model.takes_many_references
                else reference}
        response = client.post(f"{server.base_url}/{model.endpoint_id}", json=body)
        assert response.status_code == 200, (model.endpoint_id, response.text)
        assert server.jobs[response.json()["request_id"]].endpoint_id == model.endpoint_id


def test_single_image_endpoint_takes_image_url(server, client):
    reference = server.put_file(png_bytes(size=(40, 40)), "image/png")
    response = client.post(f"{server.base_url}/{SINGLE}", json={"prompt": "p", "image_url": reference})
    assert response.status_code == 200
    assert server.jobs[response.json()["request_id"]].reference_sizes == [(40, 40)]


def test_submit_accepts_fal_webhook_query(server, client, refs):
    response = client.post(f"{server.base_url}/{MULTI}", params={"fal_webhook": "https://example.com/h"},
                           json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 200
    assert server.submits()[-1].query == {"fal_webhook": "https://example.com/h"}


def test_submit_to_unknown_endpoint_is_404_application_not_found(server, submit):
    response = submit(endpoint="fal-ai/flux-pro/kontext/nope")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]
    assert server.jobs == {}


def test_status_walks_in_queue_then_in_progress_then_completed(client, refs):
    with StandInServer(processing_delay=0.25, queue_delay=0.3) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        seen, positions = [], []
        while True:
            status = client.get(body["status_url"]).json()
            if status["status"] == "IN_QUEUE":
                positions.append(status["queue_position"])
            if not seen or seen[-1] != status["status"]:
                seen.append(status["status"])
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.03)
    assert seen == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert positions == sorted(positions, reverse=True) and positions[-1] == 0 and positions[0] > 0


def test_earlier_queued_jobs_count_in_queue_position(client, refs):
    with StandInServer(processing_delay=0.1, queue_delay=1.0) as server:
        submit = lambda: client.post(f"{server.base_url}/{MULTI}",  # noqa: E731
                                     json={"prompt": "p", "image_urls": refs}).json()
        first, second = submit(), submit()
        assert second["queue_position"] > first["queue_position"]


def test_in_progress_logs_grow_cumulatively(client, refs):
    with StandInServer(processing_delay=0.5) as server:
        body = client.post(f"{server.base_url}/{MULTI}",
                           json={"prompt": "p", "image_urls": refs, "num_images": 2}).json()
        snapshots = []
        while True:
            status = client.get(body["status_url"], params={"logs": "1"}).json()
            snapshots.append([entry["message"] for entry in status["logs"]])
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.04)
    for earlier, later in zip(snapshots, snapshots[1:]):
        assert later[: len(earlier)] == earlier
    assert snapshots[-1][:3] == ["Loading 2 reference image(s)", "Generating image 1/2",
                                 "Generating image 2/2"]
    assert len({len(snapshot) for snapshot in snapshots}) >= 3


def test_log_entries_have_fal_shape(client, submit):
    final = wait_completed(client, submit().json()["status_url"])
    for entry in final["logs"]:
        assert entry["level"] == "INFO" and entry["source"] == "USER"
        assert isinstance(entry["message"], str) and "T" in entry["timestamp"]


def test_status_logs_are_null_unless_requested(client, submit):
    status_url = submit().json()["status_url"]
    wait_completed(client, status_url)
    for value in ("0", "false"):
        assert client.get(status_url, params={"logs": value}).json()["logs"] is None
    assert client.get(status_url).json()["logs"] is None
    for value in ("1", "true"):
        assert client.get(status_url, params={"logs": value}).json()["logs"]


def test_completed_status_carries_inference_time_metric(client, submit):
    final = wait_completed(client, submit().json()["status_url"])
    assert final["metrics"]["inference_time"] >= 0.15
    assert "error" not in final


def test_status_accepts_the_subpath_form(server, client, submit):
    request_id = submit().json()["request_id"]
    response = client.get(f"{server.base_url}/{MULTI}/requests/{request_id}/status")
    assert response.status_code == 200 and response.json()["request_id"] == request_id


def test_status_of_unknown_request_is_404(server, client):
    response = client.get(f"{server.base_url}/fal-ai/flux-pro/requests/not-a-job/status")
    assert response.status_code == 404


def test_status_under_another_app_is_404(server, client, submit):
    request_id = submit().json()["request_id"]
    assert client.get(f"{server.base_url}/fal-ai/other/requests/{request_id}/status").status_code == 404


def test_result_before_completion_is_400_still_in_progress(client, submit):
    body = submit().json()
    response = client.get(body["response_url"])
    assert response.status_code == 400
    assert response.json() == {"detail": "Request is still in progress"}


def test_result_returns_the_output_json(client, submit):
    body = submit(seed=7).json()
    wait_completed(client, body["status_url"])
    output = client.get(body["response_url"]).json()
    assert output["seed"] == 7
    assert output["prompt"] == "put the red thing next to the blue thing"
    assert output["has_nsfw_concepts"] == [False]
    assert output["timings"]["inference"] > 0
    image = output["images"][0]
    assert set(image) == {"url", "width", "height", "content_type"}
    assert image["content_type"] == "image/jpeg"


def test_completion_waits_for_the_processing_delay(server, client, submit):
    body = submit().json()
    assert client.get(body["status_url"]).json()["status"] == "IN_PROGRESS"
    wait_completed(client, body["status_url"])
    job = server.jobs[body["request_id"]]
    assert job.status == "COMPLETED"
    assert job.completed_at - job.submitted_at >= server.processing_delay - 1e-6


def test_job_records_arguments_and_reference_sizes(server, client):
    small = server.put_file(png_bytes(size=(30, 20)), "image/png")
    large = server.put_file(png_bytes(size=(80, 60)), "image/png")
    arguments = {"prompt": "p", "image_urls": [small, large], "guidance_scale": 4.0}
    body = client.post(f"{server.base_url}/{MULTI}", json=arguments).json()
    job = server.jobs[body["request_id"]]
    assert job.endpoint_id == MULTI and job.arguments == arguments
    assert job.reference_sizes == [(30, 20), (80, 60)] and not job.cancelled
    assert job.completed_at is None


def test_every_api_response_carries_a_request_id(server, client, submit):
    responses = [submit(), submit(prompt=3), submit(endpoint="fal-ai/unknown"),
                 anon().post(f"{server.base_url}/{MULTI}", json={}),
                 client.get(f"{server.base_url}/fal-ai/flux-pro/requests/x/status"),
                 client.get(f"{server.base_url}/nothing/here")]
    for response in responses:
        assert response.headers.get("x-fal-request-id"), response


def test_status_stream_sends_one_event_per_change_then_closes(client, refs):
    with StandInServer(processing_delay=0.3, queue_delay=0.2) as server:
        body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
        url = body["status_url"] + "/stream"
        with client.stream("GET", url, params={"logs": "1"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[len("data: "):]) for line in response.iter_lines()
                      if line.startswith("data: ")]
    statuses = [event["status"] for event in events]
    assert statuses[0] == "IN_QUEUE" and statuses[-1] == "COMPLETED"
    assert statuses.index("IN_PROGRESS") > 0
    assert all(a != b for a, b in zip(events, events[1:]))
    assert server.count("status_stream") == 1


def test_run_origin_blocks_and_returns_the_output(server, client, refs):
    started = time.monotonic()
    response = client.post(f"{server.run_url}/{MULTI}", json={"prompt": "p", "image_urls": refs})
    assert response.status_code == 200
    assert time.monotonic() - started >= server.processing_delay
    assert response.headers["x-fal-request-id"]
    assert len(response.json()["images"]) == 1
    assert server.count("run") == 1 and server.requests[-1].origin == "run"


def test_run_origin_validates_like_the_queue(server, client, refs):
    response = client.post(f"{server.run_url}/{MULTI}", json={"image_urls": refs})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]
