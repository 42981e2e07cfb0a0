"""Run every benchmark against the stand-in and write bench/results.md (+ bench/scaling.png).

    python -m bench.run_all --quick     # ~1-2 minutes
    python -m bench.run_all --full      # the figures for the README (~6 minutes)
    python -m bench.run_all --smoke --out /tmp/x.md   # seconds; what the test suite runs

Run from the repository root. The stand-in runs in a child process on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from . import (bench_chain, bench_concurrency, bench_flux2_price, bench_memory,
               bench_overhead, bench_png, bench_rerun, bench_scaling, bench_status_requests,
               bench_uplink)
from . import harness as h

BENCHMARKS = {
    "overhead": bench_overhead.run,  # P1, P2
    "png": bench_png.run,  # P3
    "rerun": bench_rerun.run,  # P4
    "concurrency": bench_concurrency.run,  # P5
    "memory": bench_memory.run,  # P6
    "scaling": bench_scaling.run,
    "status_requests": bench_status_requests.run,  # S1, S2 (issue 11)
    "uplink": bench_uplink.run,  # U1: first run over a 20 / 100 Mbit/s uplink
    "flux2_price": bench_flux2_price.run,  # F1: FLUX.2 dollars saved by the reference downscale
    "chain": bench_chain.run,  # C1: step 2 of a two-step chain over a 20 Mbit/s uplink
}
HERE = os.path.dirname(os.path.abspath(__file__))
CAVEATS = (
    "Loopback makes bytes nearly free, so upload size barely shows in P1-P6; the uplink "
    "benchmark throttles everything the clients send to 20 and 100 Mbit/s to show what the "
    "pack's smaller references (JPEG for photos) save on a real connection.",
    "The stand-in shares this machine's cores with the client (its CPU time is shown under "
    "concurrency); it also reads and decodes the references inside the submit request, which "
    "both sides pay in 'before submit'.",
    "The stand-in renders ~1 MP whatever aspect ratio is asked, so the full-node memory figure "
    "is for 4 x 1 MP outputs; the 2 MP figure is the node's decode stage on 2.1 MP results.",
    "Overheads subtract only the stand-in's processing delay; polling, result fetch, download "
    "and decode stay in, for both sides.",
    "F1 is arithmetic on sizes with the pack's price rule, which the stand-in's billing "
    "follows; what fal does with references above 4 MP (refuse them, or shrink them before "
    "billing) is not documented, so the unscaled figure is fal's rule as published.",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    for name in h.MODES:
        size.add_argument(f"--{name}", dest="mode", action="store_const", const=name)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run just these")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"), help="markdown report")
    parser.add_argument("--json", default=None, help="also write every number as JSON here")
    parser.set_defaults(mode="quick")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = h.MODES[args.mode]
    names = args.only or list(BENCHMARKS)
    results: list[h.BenchResult] = []
    errors: dict[str, str] = {}
    started = time.monotonic()
    load = os.getloadavg()[0]  # other work on the machine skews every figure: say so
    if load > 0.5:
        print(f"[bench] warning: load average {load:.2f} before starting; figures will be noisy",
              flush=True)
    with h.StandIn(mode.processing_delay) as standin:
        h.configure_pack(standin)
        h.point_fal_client_at(standin)
        for name in names:
            print(f"[bench] {name} ({mode.name}) ...", flush=True)
            t0 = time.monotonic()
            try:
                if name == "scaling":
                    plot = os.path.join(os.path.dirname(os.path.abspath(args.out)), "scaling.png")
                    result = bench_scaling.run(standin, mode, plot_path=plot)
                else:
                    result = BENCHMARKS[name](standin, mode)
            except Exception:
                errors[name] = traceback.format_exc()
                print(errors[name], file=sys.stderr, flush=True)
                continue
            results.append(result)
            for target in result.targets:
                print(f"  {target.name}: {target.measured}  (goal {target.goal}: {target.verdict})",
                      flush=True)
            print(f"  took {time.monotonic() - t0:.1f} s", flush=True)
    report = render(results, errors, mode, time.monotonic() - started, load)
    with open(args.out, "w") as out:
        out.write(report)
    print(f"[bench] wrote {args.out}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"mode": mode.name, "errors": errors,
                       "results": {r.name: {"targets": [t.__dict__ for t in r.targets],
                                            "numbers": r.numbers} for r in results}},
                      out, indent=1, default=str)
    return 1 if errors else 0


def render(results: list[h.BenchResult], errors: dict[str, str], mode: h.Mode,
           seconds: float, load: float) -> str:
    machine = {**h.machine_description(), "1-min load average at start": f"{load:.2f}"}
    lines = [
        "# fal-kontext benchmarks",
        "",
        f"Generated by `python -m bench.run_all --{mode.name}` in {seconds:.0f} s on "
        f"{time.strftime('%Y-%m-%d')}. The pack against the peer baseline (fal's official "
        "`fal_client` AsyncClient: `upload` one reference after another, `subscribe` with its "
        "default 0.1 s polling; ComfyUI-style tensor conversion; Pillow's default PNG), both "
        "pointed at the same local stand-in server (in its own process on the same machine), same "
        "inputs, runs interleaved. Figures are medians; ratios are medians of per-round ratios of "
        "back-to-back runs. Absolute times are for this machine only.",
        "",
        "## Machine",
        "",
        h.markdown_table(["", ""], list(machine.items())),
        "",
        "## Targets",
        "",
        h.markdown_table(["target", "what", "measured", "goal", "verdict"],
                         [[t.name, t.description, t.measured, t.goal, t.verdict]
                          for r in results for t in r.targets]),
        "",
    ]
    for result in results:
        lines += [f"## {result.name}", ""]
        for table in result.tables:
            lines += [table, ""]
        lines += [note + "\n" for note in result.notes]
    if any(r.name == "scaling" and any("Plot" in n for n in r.notes) for r in results):
        lines += ["![overhead vs references](scaling.png)", ""]
    lines += ["## Caveats", "", *[f"- {caveat}" for caveat in CAVEATS], ""]
    for name, error in errors.items():
        lines += [f"## {name}: FAILED", "", "```", error.strip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
