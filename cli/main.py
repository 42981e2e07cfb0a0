"""`python -m fal_kontext`: the nodes' pipeline from a shell.

    python -m fal_kontext edit --prompt "..." person.png duckling.png -o out/     # FLUX.1 Kontext
    python -m fal_kontext flux2 --prompt "..." person.png duckling.png -o out/    # FLUX.2 edit
    python -m fal_kontext collect REQUEST_ID --endpoint fal-ai/flux-pro/kontext -o out/  # free
    python -m fal_kontext demo            # offline: bundled stand-in server, no key, no cost

Each command's options come from its node's parameter table (kontext/parameters.py,
kontext/flux2_parameters.py), so the CLI offers exactly the node's fields and checks.
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

from ..client import AuthError, ConfigurationError, FalClient, FalError, ValidationError
from ..jobs.lifecycle import EndingKind, JobEnding
from ..jobs.store import default_job_store
from ..jobs.words import cancelled_line
from ..kontext import flux2_models as f
from ..kontext import flux2_parameters as fp
from ..kontext import models as m
from ..kontext import parameters as p
from ..kontext.collect import collect_request, pack_endpoints
from ..kontext.edit_request import EditRequest
from ..kontext.errors import InvalidInputError
from ..kontext.flux2_request import Flux2EditRequest
from ..kontext.pipeline import EditOptions, EditResult, Reference, run_edit
from ..kontext.request_contract import FalEditRequest
from ..version import DISTRIBUTION, pack_version
from .files import load_reference, load_reference_and_size, write_results
from .progress_bar import progress_sink

EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_INVALID, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130
OFFLINE_KEY = "offline-demo-key"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "workflows" / "inputs"
DEMO_REFERENCES = ("kontext_person_tshirt.png", "kontext_duckling.png")
DEMO_PROMPT = "Put the little duckling from image 2 on the t-shirt of the person in image 1."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fal_kontext",
                                     description="FLUX.1 Kontext and FLUX.2 multi-image editing "
                                                 "on fal.ai.")
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {pack_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    instruction = p.PARAMETERS[0]  # the table's first entry: the edit instruction
    edit = commands.add_parser("edit", help="edit with FLUX.1 Kontext (billed unless --offline)")
    _add_references(edit, m.MAX_REFERENCES)
    edit.add_argument(instruction.flag, dest=instruction.name, required=True,
                      help="the edit instruction")
    _add_common_options(edit, p.TABLE)
    flux2 = commands.add_parser(
        "flux2", help="edit with FLUX.2 [pro] / [max] / [flex] (billed per megapixel of output "
                      "and references, unless --offline)")
    _add_references(flux2, f.FLUX2_MAX_REFERENCES)
    flux2.add_argument(instruction.flag, dest=instruction.name, required=True,
                       help="the edit instruction")
    _add_common_options(flux2, fp.TABLE)
    collect = commands.add_parser(
        "collect", help="fetch the images of a fal request by its id (free: nothing is submitted)",
        description="Fetch the images of a request fal already has (e.g. one a killed run sent "
                    "before fal named it, found in https://fal.ai/dashboard/requests): waits while "
                    "it runs, writes the images and a JSON sidecar, stores them in the result "
                    "cache. Nothing is submitted or cancelled.")
    collect.add_argument("request_id", metavar="REQUEST_ID", help="the fal request id")
    collect.add_argument("--endpoint", choices=pack_endpoints(), default=pack_endpoints()[0],
                         help="the endpoint the request was sent to (default: %(default)s; any "
                              "endpoint of the same fal app finds it)")
    collect.add_argument("-o", "--output-dir", type=Path, default=Path("fal-kontext-output"))
    policy = p.BY_NAME["nsfw_policy"]
    _add_parameter(collect, policy)
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.add_argument("--verbose", action="store_true", help="log requests and fal's logs")
    demo = commands.add_parser("demo", help="offline demo on the shipped sample images")
    demo.add_argument(instruction.flag, dest=instruction.name, default=DEMO_PROMPT,
                      help="the edit instruction")
    _add_common_options(demo, p.TABLE)
    return parser


def _add_references(parser: argparse.ArgumentParser, limit: int) -> None:
    parser.add_argument("references", nargs="+", type=Path, metavar="REF",
                        help=f"reference images in order (up to {limit})")


def _add_common_options(parser: argparse.ArgumentParser, table: p.ParameterTable) -> None:
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("fal-kontext-output"))
    for parameter in table.parameters:
        if parameter.flag is not None and parameter.flag not in _OWN_FLAGS:
            _add_parameter(parser, parameter)
    parser.add_argument("--no-result-cache", action="store_true", help="always ask fal again")
    parser.add_argument("--offline", action="store_true",
                        help="use the bundled stand-in server: no key, no network, no cost")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log requests and fal's logs")


_OWN_FLAGS = (p.PARAMETERS[0].flag,)  # the instruction: each command declares it
_ARGUMENT_TYPES = {p.INT: int, p.FLOAT: float, p.TEXT: str}


def _add_parameter(parser: argparse.ArgumentParser, parameter: p.Parameter) -> None:
    """One table entry as an option: its flag, type or choices, default and a short help."""
    help_text = parameter.tooltip.split(". ")[0].rstrip(".")
    default = parameter.command_line_default
    if parameter.kind == p.BOOL:
        # A field on by default needs a way to turn it off: --x / --no-x.
        action = argparse.BooleanOptionalAction if default else "store_true"
        parser.add_argument(parameter.flag, dest=parameter.name, action=action,
                            default=default, help=help_text)
    elif parameter.kind == p.CHOICE:
        parser.add_argument(parameter.flag, dest=parameter.name, choices=parameter.choices,
                            default=default, help=help_text)
    else:
        bounds = (f" ({parameter.low:.10g}..{parameter.high:.10g})" if parameter.low is not None
                  else "")
        if default is None and parameter.optional:
            bounds += ", default: random"
        elif default is None:
            bounds += f", default: {parameter.default}"
        parser.add_argument(parameter.flag, dest=parameter.name, type=_ARGUMENT_TYPES[parameter.kind],
                            default=default, help=help_text + bounds)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    if args.command == "demo":
        args.offline = True
        args.references = [SAMPLES_DIR / name for name in DEMO_REFERENCES]
    args.offline = getattr(args, "offline", False)
    if args.offline and not args.quiet:
        print("Offline: using the bundled fal stand-in server on 127.0.0.1; nothing is billed.",
              file=sys.stderr)
    args.reporter = None
    try:
        result = _run_until_interrupted(args)
    except KeyboardInterrupt:
        ending = (getattr(args.reporter, "ending", None)
                  or cancelled_line(JobEnding(EndingKind.NEVER_SUBMITTED)))
        print(f"Interrupted. {ending}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FalError as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit_code(error)
    paths = write_results(result, args.output_dir, prefix=_file_prefix(args))
    for path in paths:
        print(path)
    return EXIT_OK


def _file_prefix(args: argparse.Namespace) -> str:
    """Result files are named after the model family that made them."""
    flux2 = {model.endpoint_id for model in f.FLUX2_MODELS.values()}
    if args.command == "flux2" or (args.command == "collect" and args.endpoint in flux2):
        return "flux2"
    return "kontext"


def _exit_code(error: FalError) -> int:
    if isinstance(error, (AuthError, ConfigurationError)):
        return EXIT_AUTH
    if isinstance(error, (InvalidInputError, ValidationError)):
        return EXIT_INVALID
    return EXIT_FAILED


def _run_until_interrupted(args: argparse.Namespace) -> EditResult:
    """Run the edit on a fresh loop; Ctrl-C cancels the task, which cancels the fal job."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(_collect(args) if args.command == "collect" else _edit(args))
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
    if args.command == "flux2":
        return await _edit_flux2(args)
    values = vars(args)
    request = EditRequest.from_inputs(m.MULTI_MODELS[values[p.MODEL]], values)
    request.validate(len(args.references))
    options = p.check_options(values)
    references = [load_reference(path, f"REF {i + 1}", options["reference_encoding"],
                                 options["max_reference_megapixels"])
                  for i, path in enumerate(args.references)]
    return await _run(args, request, references, options)


