"""The pack inside a real ComfyUI, against the stand-in fal server.

Skipped unless COMFYUI_DIR points at a ComfyUI checkout (one with main.py). COMFYUI_PYTHON is
the interpreter that runs it (default: this one); it needs ComfyUI's requirements and this
pack's dependencies (httpx, pillow, numpy). ComfyUI is started as a subprocess on a free port,
with the pack linked into its custom_nodes (a symlink `fal-kontext` is created if no entry
there already resolves to this pack). Nothing else in the checkout is touched: input, output,
temp and user folders are temporary ones passed on the command line, and the database is
in memory.

    COMFYUI_DIR=/tmp/comfyui COMFYUI_PYTHON=/tmp/comfyui-venv/bin/python \
        python -m pytest tests/comfyui -v
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from fal_kontext.standin import StandInServer

PACK_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = PACK_ROOT / "workflows"
API_WORKFLOWS = sorted((WORKFLOWS / "api").glob("*.json"))
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))
SAMPLE_INPUTS = WORKFLOWS / "inputs"
KONTEXT_NODES = ("FalKontextMulti", "FalKontextEdit")
LINK_NAME = "fal-kontext"
TEST_KEY = "test-key-123"
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 120.0

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "").strip()
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", "").strip() or sys.executable

pytestmark = [
    pytest.mark.skipif(not COMFYUI_DIR or not (Path(COMFYUI_DIR) / "main.py").is_file(),
                       reason="set COMFYUI_DIR to a ComfyUI checkout to run the pack in ComfyUI"),
    pytest.mark.timeout(600),
]


# --------------------------------------------------------------------------- ComfyUI process

class ComfyUI:
    """A ComfyUI subprocess and a tiny HTTP client for its API."""

    def __init__(self, root: Path, python: str, env: dict[str, str], work: Path) -> None:
        self.root, self.python, self.env, self.work = root, python, env, work
        self.input_dir, self.output_dir = work / "input", work / "output"
        self.temp_dir, self.user_dir = work / "temp", work / "user"
        self.log_path = work / "comfyui.log"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = None

    # lifecycle
    def start(self) -> None:
        for folder in (self.input_dir, self.output_dir, self.temp_dir, self.user_dir):
            folder.mkdir(parents=True, exist_ok=True)
        command = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1",
                   "--port", str(self.port), "--disable-auto-launch",
                   "--input-directory", str(self.input_dir),
                   "--output-directory", str(self.output_dir),
                   "--temp-directory", str(self.temp_dir),
                   "--user-directory", str(self.user_dir),
                   "--database-url", "sqlite:///:memory:"]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=self.root, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        # SIGINT is what Ctrl+C does (ComfyUI exits cleanly); a process started from a background
        # shell inherits SIGINT as ignored, so fall back to SIGTERM, then SIGKILL.
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.process is None or self.process.poll() is not None:
                break
            self.process.send_signal(stop_signal)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                continue
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # HTTP
    def get(self, path: str, timeout: float = 10) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
            return json.load(response)

    def post(self, path: str, body: Any) -> bytes:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"POST {path} -> {error.code}: {error.read().decode()[:4000]}")

    def queue(self, prompt: dict) -> str:
        answer = json.loads(self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex}))
        assert not answer.get("node_errors"), answer
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        """The history entry of a finished prompt (success, error or interrupted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.25)
        raise AssertionError(f"prompt {prompt_id} not finished after {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict) -> dict:
        entry = self.wait(self.queue(prompt))
        assert entry["status"]["status_str"] == "success", (
            f"{_messages(entry)}\n--- ComfyUI log ---\n{self.log_tail()}")
        return entry

    def saved_images(self, entry: dict) -> list[Path]:
        files = []
        for output in entry["outputs"].values():
            for image in output.get("images", []):
                if image.get("type") == "output":
                    files.append(self.output_dir / image.get("subfolder", "") / image["filename"])
        return files


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _messages(entry: dict) -> list[tuple[str, dict]]:
    return [(name, data) for name, data in entry["status"].get("messages", [])]


def _link_pack(custom_nodes: Path) -> str:
    """The custom_nodes entry that is this pack; a symlink is made if there is none."""
    for entry in custom_nodes.iterdir():
        if entry.is_dir() and entry.resolve() == PACK_ROOT:
            return entry.name
    link = custom_nodes / LINK_NAME
    if link.exists() or link.is_symlink():
        pytest.fail(f"{link} exists but is not this pack ({PACK_ROOT}); remove it or link the pack")
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    return link.name


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def standin() -> Iterator[StandInServer]:
    with StandInServer(processing_delay=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def comfy(standin: StandInServer, tmp_path_factory) -> Iterator[tuple[ComfyUI, str]]:
    root = Path(COMFYUI_DIR).resolve()
    pack_folder = _link_pack(root / "custom_nodes")
    work = tmp_path_factory.mktemp("comfyui")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FAL_", "PYTEST_"))}
    env.update({
        "FAL_KEY": TEST_KEY,
        "FAL_KONTEXT_BASE_URL": standin.base_url,
        "FAL_KONTEXT_CONFIG": str(work / "no-config.json"),
        "FAL_KONTEXT_RESULT_CACHE_DIR": str(work / "result-cache"),
        "PYTHONUNBUFFERED": "1",
    })
    server = ComfyUI(root, COMFYUI_PYTHON, env, work)
    try:
        server.start()
        if SAMPLE_INPUTS.is_dir():
            for sample in SAMPLE_INPUTS.iterdir():
                if sample.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
                    shutil.copy2(sample, server.input_dir / sample.name)
        yield server, pack_folder
    finally:
        server.stop()


def _kontext_node_ids(prompt: dict) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] in KONTEXT_NODES]


