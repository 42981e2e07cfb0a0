"""`python -m fal_kontext.standin`: serve until SIGINT/SIGTERM; print the origins as one JSON line."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Sequence

from .server import StandInServer


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fal_kontext.standin",
                                     description="Run the fal-compatible stand-in server.")
    parser.add_argument("--port", type=int, default=0, help="API origin port (default: any free)")
    parser.add_argument("--processing-delay", type=float, default=0.3, metavar="S")
    parser.add_argument("--queue-delay", type=float, default=0.0, metavar="S")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream-keepalive", type=float, default=15.0, metavar="S",
                        help="status-stream keep-alive interval (fal: 15 s)")
    parser.add_argument("--ignore-cancel-in-progress", action="store_true",
                        help="a cancel of a running job is only a signal: it still completes")
    parser.add_argument("--result-retention", type=float, default=3600.0, metavar="S")
    parser.add_argument("--uplink-mbit", type=float, default=None, metavar="MBIT",
                        help="throttle what clients send (all request bodies) to this many Mbit/s")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    server = StandInServer(processing_delay=args.processing_delay, queue_delay=args.queue_delay,
                           api_key=args.api_key, seed=args.seed, port=args.port,
                           stream_keepalive=args.stream_keepalive,
                           ignore_cancel_in_progress=args.ignore_cancel_in_progress,
                           result_retention=args.result_retention,

                           uplink_bytes_per_second=(args.uplink_mbit * 1e6 / 8
                                                    if args.uplink_mbit else None))
    with server:
        sys.stdout.write(json.dumps({"base_url": server.base_url, "cdn_url": server.cdn_url,
                                     "run_url": server.run_url}) + "\n")
        sys.stdout.flush()
        while not done.wait(0.5):  # short waits keep the main thread responsive to signals
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
