"""The key never leaves the process except to fal's API origins over https (or loopback)."""
from __future__ import annotations

import inspect
import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import fast_client_factory
from node_calls import call_node, solid, widget_defaults
from fal_kontext.client import FalClient, FalHosts, errors
from fal_kontext.kontext import errors as pack_errors
from fal_kontext.client.errors import ConfigurationError, DownloadError, FalError, FieldError
from fal_kontext.nodes.kontext_nodes import FalKontextMulti
from foreign_host import ForeignHost
from results_book import table
from support import TEST_KEY

pytestmark = pytest.mark.anyio
SECRETS = (TEST_KEY, *TEST_KEY.split(":"))
REPO = Path(__file__).resolve().parents[2]
ROWS: dict[str, list[object]] = {}


@pytest.fixture(scope="module", autouse=True)
def hygiene_results(results_book):
    yield
    if len(ROWS) == 7:
        results_book.set_section("key-hygiene", "## Key hygiene\n\n" + table(
            ["where we looked", "checked", "key found"], list(ROWS.values())))


def leaks(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return any(secret.encode() in text for secret in SECRETS)
    return any(secret in text for secret in SECRETS)


def test_no_shipped_workflow_holds_a_key():
    files = sorted((REPO / "workflows").rglob("*.json"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not leaks(text) and '"fal_key"' not in text.lower(), path
    ROWS["workflows"] = ["shipped workflows/**/*.json", f"{len(files)} files", "no"]


async def test_saved_png_metadata_and_info_hold_no_key(fal_env):
    inputs = {**widget_defaults(FalKontextMulti), "prompt": "hat from image 2", "seed": 9}
    images, seed, info = await call_node(FalKontextMulti, images=solid((1.0, 0.0, 0.0)), **inputs)
    assert not leaks(info)
    # What ComfyUI's SaveImage embeds: the API prompt and the UI workflow (widgets_values).
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
              "7": {"class_type": "FalKontextMulti", "inputs": {**inputs, "images": ["1", 0]}},
              "8": {"class_type": "ShowText", "inputs": {"text": info}}}
    workflow = {"nodes": [{"id": 7, "type": "FalKontextMulti", "widgets_values": list(inputs.values())},
                          {"id": 8, "type": "ShowText", "widgets_values": [info]}]}
    metadata = PngInfo()
    metadata.add_text("prompt", json.dumps(prompt))
    metadata.add_text("workflow", json.dumps(workflow))
    buffer = io.BytesIO()
    pixels = (images[0].numpy() * 255).round().astype("uint8")
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=metadata)
    png = buffer.getvalue()
    assert not leaks(png)
    assert set(Image.open(io.BytesIO(png)).text) == {"prompt", "workflow"}
    ROWS["png"] = ["PNG text chunks as SaveImage writes them (prompt + workflow, with the info "
                   "output shown in a text node)", f"{len(png):,} bytes", "no"]
    ROWS["info"] = ["the node's `info` output", f"{len(info)} characters", "no"]


async def test_logs_at_every_level_hold_no_key_or_headers(fal_env, caplog, fast_node_clients):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "fal_kontext"):
        caplog.set_level(logging.DEBUG, logger=name)
    fal_env.faults.add("status", status=503)  # retries and warnings log too
    fal_env.faults.add("submit", status=401, body={"detail": f"Invalid key Key {TEST_KEY}"})
    with pytest.raises(FalError) as refused:
        await call_node(FalKontextMulti, prompt="p", images=solid((0.0, 1.0, 0.0)))
    await call_node(FalKontextMulti, prompt="p", images=solid((0.0, 1.0, 0.0)))
    assert not leaks(str(refused.value)), "a server echoing the key is redacted"
    records = caplog.records
    assert {r.name.split(".")[0] for r in records} >= {"httpx", "httpcore", "fal_kontext"}
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        assert not leaks(text), text
        assert "authorization" not in text.lower(), text
    ROWS["logs"] = ["log records at DEBUG (fal_kontext, httpx, httpcore), with a 401 that echoes "
                    "the key and a retried 503", f"{len(records)} records", "no"]