async def _edit_flux2(args: argparse.Namespace) -> EditResult:
    values = _flux2_size_values(vars(args))
    model = f.FLUX2_MODELS[values[p.MODEL]]
    # Fields and the reference count are refused before any file is read (sizes not known yet).
    unsized = [(0, 0)] * len(args.references)
    Flux2EditRequest.from_inputs(model, values, unsized).validate(len(args.references))
    options = fp.TABLE.check_options(values)
    loaded = [load_reference_and_size(path, f"REF {i + 1}", options["reference_encoding"],
                                      options["max_reference_megapixels"])
              for i, path in enumerate(args.references)]
    request = Flux2EditRequest.from_inputs(model, values, [size for _, size in loaded])
    request.validate(len(loaded))
    if not args.quiet:
        print(_price_line(request), file=sys.stderr)
    result = await _run(args, request, [reference for reference, _ in loaded], options)
    made = result.images[0].decoded.shape if result.images else None
    info = request.priced_info(result.info, (made[1], made[0]) if made is not None else None)
    return EditResult(images=result.images, seed=result.seed, info=info)


def _price_line(request: Flux2EditRequest) -> str:
    """The price before the run, e.g. 'FLUX.2 [pro]: about $0.060 for 3 MP (output 1024x1024
    + 2 reference(s) as sent)'."""
    width, height = request.output_size
    auto = request.checked_values()["image_size"] == f.IMAGE_SIZE_AUTO
    return (f"{request.model.label}: about ${request.estimated_cost_usd:.3f} for "
            f"{request.billed_megapixels} MP (output {width}x{height}"
            f"{', estimated for auto' if auto else ''} + {len(request.reference_sizes)} "
            "reference(s) as sent)")


