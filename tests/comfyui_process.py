"""A real ComfyUI as a subprocess, for the suites that need one (tests/comfyui, tests/browser).

Input, output, temp and user folders are the ones passed in (temporary ones in the tests) and the
database is in memory, so the ComfyUI checkout is left alone apart from the pack's symlink in
custom_nodes/, made only if no entry there already is this pack.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

PACK_ROOT = Path(__file__).resolve().parents[1]
LINK_NAME = "fal-kontext"
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 120.0

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "").strip()
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", "").strip() or sys.executable
HAVE_COMFYUI = bool(COMFYUI_DIR) and (Path(COMFYUI_DIR) / "main.py").is_file()
# Optional: a folder ComfyUI gets as --base-directory, so its custom_nodes/ (and models/) come
# from there, not from the checkout: a second clone or worktree of the pack is tested in a
# ComfyUI shared with others without touching the checkout's custom_nodes/.
COMFYUI_BASE_DIRECTORY = os.environ.get("COMFYUI_BASE_DIRECTORY", "").strip()


def custom_nodes_folder(root: Path) -> Path:
    """The custom_nodes folder the ComfyUI under test loads packs from."""
    if COMFYUI_BASE_DIRECTORY:
        folder = Path(COMFYUI_BASE_DIRECTORY).resolve() / "custom_nodes"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return root / "custom_nodes"


class ComfyUI:
    """A ComfyUI subprocess and a tiny HTTP client for its API."""

    def __init__(self, root: Path, python: str, env: dict[str, str], work: Path,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.root, self.python, self.env, self.work = root, python, env, work
        self.extra_args = tuple(extra_args)
        self.input_dir, self.output_dir = work / "input", work / "output"
        self.temp_dir, self.user_dir = work / "temp", work / "user"
        self.log_path = work / "comfyui.log"
        self.port, self.base = 0, ""
        self.process: subprocess.Popen | None = None
        self._log = None

    # lifecycle
    def start(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        for folder in (self.input_dir, self.output_dir, self.temp_dir, self.user_dir):
            folder.mkdir(parents=True, exist_ok=True)
        command = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1",
                   "--port", str(self.port), "--disable-auto-launch",
                   "--input-directory", str(self.input_dir),
                   "--output-directory", str(self.output_dir),
                   "--temp-directory", str(self.temp_dir),
                   "--user-directory", str(self.user_dir),
                   "--database-url", "sqlite:///:memory:", *self.extra_args]
        if COMFYUI_BASE_DIRECTORY:
            command += ["--base-directory", str(Path(COMFYUI_BASE_DIRECTORY).resolve())]
        self._log = open(self.log_path, "ab")
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

    def post_answer(self, path: str, body: Any) -> tuple[int, Any]:
        """POST and return (status, JSON answer), refusals included."""
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read().decode() or "null")

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
            f"{messages(entry)}\n--- ComfyUI log ---\n{self.log_tail()}")
        return entry

    def saved_images(self, entry: dict) -> list[Path]:
        files = []
        for output in entry["outputs"].values():
            for image in output.get("images", []):
                if image.get("type") == "output":
                    files.append(self.output_dir / image.get("subfolder", "") / image["filename"])
        return files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def messages(entry: dict) -> list[tuple[str, dict]]:
    return [(name, data) for name, data in entry["status"].get("messages", [])]


def link_pack(custom_nodes: Path) -> str:
    """The custom_nodes entry that is this pack; a symlink is made if there is none."""
    for entry in custom_nodes.iterdir():
        if entry.is_dir() and entry.resolve() == PACK_ROOT:
            return entry.name
    link = custom_nodes / LINK_NAME
    if link.exists() or link.is_symlink():
        pytest.fail(f"{link} exists but is not this pack ({PACK_ROOT}); remove it or link the pack")
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    return link.name


def own_comfyui(fal_base_url: str, work: Path, key: str = "test-key-123") -> ComfyUI:
    """A started ComfyUI of a test's own (its folders under `work`, the pack linked) that talks
    to the fal at `fal_base_url`: for scenarios that kill or restart it."""
    root = Path(COMFYUI_DIR).resolve()
    link_pack(custom_nodes_folder(root))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FAL_", "PYTEST_"))}
    env.update({"FAL_KEY": key, "FAL_KONTEXT_BASE_URL": fal_base_url,
                "FAL_KONTEXT_CONFIG": str(work / "no-config.json"), "PYTHONUNBUFFERED": "1"})
    server = ComfyUI(root, COMFYUI_PYTHON, env, work / "comfyui")
    server.start()
    return server


# The marks of every suite that needs a real ComfyUI, and the workflow most of them run.
NEEDS_COMFYUI = [
    pytest.mark.skipif(not HAVE_COMFYUI,
                       reason="set COMFYUI_DIR to a ComfyUI checkout to run the pack in ComfyUI"),
    pytest.mark.timeout(600),
]
DUCKLING_API = PACK_ROOT / "workflows" / "api" / "Kontext - duckling on t-shirt.json"
DUCKLING_KONTEXT_NODE = "4"
