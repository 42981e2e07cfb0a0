"""Shared setup for every benchmark: the stand-in in its own process, the pack and the peer
baseline pointed at it, photo-like tensor fixtures, and the statistics we report.

Timings are noisy, so every figure is a median of several runs, and every pack-vs-baseline
ratio comes from runs interleaved in the same session (never a lone absolute time).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Awaitable, Callable, Sequence

import numpy as np
import torch

from fal_kontext.kontext.models import MULTI_MODELS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_KEY = "bench-key"
ENDPOINT = MULTI_MODELS["pro"].endpoint_id
PROMPT = "put the object from image 2 into the scene of image 1"
UPLOAD_ROUTES = ("token", "upload", "initiate", "put_upload")


# --- modes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mode:
    """How hard to push: `smoke` (seconds, for the test suite), `quick`, `full`."""

    name: str
    runs: int  # interleaved pairs per figure
    processing_delay: float  # the stand-in's simulated GPU time, subtracted from overheads
    concurrency_delay: float
    scaling_counts: tuple[int, ...]
    scaling_megapixels: tuple[float, ...]
    scaling_runs: int
    memory_runs: int
    png_reps: int
    side: int  # reference side in pixels (1024 in quick/full)


MODES = {
    "smoke": Mode("smoke", 1, 0.05, 0.1, (1, 2), (0.0625, 0.25), 1, 1, 2, 256),
    "quick": Mode("quick", 5, 0.3, 0.5, (1, 2, 4), (0.25, 1.0, 4.0), 2, 1, 7, 1024),
    "full": Mode("full", 11, 0.5, 1.0, (1, 2, 4, 8), (0.25, 1.0, 4.0, 16.0), 3, 3, 21, 1024),
}


# --- the stand-in, in a child process --------------------------------------------------------
def _serve(conn, processing_delay: float) -> None:
    """Child process: run the stand-in and answer the parent's questions about it."""
    from fal_kontext.standin import StandInServer

    with StandInServer(processing_delay=processing_delay) as server:
        conn.send({"base_url": server.base_url, "cdn_url": server.cdn_url, "run_url": server.run_url})
        while True:
            op, args = conn.recv()
            if op == "stop":
                conn.send(None)
                return
            if op == "delay":
                server.processing_delay = args[0]
                conn.send(None)
            elif op == "uplink":
                server.uplink_bytes_per_second = args[0]
                conn.send(None)
            elif op == "job_times":
                job = server.jobs[args[0]]
                conn.send((job.submitted_at, job.completed_at))
            elif op == "traffic":
                requests = server.requests
                uploads = [r for r in requests if r.route in UPLOAD_ROUTES]
                conn.send({"requests": len(requests), "request_bytes": sum(len(r.body) for r in requests),
                           "upload_requests": len(uploads),
                           "upload_bytes": sum(len(r.body) for r in uploads),
                           "submits": sum(1 for r in requests if r.route == "submit")})
            elif op == "job_traffic":
                job = server.jobs[args[0]]
                mine = [r for r in server.requests if f"/requests/{args[0]}" in r.path]
                conn.send({"completed_at": job.completed_at,
                           "routes": [(r.route, r.time) for r in mine]})
            elif op == "timeline":
                conn.send([(r.route, r.time, len(r.body)) for r in server.requests])
            elif op == "bodies":
                conn.send([(r.route, r.body) for r in server.requests if r.route in args[0]])
            elif op == "clear":
                server.clear_requests()
                conn.send(None)