def test_every_error_class_redacts_the_key_in_message_and_repr():
    FalClient(key=TEST_KEY, base_url="http://127.0.0.1:9")  # loading the key registers it
    classes = [c for module in (errors, pack_errors)
               for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, FalError)]
    text = f"echo: Key {TEST_KEY} and {TEST_KEY.split(':')[1]}"
    built = []
    for error_class in classes:
        if error_class is pack_errors.InvalidInputError:
            built.append(error_class(text, text))
        elif issubclass(error_class, errors.ValidationError):
            built.append(error_class([FieldError(("body", "prompt"), text)], request_id="r-1"))
        elif error_class is errors.JobFailedError:
            built.append(error_class(text, logs_tail=[text], request_id="r-1"))
        elif error_class is errors.FalTimeoutError:
            built.append(error_class(1.0, cancel_confirmed=False, request_id=text))
        elif error_class is errors.JobCancelledError:
            built.append(error_class(cancel_confirmed=True, request_id=text, ending=text))
        elif error_class is errors.StartDeadlineError:
            built.append(error_class(30.0, request_id=text))
        else:
            built.append(error_class(text, request_id="r-1"))
    for error in built:
        assert not leaks(str(error)) and not leaks(repr(error)), type(error).__name__
    assert not leaks(repr(FalClient(key=TEST_KEY, base_url="http://127.0.0.1:9")))
    ROWS["errors"] = ["str() and repr() of every FalError subclass built with the key in its text, "
                      "and FalClient's repr", f"{len(built)} classes", "no"]


async def test_non_fal_hosts_never_receive_the_key(fal_env):
    with ForeignHost(mirror_of=fal_env.cdn_url) as foreign:
        fal_env.faults.add("file", redirect_to=foreign.url + "{path}")
        fal_env.faults.add("upload", status=500, times=20)  # falls back to initiate + presigned PUT
        await call_node(FalKontextMulti, prompt="p", images=solid((0.0, 0.0, 1.0)),
                        use_result_cache=False)
        fal_env.faults.add("status", redirect_to=foreign.url + "/steal{path}")
        with pytest.raises(FalError):
            async with fast_client_factory()() as client:
                handle = await client.submit("fal-ai/flux-pro/kontext/multi", {"prompt": "p", "image_urls": []})
                await client.status(handle)
        keyless = [r for r in fal_env.requests if r.origin == "cdn" or r.route in ("put_upload", "upload")]
        assert {r.route for r in keyless} >= {"file", "put_upload"}
        for request in keyless:
            assert not leaks(json.dumps(request.headers)) and not leaks(request.body), request.route
        assert foreign.seen and not any(leaks(json.dumps(s.headers)) or leaks(s.body) for s in foreign.seen)
        assert not any(s.path.startswith("/steal") for s in foreign.seen), "API redirects are not followed"
    ROWS["hosts"] = ["requests to the CDN origin, the presigned upload URL, and a foreign host a "
                     "download was redirected to (all headers and bodies)",
                     f"{len(keyless) + len(foreign.seen)} requests", "no"]


@pytest.mark.parametrize("url", ["http://fal.example.com", "http://192.168.1.10:8000", "ftp://x"])
async def test_plain_http_is_refused_for_non_loopback_hosts(url):
    with pytest.raises(ConfigurationError):
        FalHosts.single_origin(url)
    with pytest.raises(ConfigurationError):
        FalHosts(queue=url)
    async with FalClient(key=TEST_KEY, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(DownloadError, match="only https"):
            await client.download(url + "/result.png")
    ROWS["http"] = ["plain http to a non-loopback host (base URL, any role, result downloads)",
                    "3 URLs x 3 paths", "refused before connecting"]
