"""Starting and stopping: context manager, ephemeral ports, no leaked threads, the -m entry."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from fal_kontext.standin import StandInServer
from standin_helpers import MULTI


def test_three_distinct_loopback_origins_on_ephemeral_ports():
    with StandInServer() as server:
        urls = {server.base_url, server.cdn_url, server.run_url}
        assert len(urls) == 3
        assert all(url.startswith("http://127.0.0.1:") for url in urls)


def test_urls_are_unavailable_before_start():
    with pytest.raises(RuntimeError):
        StandInServer().base_url


def test_stop_leaves_no_threads_and_closes_keepalive_connections(refs):
    before = set(threading.enumerate())
    server = StandInServer(processing_delay=0.05).start()
    with httpx.Client(headers={"Authorization": "Key k"}) as http:
        reference = server.put_file(b"x", "text/plain")
        http.get(reference)  # leaves an idle keep-alive connection in the pool
        http.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": ["bad"]})
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
    assert set(threading.enumerate()) <= before


def test_stop_interrupts_delays_and_open_streams(client, refs):
    server = StandInServer(processing_delay=30.0).start()
    body = client.post(f"{server.base_url}/{MULTI}", json={"prompt": "p", "image_urls": refs}).json()
    server.faults.add("status", delay=30.0)
    waiting = []

    def reader() -> None:
        try:
            with httpx.stream("GET", body["status_url"] + "/stream",
                              headers={"Authorization": "Key k"}) as response:
                waiting.extend(response.iter_lines())
        except httpx.HTTPError:
            pass

    def poller() -> None:
        try:
            httpx.get(body["status_url"], headers={"Authorization": "Key k"})
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=reader), threading.Thread(target=poller)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - started < 2.0
    assert not any(thread.is_alive() for thread in threads)


def test_stop_is_idempotent_and_restart_is_refused():
    server = StandInServer()
    with server:
        pass
    server.stop()
    with pytest.raises(RuntimeError):
        server.start()


def test_python_m_entry_prints_origins_and_serves_until_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "fal_kontext.standin", "--processing-delay", "0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(__file__))
    try:
        line = process.stdout.readline()
        origins = json.loads(line)
        assert set(origins) == {"base_url", "cdn_url", "run_url"}
        assert httpx.get(f"{origins['cdn_url']}/files/x/y").status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
