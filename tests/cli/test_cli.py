"""The CLI runs the same pipeline from a shell: files in, files + JSON sidecar out."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from fal_kontext.standin import StandInServer
from support import TEST_KEY, png_bytes

EXIT_USAGE, EXIT_AUTH, EXIT_INVALID, EXIT_FAILED, EXIT_INTERRUPTED = 2, 3, 4, 5, 130


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FAL_KEY", "FAL_KONTEXT_"))}
    env.update({"FAL_KONTEXT_CONFIG": str(tmp_path / "none.json"),
                "FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path / "cache")}, **extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fal_kontext", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def references(tmp_path) -> list[str]:
    paths = []
    for name, color in (("red.png", (220, 20, 20)), ("blue.png", (20, 20, 220))):
        path = tmp_path / name
        path.write_bytes(png_bytes(color))
        paths.append(str(path))
    return paths


def test_edit_writes_images_and_an_info_sidecar(standin, tmp_path, references):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    out = tmp_path / "out"
    done = run_cli(["edit", "--prompt", "combine", *references, "-o", str(out), "--seed", "42",
                    "--num-images", "2", "--output-format", "png", "--aspect-ratio", "1:1",
                    "--safety-tolerance", "4", "--guidance", "5", "--model", "max", "--quiet"], env)
    assert done.returncode == 0, done.stderr
    images = sorted(out.glob("*.png"))
    assert len(images) == 2
    info = json.loads(next(out.glob("*.json")).read_text())
    assert info["seed"] == 42 and info["endpoint"] == "fal-ai/flux-pro/kontext/max/multi"
    job = next(iter(standin.jobs.values()))
    assert job.arguments["safety_tolerance"] == "4" and job.arguments["guidance_scale"] == 5.0
    assert len(job.arguments["image_urls"]) == 2
    assert TEST_KEY not in done.stdout + done.stderr


def test_missing_prompt_is_a_usage_error(tmp_path, references):
    assert run_cli(["edit", *references], cli_env(tmp_path)).returncode == EXIT_USAGE


def test_no_key_without_offline_is_an_auth_error_spending_nothing(tmp_path, references):
    done = run_cli(["edit", "--prompt", "p", *references, "--quiet"], cli_env(tmp_path))
    assert done.returncode == EXIT_AUTH
    assert "FAL_KEY" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_invalid_input_is_a_validation_error_before_any_request(standin, tmp_path, references):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", *references, "--num-images", "5", "--quiet"], env)
    assert done.returncode == EXIT_INVALID and "num_images" in done.stderr
    assert not standin.requests


def test_a_failed_job_is_a_failure_exit_naming_the_request(standin, tmp_path, references):
    standin.fail_next_jobs(1, status=500, detail="boom", error_type="runner_server_error")
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", *references, "--quiet"], env)
    assert done.returncode == EXIT_FAILED
    assert next(iter(standin.jobs)) in done.stderr


def test_offline_needs_no_key_and_never_uses_the_configured_origin(standin, tmp_path, references):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--offline", "--prompt", "p", *references, "-o", str(tmp_path / "o")],
                   env)
    assert done.returncode == 0, done.stderr
    assert not standin.requests, "offline never talks to the configured (possibly real) fal"
    assert list((tmp_path / "o").glob("*.jpg"))
    assert "%" in done.stderr, "a progress bar was drawn"


def test_demo_runs_offline_on_the_shipped_samples(tmp_path):
    done = run_cli(["demo", "-o", str(tmp_path / "demo"), "--quiet"], cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "demo").glob("*.jpg"))) == 1


def ctrl_c_once(args: list[str], env: dict[str, str], started: Callable[[], bool]) -> str:
    """Run the CLI, press Ctrl-C once `started()` says its work reached fal; its stderr, after
    checking that it exited promptly with the interrupted code."""
    process = subprocess.Popen([sys.executable, "-m", "fal_kontext", *args, "--quiet"], env=env,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not started() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert time.monotonic() - interrupted < 2.0, "the CLI must exit promptly"
    assert process.returncode == EXIT_INTERRUPTED, stderr
    return stderr


def test_ctrl_c_cancels_the_remote_job_before_exiting(tmp_path, references):
    with StandInServer(processing_delay=30) as server:
        env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=server.base_url)
        stderr = ctrl_c_once(["edit", "--prompt", "p", *references], env, server.submits)
        assert len(server.cancels()) == 1
        assert "Interrupted. Cancelled · fal may still bill $0.04" in stderr, stderr
