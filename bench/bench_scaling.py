"""Scaling: overhead per call vs reference count (at 1 MP) and reference size (1 reference),
pack vs baseline interleaved, with a least-squares line against input bytes.

The pack's reference downscale is switched off (max_reference_megapixels=0) so both sides send
every pixel; with the default (4 MP) the pack would shrink the 16 MP reference before upload.
Overhead here includes the stand-in's own work per byte (reading and decoding the references
at submit, fitting them into the output), identical for both sides.
"""
from __future__ import annotations

import asyncio
import os

from . import harness as h

LINEAR_R2 = 0.98


async def _measure(standin: h.StandIn, mode: h.Mode, points: list[tuple[int, int]]) -> dict:
    fal = h.new_fal_client()
    seeds = iter(range(20000, 10**6))
    warm = [h.photo_like(256, 256, 1)]
    await h.run_pack(warm, max_reference_megapixels=0.0)
    await h.run_baseline(fal, warm)
    measured = {}
    try:
        for count, side in points:
            fixtures = [[h.photo_like(side, side, next(seeds)) for _ in range(count)]
                        for _ in range(mode.scaling_runs)]

            async def pack(i: int, fixtures: list = fixtures) -> float:
                call = await h.run_pack(fixtures[i], max_reference_megapixels=0.0)
                return call.wall - standin.processing_delay

            async def baseline(i: int, fixtures: list = fixtures) -> float:
                call = await h.run_baseline(fal, fixtures[i])
                return call.wall - standin.processing_delay

            measured[(count, side)] = await h.interleaved(mode.scaling_runs,
                                                          {"pack": pack, "baseline": baseline})
    finally:
        await h.close_fal_client(fal)
    return measured


def run(standin: h.StandIn, mode: h.Mode, plot_path: str | None = None) -> h.BenchResult:
    standin.set_delay(mode.processing_delay)
    h.reset_pack_caches()
    base_side = mode.side
    count_points = [(count, base_side) for count in mode.scaling_counts]
    size_points = [(1, h.side_for_megapixels(mp)) for mp in mode.scaling_megapixels]
    points = list(dict.fromkeys(count_points + size_points))
    measured = asyncio.run(_measure(standin, mode, points))
    med = {point: {who: h.median(values) for who, values in runs.items()}
           for point, runs in measured.items()}

    def input_mb(point: tuple[int, int]) -> float:
        count, side = point
        return count * side * side * 3 / 1e6  # uint8 RGB bytes the user hands the node

    rows = []
    for series, series_points in (("count", count_points), ("size", size_points)):
        for point in series_points:
            count, side = point
            m = med[point]
            rows.append([series, count, f"{side}x{side} ({side * side / 1e6:.2f} MP)",
                         f"{input_mb(point):.1f}", h.ms(m["pack"]), h.ms(m["baseline"]),
                         f"{m['pack'] / m['baseline']:.2f}x"])
    fits, fit_rows = {}, []
    for series, series_points in (("count", count_points), ("size", size_points)):
        for who in ("pack", "baseline"):
            xs = [input_mb(p) for p in series_points]
            ys = [med[p][who] for p in series_points]
            slope, intercept, r2 = h.linear_fit(xs, ys)
            fits[(series, who)] = (slope, intercept, r2)
            fit_rows.append([series, who, f"{slope * 1000:.1f} ms/MB", h.ms(intercept), f"{r2:.3f}",
                             "yes" if r2 >= LINEAR_R2 else "no"])
    linear = all(r2 >= LINEAR_R2 for (series, who), (_, _, r2) in fits.items() if who == "pack")
    result = h.BenchResult("scaling")
    result.targets.append(h.Target(
        "Scaling", "pack overhead linear in input bytes (R^2 of a straight line, count and size "
                   "series)",
        ", ".join(f"{series} R^2={fits[(series, 'pack')][2]:.3f} "
                  f"({fits[(series, 'pack')][0] * 1000:.1f} ms/MB)" for series in ("count", "size")),
        f"R^2 >= {LINEAR_R2}", linear))
    result.tables.append(
        f"**Overhead vs references** (median of {mode.scaling_runs} interleaved rounds, stand-in "
        f"delay {mode.processing_delay:g} s subtracted; pack downscale off)\n\n"
        + h.markdown_table(["series", "references", "size each", "input MB (uint8 RGB)", "pack",
                            "baseline", "pack / baseline"], rows))
    result.tables.append("**Straight-line fit of overhead against input bytes**\n\n"
                         + h.markdown_table(["series", "", "slope", "intercept", "R^2",
                                             f"linear (R^2 >= {LINEAR_R2})"], fit_rows))
    if plot_path:
        saved = _plot(plot_path, count_points, size_points, med, input_mb)
        if saved:
            result.notes.append(f"Plot: `{os.path.basename(plot_path)}`.")
        else:
            result.notes.append("matplotlib is not installed: table only, no plot.")
    result.numbers = {"medians": {f"{c}x{s}": m for (c, s), m in med.items()},
                      "fits": {f"{series}/{who}": fit for (series, who), fit in fits.items()}}
    return result


def _plot(path, count_points, size_points, med, input_mb) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, series, points in ((axes[0], "reference count (1 MP each)", count_points),
                                 (axes[1], "reference size (1 reference)", size_points)):
        xs = [input_mb(p) for p in points]
        for who, style in (("pack", "o-"), ("baseline", "s--")):
            axis.plot(xs, [med[p][who] * 1000 for p in points], style, label=who)
        axis.set_title(f"Overhead vs {series}")
        axis.set_xlabel("input MB (uint8 RGB)")
        axis.set_ylabel("overhead per call (ms)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
