"""`python -m fal_kontext`: the nodes' pipeline from a shell.

    python -m fal_kontext edit --prompt "..." person.png duckling.png -o out/
    python -m fal_kontext demo            # offline: bundled stand-in server, no key, no cost
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Iterator, Sequence

from ..client import (AuthError, ConfigurationError, FalClient, FalError, InvalidInputError,
                      ValidationError)
from ..kontext import models as m
from ..kontext.edit_request import EditRequest
from ..kontext.pipeline import EditOptions, EditResult, run_edit
from ..kontext.result_cache import default_result_cache
from .files import load_reference, write_results
from .progress_bar import progress_sink

EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_INVALID, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130
OFFLINE_KEY = "offline-demo-key"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "workflows" / "inputs"
DEMO_REFERENCES = ("kontext_person_tshirt.png", "kontext_duckling.png")
DEMO_PROMPT = "Put the little duckling from image 2 on the t-shirt of the person in image 1."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fal_kontext",
                                     description="FLUX.1 Kontext multi-image editing on fal.ai.")
    commands = parser.add_subparsers(dest="command", required=True)
    edit = commands.add_parser("edit", help="edit with reference images (billed unless --offline)")
    edit.add_argument("references", nargs="+", type=Path, metavar="REF",
                      help=f"reference images in order (up to {m.MAX_REFERENCES})")
    edit.add_argument("--prompt", required=True, help="the edit instruction")
    _add_common_options(edit)
    demo = commands.add_parser("demo", help="offline demo on the shipped sample images")
    demo.add_argument("--prompt", default=DEMO_PROMPT, help="the edit instruction")
    _add_common_options(demo)
    return parser


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("fal-kontext-output"))
    parser.add_argument("--model", choices=m.MODEL_TIERS, default="pro",
                        help="pro ($%.2f/image) or max ($%.2f/image)" % (
                            m.MULTI_MODELS["pro"].usd_per_image, m.MULTI_MODELS["max"].usd_per_image))
    parser.add_argument("--seed", type=int, default=None, help="reproducible runs (default: random)")
    parser.add_argument("--guidance", type=float, default=m.GUIDANCE_DEFAULT, dest="guidance_scale",
                        help=f"{m.GUIDANCE_MIN:g}..{m.GUIDANCE_MAX:g}")
    parser.add_argument("--num-images", type=int, default=m.NUM_IMAGES_DEFAULT,
                        help=f"{m.NUM_IMAGES_MIN}..{m.NUM_IMAGES_MAX}, each billed")
    parser.add_argument("--aspect-ratio", choices=(m.ASPECT_RATIO_AUTO, *m.ASPECT_RATIOS),
                        default=m.ASPECT_RATIO_AUTO)
    parser.add_argument("--output-format", choices=m.OUTPUT_FORMATS, default=m.OUTPUT_FORMAT_DEFAULT)
    parser.add_argument("--safety-tolerance", choices=m.SAFETY_TOLERANCES,
                        default=m.SAFETY_TOLERANCE_DEFAULT)
    parser.add_argument("--enhance-prompt", action="store_true")
    parser.add_argument("--sync-mode", action="store_true", help="results inline, not kept by fal")
    parser.add_argument("--transport", choices=m.REFERENCE_TRANSPORTS, default="upload")
    parser.add_argument("--reference-encoding", choices=m.REFERENCE_ENCODINGS,
                        default=m.REFERENCE_ENCODING_DEFAULT,
                        help="auto: PNG photos go as JPEG q%d 4:4:4, graphics/alpha as PNG, JPEG/"
                             "WebP files as they are; lossless: files as they are (PNG if "
                             "downscaled)" % m.REFERENCE_JPEG_QUALITY)
    parser.add_argument("--max-reference-megapixels", type=float,
                        default=m.DEFAULT_MAX_REFERENCE_MEGAPIXELS, metavar="MP",
                        help="downscale larger references first (0 = never; Kontext works at "
                             "about 1 MP)")
    parser.add_argument("--timeout", type=float, default=m.DEFAULT_TIMEOUT_SECONDS, metavar="S")
    parser.add_argument("--nsfw-policy", choices=m.NSFW_POLICIES, default="drop")
    parser.add_argument("--no-result-cache", action="store_true", help="always ask fal again")
    parser.add_argument("--offline", action="store_true",
                        help="use the bundled stand-in server: no key, no network, no cost")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log requests and fal's logs")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    if args.command == "demo":
        args.offline = True
        args.references = [SAMPLES_DIR / name for name in DEMO_REFERENCES]
    if args.offline and not args.quiet:
        print("Offline: using the bundled fal stand-in server on 127.0.0.1; nothing is billed.",
              file=sys.stderr)
    try:
        result = _run_until_interrupted(args)
    except KeyboardInterrupt:
        print("Interrupted: the fal job (if any) was cancelled.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FalError as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit_code(error)
    paths = write_results(result, args.output_dir)
    for path in paths:
        print(path)
    return EXIT_OK


def _exit_code(error: FalError) -> int:
    if isinstance(error, (AuthError, ConfigurationError)):
        return EXIT_AUTH
    if isinstance(error, (InvalidInputError, ValidationError)):
        return EXIT_INVALID
    return EXIT_FAILED


def _run_until_interrupted(args: argparse.Namespace) -> EditResult:
    """Run the edit on a fresh loop; Ctrl-C cancels the task, which cancels the fal job."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(_edit(args))
    with contextlib.suppress(NotImplementedError, ValueError):  # Windows / non-main thread
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _edit(args: argparse.Namespace) -> EditResult:
    request = EditRequest(
        model=m.MULTI_MODELS[args.model], prompt=args.prompt, seed=args.seed,
        guidance_scale=args.guidance_scale, num_images=args.num_images,
        aspect_ratio=args.aspect_ratio, output_format=args.output_format,
        safety_tolerance=args.safety_tolerance, enhance_prompt=args.enhance_prompt,
        sync_mode=args.sync_mode)
    request.validate(len(args.references))
    references = [load_reference(path, f"REF {i + 1}", args.reference_encoding,
                                 args.max_reference_megapixels)
                  for i, path in enumerate(args.references)]
    options = EditOptions(transport=args.transport, timeout=args.timeout, nsfw_policy=args.nsfw_policy)
    cache = None if args.no_result_cache or args.offline else default_result_cache()
    with _fal_origin(args.offline) as (key, base_url), progress_sink(args.quiet) as reporter:
        async with FalClient(key, base_url=base_url) as client:
            return await run_edit(client, request, references, options=options,
                                  progress=reporter, result_cache=cache)


@contextlib.contextmanager
def _fal_origin(offline: bool) -> Iterator[tuple[str | None, str | None]]:
    """(key, base URL) to use: fal's from the environment, or the bundled stand-in's when
    offline (which never talks to fal, whatever the environment says)."""
    if not offline:
        yield None, os.environ.get("FAL_KONTEXT_BASE_URL") or None
        return
    from ..standin import StandInServer

    with StandInServer(processing_delay=1.0, queue_delay=0.5) as server:
        yield OFFLINE_KEY, server.base_url