class StandIn:
    """The pack's StandInServer in a child process, so its HTTP and rendering threads never take
    the GIL from the client being measured. Its clock (time.monotonic) is the machine's, so
    `completed_at` compares directly with the parent's timestamps."""

    def __init__(self, processing_delay: float):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, processing_delay), daemon=True)
        self._lock = threading.Lock()
        self.processing_delay = processing_delay
        self.base_url = self.cdn_url = self.run_url = ""

    def __enter__(self) -> "StandIn":
        self._process.start()
        urls = self._conn.recv()
        self.base_url, self.cdn_url, self.run_url = urls["base_url"], urls["cdn_url"], urls["run_url"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._ask("stop")
        finally:
            self._process.join(15)
            if self._process.is_alive():
                self._process.terminate()

    def _ask(self, op: str, *args: Any) -> Any:
        with self._lock:
            self._conn.send((op, args))
            return self._conn.recv()

    def set_delay(self, seconds: float) -> None:
        self.processing_delay = seconds
        self._ask("delay", seconds)

    def set_uplink(self, bytes_per_second: float | None) -> None:
        """Throttle everything clients send (all request bodies) to this rate; None: loopback."""
        self._ask("uplink", bytes_per_second)

    def job_times(self, request_id: str) -> tuple[float, float | None]:
        """(submitted_at, completed_at) of a job, both time.monotonic()."""
        return self._ask("job_times", request_id)

    def traffic(self) -> dict[str, int]:
        """What clients sent since the last clear(): request counts and body bytes."""
        return self._ask("traffic")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the stand-in process has used so far."""
        with open(f"/proc/{self._process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def job_traffic(self, request_id: str) -> dict[str, Any]:
        """When the job completed (time.monotonic()) and (route, time) of every request that
        named it (status polls, stream connections, result fetches, cancels)."""
        return self._ask("job_traffic", request_id)

    def timeline(self) -> list[tuple[str | None, float, int]]:
        """(route, time.monotonic() when read, body bytes) of each request since clear()."""
        return self._ask("timeline")

    def bodies(self, routes: Sequence[str]) -> list[tuple[str, bytes]]:
        """(route, body) of each request to one of `routes` since clear(), in arrival order."""
        return self._ask("bodies", tuple(routes))

    def clear(self) -> None:
        self._ask("clear")


# --- pointing both clients at it -------------------------------------------------------------
def configure_pack(standin: StandIn, cache_dir: str | None = None) -> None:
    """The environment a user sets, with the stand-in as fal and a private result cache."""
    os.environ["FAL_KEY"] = BENCH_KEY
    os.environ["FAL_KONTEXT_BASE_URL"] = standin.base_url
    os.environ["FAL_KONTEXT_CONFIG"] = os.path.join(tempfile.gettempdir(), "fal-kontext-bench-none.json")
    os.environ["FAL_KONTEXT_RESULT_CACHE_DIR"] = cache_dir or tempfile.mkdtemp(prefix="fal-kontext-bench-")
    os.environ.pop("FAL_KONTEXT_MAX_SPEND_USD", None)


def point_fal_client_at(standin: StandIn) -> None:
    """fal_client 1.0.3 hard-codes https hosts in module constants read at call time: the run
    and queue URL prefixes, the REST host (storage tokens) and the v3 CDN (uploads). The
    stand-in serves queue, token and /files/upload on base_url."""
    import fal_client.client as fal_module

    fal_module.RUN_URL_FORMAT = standin.run_url + "/"
    fal_module.QUEUE_URL_FORMAT = standin.base_url + "/"
    fal_module.REST_URL = standin.base_url
    fal_module.CDN_URL = standin.base_url


def subprocess_env() -> dict[str, str]:
    """This environment, with the repository root importable (for `python -m bench.*`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    return env


def reset_pack_caches() -> None:
    from fal_kontext.client import SHARED_UPLOAD_CACHE
    from fal_kontext.kontext.spending import PROCESS_SPENDING

    SHARED_UPLOAD_CACHE.clear()
    PROCESS_SPENDING.reset()


# --- fixtures --------------------------------------------------------------------------------
PHOTO_NOISE = 0.02  # sigma of the per-channel noise, ~5 of 255 levels
# What a typical 1 MP reference keeps: ~2.6 levels. A camera or phone photo scaled down 3-5x per
# side to 1 MP averages its sensor noise down as much, so this is already a noisy one. The
# heavier default stays the input of the CPU-bound benchmarks (it is the costlier to encode).
TYPICAL_PHOTO_NOISE = 0.01


def photo_like(height: int, width: int, seed: int, noise: float = PHOTO_NOISE) -> torch.Tensor:
    """A [1,H,W,3] float32 frame with smooth structure plus sensor-like noise, so PNG compresses
    it about as much as a photo (random noise would not compress, flat colour far too well).
    The default noise (independent per channel) is heavy: a worst case for lossy codecs."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    channels = []
    for _ in range(3):
        f = torch.rand(4, generator=generator) * 5 + 1
        p = torch.rand(4, generator=generator) * 6.283
        channel = (0.5 + 0.22 * torch.sin(6.283 * f[0] * x + p[0]) * torch.cos(6.283 * f[1] * y + p[1])
                   + 0.15 * torch.sin(6.283 * f[2] * (x + y) + p[2])
                   + 0.08 * torch.cos(6.283 * f[3] * (x - y) * 3 + p[3]))
        channels.append(channel)
    image = torch.stack(channels, dim=-1)
    image += torch.randn(height, width, 3, generator=generator) * noise
    return image.clamp_(0, 1).unsqueeze(0)


def side_for_megapixels(megapixels: float) -> int:
    return max(16, int(round((megapixels * 1e6) ** 0.5 / 16)) * 16)


# --- the two things being compared -----------------------------------------------------------
def node_arguments(references: Sequence[torch.Tensor], **overrides: Any) -> dict[str, Any]:
    """What ComfyUI passes FalKontextMulti.edit: widget defaults, then the sockets."""
    from fal_kontext.nodes.kontext_nodes import FalKontextMulti

    values: dict[str, Any] = {"unique_id": "bench"}
    spec = FalKontextMulti.INPUT_TYPES()
    # Optional widgets too, as the UI sends every widget: a widget added after the node's first
    # release is optional, and absent it takes the first release's behaviour (e.g. lossless).
    for name, (kind, options) in {**spec["required"], **spec.get("optional", {})}.items():
        if isinstance(kind, list):
            values[name] = options.get("default", kind[0])
        elif kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
            values[name] = options.get("default")
    values.update(prompt=PROMPT, use_result_cache=False)
    sockets = FalKontextMulti.REFERENCE_INPUTS
    if len(references) > len(sockets):  # more references than sockets: batch them in the first
        values["images"] = torch.cat(list(references[: len(references) - len(sockets) + 1]))
        rest = references[len(references) - len(sockets) + 1:]
        values.update({name: ref for name, ref in zip(sockets[1:], rest)})
    else:
        values.update({name: ref for name, ref in zip(sockets, references)})
    values.update(overrides)
    return values


@dataclass
class CallResult:
    images: torch.Tensor
    request_id: str
    started: float  # time.monotonic()
    finished: float

    @property
    def wall(self) -> float:
        return self.finished - self.started


async def run_pack(references: Sequence[torch.Tensor], **overrides: Any) -> CallResult:
    """One FalKontextMulti execution, called as ComfyUI calls it."""
    from fal_kontext.nodes.kontext_nodes import FalKontextMulti

    arguments = node_arguments(references, **overrides)
    started = time.monotonic()
    images, _seed, info = await FalKontextMulti().edit(**arguments)
    finished = time.monotonic()
    return CallResult(images, json.loads(info)["request_id"], started, finished)


async def run_baseline(fal, references: Sequence[torch.Tensor], **overrides: Any) -> CallResult:
    from .baseline import peer_edit

    arguments = node_arguments(references, **overrides)
    started = time.monotonic()
    images, request_id = await peer_edit(fal, references, baseline_arguments(arguments))
    finished = time.monotonic()
    return CallResult(images, request_id, started, finished)


def baseline_arguments(node_args: dict[str, Any]) -> dict[str, Any]:
    """The same fal arguments the pack sends for these widget values."""
    body = {key: node_args[key] for key in ("prompt", "seed", "guidance_scale", "num_images",
                                            "output_format", "safety_tolerance", "enhance_prompt",
                                            "sync_mode")}
    if node_args.get("aspect_ratio", "auto") != "auto":
        body["aspect_ratio"] = node_args["aspect_ratio"]
    return body


def new_fal_client():
    import fal_client

    return fal_client.AsyncClient(key=BENCH_KEY)


async def close_fal_client(fal) -> None:
    client = await fal._client  # fal_client keeps its pool open forever otherwise
    await client.aclose()


async def interleaved(runs: int, contenders: dict[str, Callable[[int], Awaitable[Any]]]) -> dict[str, list[Any]]:
    """Run each contender `runs` times, alternating which goes first in each round, so drift
    (thermal, caches, other load) hits all of them alike."""
    names = list(contenders)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_index in range(runs):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(await contenders[name](round_index))
    return results


# --- statistics and reporting ------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 frames in dB; inf when they are identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of per-round ratios (each pair ran back to back)."""
    return median([n / d for n, d in zip(numerators, denominators) if d > 0])


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """(slope, intercept, r_squared) of a least-squares line."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else 0.0
    intercept = mean_y - slope * mean_x
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    return slope, intercept, (1 - ss_res / ss_tot) if ss_tot else 1.0


@dataclass
class Target:
    name: str
    description: str
    measured: str
    goal: str
    met: bool | None  # None: informational

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "n/a"}[self.met]


@dataclass
class BenchResult:
    """What one benchmark hands run_all: target verdicts, extra tables, raw numbers."""

    name: str
    targets: list[Target] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # markdown
    numbers: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def machine_description() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or "unknown"
    versions = {}
    for package in ("fal-kontext", "fal-client", "httpx", "pillow", "numpy", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        import zlib
        versions["zlib"] = zlib.ZLIB_RUNTIME_VERSION
    except AttributeError:
        pass
    return {"CPU": cpu, "cores": str(os.cpu_count()), "OS": platform.platform(),
            "Python": platform.python_version(),
            **{name: version for name, version in versions.items()}}
