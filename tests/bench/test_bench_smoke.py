"""Every benchmark runs end to end in its tiny mode and reports numbers (no timing asserts).

The benchmarks are kept out of the normal figures: this only proves `python -m bench.run_all`
still works against the current pack, stand-in and fal_client.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("overhead", "png", "rerun", "concurrency", "memory", "scaling", "status_requests",
              "uplink", "flux2_price", "chain")
EXPECTED_TARGETS = {"overhead": {"P1", "P2"}, "png": {"P3", "E1", "E2"}, "rerun": {"P4"},
                    "concurrency": {"P5", "P5'"}, "memory": {"P6"}, "scaling": {"Scaling"},
                    "status_requests": {"S1", "S2"}, "uplink": {"U1"}, "flux2_price": {"F1"},
                    "chain": {"C1"}}

pytest.importorskip("fal_client", reason="the baseline needs fal-client (pip install .[bench])")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "bench.run_all", "--smoke",
                           "--out", str(out / "results.md"), "--json", str(out / "results.json")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_reports_finite_numbers_and_its_targets(smoke_run, name):
    report, markdown = smoke_run
    assert not report["errors"], report["errors"]
    result = report["results"][name]
    assert {target["name"] for target in result["targets"]} == EXPECTED_TARGETS[name]
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines()
            if line.startswith("| ")}
    for target in result["targets"]:
        # Every target is judged (None would be "n/a"), and the report shows that judgement.
        verdict = {True: "met", False: "**not met**"}[target["met"]]
        assert target["measured"] and rows[target["name"]].rstrip(" |").endswith(verdict)
    numbers = list(_numbers(result["numbers"]))
    assert numbers and all(math.isfinite(n) for n in numbers)


def test_the_report_describes_the_machine_and_lists_every_target(smoke_run):
    _, markdown = smoke_run
    for field in ("CPU", "cores", "Python", "fal-client", "pillow", "torch"):
        assert f"| {field} |" in markdown
    for target in ("P1", "P2", "P3", "P4", "P5", "P6", "Scaling", "E1", "E2", "U1", "F1", "C1"):
        assert f"| {target} |" in markdown


def test_flux2_price_benchmark_saves_on_every_model(smoke_run):
    report, _ = smoke_run
    prices = report["results"]["flux2_price"]["numbers"]["prices"]
    assert set(prices) == {"pro", "max", "flex"}
    for row in prices.values():
        assert row["sent_mp"] == 3 and row["unscaled_mp"] == 24
        assert row["saved_usd"] == round(row["unscaled_usd"] - row["sent_usd"], 4) > 0


def test_status_request_benchmark_counts_each_clients_traffic_for_its_own_job(smoke_run):
    report, markdown = smoke_run
    figures = report["results"]["status_requests"]["numbers"]
    assert len(figures) == 2  # the pack and fal_client
    for counts in figures.values():
        assert counts["result_fetches"] >= 1
        assert counts["status_type"] == counts["status_polls"] + counts["stream_connections"] >= 1
        assert 0 <= counts["completion_to_result"] < counts["wall"]
    assert "status-type total" in markdown


def test_chain_benchmark_step_two_sends_the_url_and_fal_gets_the_exact_file(smoke_run):
    report, _ = smoke_run
    figures = report["results"]["chain"]["numbers"]
    pack, before = figures["medians"]["pack"], figures["medians"]["re-upload"]
    assert pack["upload_bytes"] == 0 and pack["by_url"] == 1
    assert figures["lowest_psnr"]["pack"] == 999.0, "the URL is the step-1 file itself: exact"
    # Without the served-results table the pack re-encodes and uploads: a second JPEG generation.
    assert before["upload_bytes"] > 0 and before["by_url"] == 0
    assert 35 < figures["lowest_psnr"]["re-upload"] < 999
    assert pack["reference_pixels"] >= 1_000_000, "the step-1 result is a ~1 MP photo"