def _with_seeds(prompt: dict, offset: int) -> dict:
    """A copy with every Kontext seed moved by `offset` (so neither ComfyUI's output cache nor
    the pack's result cache can answer, and the node really calls fal)."""
    prompt = json.loads(json.dumps(prompt))
    for node_id in _kontext_node_ids(prompt):
        prompt[node_id]["inputs"]["seed"] = int(prompt[node_id]["inputs"]["seed"]) + offset
    return prompt


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tests

def test_pack_loads_without_import_failure(comfy):
    server, pack_folder = comfy
    log = server.log()
    assert pack_folder in log, log  # listed under "Import times for custom nodes"
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and pack_folder in line]
    assert not failed, "\n".join(failed) + "\n" + log


@pytest.mark.parametrize("node_type, sockets", [
    ("FalKontextMulti", {"images"}), ("FalKontextEdit", {"image"})])
def test_nodes_appear_in_object_info_with_their_inputs(comfy, node_type, sockets):
    server, _ = comfy
    info = server.get(f"/object_info/{node_type}")[node_type]
    required = info["input"]["required"]
    widgets = {"prompt", "model", "seed", "guidance_scale", "num_images", "aspect_ratio",
               "output_format", "safety_tolerance", "enhance_prompt", "sync_mode"}
    assert widgets | sockets <= set(required), sorted(required)
    for socket_name in sockets:
        assert required[socket_name][0] == "IMAGE"
    assert required["seed"][1].get("control_after_generate") is True
    assert info["input"]["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert info["output"] == ["IMAGE", "INT", "STRING"]
    assert info["category"].startswith("api node/")
    if node_type == "FalKontextMulti":
        assert {"image_2", "image_3", "image_4"} <= set(info["input"]["optional"])


def test_workflow_templates_lists_our_ui_workflows(comfy):
    server, pack_folder = comfy
    assert UI_WORKFLOWS, "no UI-format workflows in workflows/"
    templates = server.get("/workflow_templates")
    assert sorted(templates.get(pack_folder, [])) == sorted(path.stem for path in UI_WORKFLOWS)
    for path in UI_WORKFLOWS:  # and ComfyUI serves them, so the template browser can open them
        served = server.get(f"/api/workflow_templates/{pack_folder}/{path.name}")
        assert served == _load(path)


def test_there_are_api_workflows():
    assert API_WORKFLOWS, "no API-format workflows in workflows/api/"


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=[path.stem for path in API_WORKFLOWS])
def test_api_workflow_runs(comfy, standin, path):
    server, _ = comfy
    prompt = _load(path)
    kontext_nodes = _kontext_node_ids(prompt)
    assert kontext_nodes, f"{path.name} has no Kontext node"
    standin.clear_requests()
    entry = server.run(prompt)
    images = server.saved_images(entry)
    assert images, entry["outputs"]
    for image in images:
        assert image.is_file() and image.stat().st_size > 0, image
    assert len(standin.submits()) == len(kontext_nodes), [r.path for r in standin.requests]
    assert not standin.cancels()


def test_prompts_after_the_first_run_in_their_own_event_loop(comfy, standin):
    """Each prompt gets a new asyncio loop; nothing loop-bound may carry over between them."""
    server, _ = comfy
    prompt = _load(API_WORKFLOWS[0])
    expected = len(_kontext_node_ids(prompt))
    for offset in (100_001, 100_002, 100_003):
        standin.clear_requests()
        entry = server.run(_with_seeds(prompt, offset))
        assert server.saved_images(entry)
        assert len(standin.submits()) == expected
    # The same prompt again is answered from ComfyUI's output cache: still a success, no new job.
    standin.clear_requests()
    server.run(_with_seeds(prompt, 100_003))
    assert not standin.submits()
    assert "Event loop is closed" not in server.log()


def test_interrupt_cancels_the_fal_job_and_reports_interrupted(comfy, standin):
    server, _ = comfy
    prompt = _with_seeds(_load(API_WORKFLOWS[0]), 200_000)
    standin.clear_requests()
    standin.processing_delay = 60.0
    try:
        prompt_id = server.queue(prompt)
        deadline = time.monotonic() + 30
        while not standin.submits():  # interrupt only once the job exists at "fal"
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        time.sleep(1.0)
        interrupted_at = time.monotonic()
        server.post("/interrupt", {})
        entry = server.wait(prompt_id, timeout=30)
        took = time.monotonic() - interrupted_at
    finally:
        standin.processing_delay = 1.0
    names = [name for name, _ in _messages(entry)]
    assert "execution_interrupted" in names, _messages(entry)
    assert "execution_error" not in names, _messages(entry)
    assert took < 10, f"the interrupt took {took:.1f} s to end the prompt"
    assert len(standin.cancels()) == 1, [r.path for r in standin.requests]
    cancelled_id = standin.cancels()[0].path.rstrip("/").split("/")[-2]  # .../requests/<id>/cancel
    job = standin.jobs.get(cancelled_id)
    assert job is not None and job.cancelled_at is not None, (cancelled_id, list(standin.jobs))
    assert job.arguments.get("seed") == prompt[_kontext_node_ids(prompt)[0]]["inputs"]["seed"]
    # The next prompt runs normally after an interrupt.
    standin.clear_requests()
    assert server.saved_images(server.run(_with_seeds(prompt, 1)))
