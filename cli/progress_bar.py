"""A terminal progress bar for the pipeline's ProgressEvents (tqdm when installed)."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ..kontext.progress import ProgressEvent, ProgressReporter

_STEPS = 100


@contextlib.contextmanager
def progress_sink(quiet: bool) -> Iterator[ProgressReporter]:
    if quiet:
        yield ProgressReporter()
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield ProgressReporter(_print_line)
        return
    bar = tqdm(total=_STEPS, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}", leave=True)

    def show(event: ProgressEvent) -> None:
        bar.set_description_str(event.text)
        bar.update(max(0, int(event.fraction * _STEPS) - bar.n))

    try:
        yield ProgressReporter(show)
    finally:
        bar.close()


def _print_line(event: ProgressEvent) -> None:
    print(f"[{event.fraction:4.0%}] {event.text}", file=sys.stderr)