def _flux2_size_values(values: dict) -> dict:
    """--width/--height ask for a custom size: image_size becomes `custom` (a preset named with
    them is a usage error); unset sides take the table's defaults."""
    given = [name for name in fp.CUSTOM_SIZE_FIELDS if values.get(name) is not None]
    values = dict(values)
    if given:
        if values["image_size"] not in (fp.TABLE.by_name["image_size"].default, f.IMAGE_SIZE_CUSTOM):
            raise InvalidInputError("image_size", f"{values['image_size']} is a preset; --width and "
                                                  "--height need --image-size custom (or none)")
        values["image_size"] = f.IMAGE_SIZE_CUSTOM
    for name in fp.CUSTOM_SIZE_FIELDS:
        if values.get(name) is None:
            values[name] = fp.TABLE.by_name[name].default
    return values


async def _run(args: argparse.Namespace, request: FalEditRequest, references: list[Reference],
               options: dict) -> EditResult:
    run_options = EditOptions(transport=options["reference_transport"],
                              timeout=options["timeout_seconds"], nsfw_policy=options["nsfw_policy"])
    store = default_job_store(use_result_cache=not (args.no_result_cache or args.offline))
    with _fal_origin(args.offline) as (key, base_url), progress_sink(args.quiet) as reporter:
        args.reporter = reporter
        async with FalClient(key, base_url=base_url) as client:
            return await run_edit(client, request, references, options=run_options,
                                  progress=reporter, store=store)


async def _collect(args: argparse.Namespace) -> EditResult:
    with progress_sink(args.quiet) as reporter:
        args.reporter = reporter
        async with FalClient() as client:  # key and hosts from the environment, as for edit
            return await collect_request(client, args.request_id, args.endpoint,
                                         nsfw_policy=args.nsfw_policy, progress=reporter)


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
