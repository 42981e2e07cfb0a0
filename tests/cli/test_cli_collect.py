"""`fal-kontext collect REQUEST_ID --endpoint ... -o DIR`: the images of a request fal already
has, written like `edit` writes them, for free; real processes against the stand-in."""
from __future__ import annotations

import asyncio
import json
import re
import tomllib
import urllib.request
from pathlib import Path

import pytest

from fal_kontext.cli.main import build_parser
from fal_kontext.client import FalClient
from fal_kontext.jobs.ledger import LedgerEntry, log_unnamed_submit
from fal_kontext.nodes.registry import NODE_DISPLAY_NAME_MAPPINGS
from fal_kontext.standin import StandInServer
from support import TEST_KEY, png_bytes
from test_cli import EXIT_FAILED, EXIT_INVALID, EXIT_USAGE, cli_env, ctrl_c_once, run_cli

ENDPOINT = "fal-ai/flux-pro/kontext/multi"


def submit_and_walk_away(server, prompt: str = "a run that died") -> str:
    """A job at fal that nobody follows, as a run killed after its submit leaves it."""
    reference = server.put_file(png_bytes((30, 160, 90)), "image/png", "ref.png")

    async def submit() -> str:
        async with FalClient(TEST_KEY, base_url=server.base_url) as client:
            handle = await client.submit(ENDPOINT, {"prompt": prompt, "image_urls": [reference],
                                                    "seed": 9, "output_format": "png"})
        return handle.request_id
    return asyncio.run(submit())


def fal_file(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def test_collect_writes_the_images_and_a_sidecar_and_submits_nothing(standin, tmp_path):
    request_id = submit_and_walk_away(standin)
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    out = tmp_path / "out"
    done = run_cli(["collect", request_id, "--endpoint", ENDPOINT, "-o", str(out), "--quiet"], env)
    assert done.returncode == 0, done.stderr
    (image,) = out.glob("*.png")
    served = standin.jobs[request_id].result["images"][0]["url"]
    assert image.read_bytes() == fal_file(served), "the file exactly as fal served it"
    info = json.loads(next(out.glob("*.json")).read_text())
    assert info["request_id"] == request_id and info["fetched_by_id"] and info["seed"] == 9
    assert info["files"] == [image.name] and str(image) in done.stdout
    assert len(standin.submits()) == 1 and not standin.cancels()
    assert TEST_KEY not in done.stdout + done.stderr
    # Fetched once, it comes from the result cache: fal is not asked again.
    standin.clear_requests()
    again = run_cli(["collect", request_id, "-o", str(tmp_path / "again"), "--quiet"], env)
    assert again.returncode == 0, again.stderr
    assert standin.requests == [] and json.loads(
        next((tmp_path / "again").glob("*.json")).read_text())["cached"]


@pytest.mark.parametrize("request_id, code, words", [
    ("0b7e2d7c-1111-4c3e-9a55-0123456789ab", EXIT_FAILED, "fal has no request"),
    ("not an id", EXIT_INVALID, "error: request_id 'not an id' is not a fal request id"),
])
def test_a_request_that_cannot_be_fetched_is_one_line_and_an_exit_code(standin, tmp_path,
                                                                       request_id, code, words):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["collect", request_id, "--quiet"], env)
    assert done.returncode == code, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line
    assert not standin.submits()


def test_an_endpoint_the_pack_does_not_use_is_a_usage_error(tmp_path):
    done = run_cli(["collect", "764cabcf-b745-4b3e-ae38-1200304cf45b", "--endpoint",
                    "fal-ai/some-other-app"], cli_env(tmp_path, FAL_KEY=TEST_KEY))
    assert done.returncode == EXIT_USAGE and "invalid choice" in done.stderr


def test_ctrl_c_stops_waiting_and_never_cancels_the_job(tmp_path):
    with StandInServer(processing_delay=30) as server:
        request_id = submit_and_walk_away(server)
        env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=server.base_url)
        stderr = ctrl_c_once(["collect", request_id], env, server.status_requests)
        assert f"Interrupted. Stopped waiting · fal request {request_id[:8]} goes on" in stderr
        assert not server.cancels()


def test_the_unnamed_submit_log_line_names_the_node_and_command_as_they_are(caplog):
    """A process killed before fal named its job leaves this line for the next start: the way it
    names to get the result must exist, spelled as the user will type or search it."""
    log_unnamed_submit(LedgerEntry(cache_key="c" * 64, endpoint_id=ENDPOINT, submitted_at=0.0,
                                   keep_until=0.0, state="submitting"))
    line = caplog.text
    assert f"'{NODE_DISPLAY_NAME_MAPPINGS['FalResultByRequestId']}' node" in line
    command = re.search(r"`(fal-kontext collect [^`]+)`", line).group(1)
    program, *arguments = command.replace("REQUEST_ID", "764cabcf-b745-4b3e-ae38-1200304cf45b").split()
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert program in pyproject["project"]["scripts"]
    parsed = build_parser().parse_args(arguments)
    assert parsed.command == "collect" and parsed.endpoint == ENDPOINT
