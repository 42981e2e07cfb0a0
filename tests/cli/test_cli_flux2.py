"""`python -m fal_kontext flux2`: FLUX.2 edits from a shell, from the node's parameter table."""
from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from fal_kontext.cli.main import build_parser, main
from support import TEST_KEY, png_bytes
from test_cli import EXIT_INVALID, EXIT_USAGE, cli_env, run_cli


@pytest.fixture
def photos(tmp_path) -> list[str]:
    """A 2000x1500 JPEG (downscaled to 1154x866 by default) and a small PNG graphic."""
    big = tmp_path / "big.jpg"
    Image.new("RGB", (2000, 1500), (200, 40, 40)).save(big, quality=80)
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes((20, 20, 220), (640, 480)))
    return [str(big), str(small)]


def test_flux2_writes_the_result_and_a_priced_sidecar(standin, tmp_path, photos):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    out = tmp_path / "out"
    done = run_cli(["flux2", "--prompt", "combine", *photos, "-o", str(out), "--model", "flex",
                    "--width", "1536", "--height", "1024", "--seed", "5", "--guidance", "4",
                    "--steps", "20", "--safety-tolerance", "4", "--no-enable-safety-checker",
                    "--output-format", "png"], env)
    assert done.returncode == 0, done.stderr
    assert "FLUX.2 [flex]: about $0.150 for 3 MP (output 1536x1024 + 2 reference(s) as sent)" \
        in done.stderr, "the price before the run"
    job, = standin.jobs.values()
    assert job.endpoint_id == "fal-ai/flux-2-flex/edit"
    assert {k: v for k, v in job.arguments.items() if k != "image_urls"} == {
        "prompt": "combine", "seed": 5, "image_size": {"width": 1536, "height": 1024},
        "safety_tolerance": "4", "enable_safety_checker": False, "output_format": "png",
        "sync_mode": False, "guidance_scale": 4.0, "num_inference_steps": 20}
    assert [tuple(size) for size in job.reference_sizes] == [(1154, 866), (640, 480)]
    image, = out.glob("flux2_*.png")
    assert Image.open(image).size == (1536, 1024)
    info = json.loads(next(out.glob("flux2_*.json")).read_text())
    assert info["estimated_cost_usd"] == standin.billed_usd() == 0.15
    assert info["reference_sizes"] == [[1154, 866], [640, 480]] and info["billed_megapixels"] == 3
    assert TEST_KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("extra, code, names", [
    (["--image-size", "square", "--width", "800"], EXIT_INVALID, "image_size"),
    (["--width", "4096", "--height", "2048"], EXIT_INVALID, "image_size"),
    (["--model", "flex", "--steps", "0"], EXIT_INVALID, "num_inference_steps"),
    (["--safety-tolerance", "6"], EXIT_USAGE, "safety-tolerance"),
    (["--num-images", "2"], EXIT_USAGE, "num-images"),
])
def test_bad_flux2_inputs_are_refused_before_any_request(fal_env, capsys, photos, extra, code,
                                                         names):
    # In process (the same main() as the command): a refusal needs no fresh interpreter.
    assert in_process(["flux2", "--prompt", "p", *extra, photos[1], "--quiet"]) == code
    stderr = capsys.readouterr().err
    assert names in stderr.strip().splitlines()[-1], "the last line names the input"
    assert not fal_env.requests


def test_nine_references_are_refused_without_reading_them(fal_env, capsys, tmp_path):
    missing = [str(tmp_path / f"not-there-{i}.png") for i in range(9)]
    assert in_process(["flux2", "--prompt", "p", *missing, "--quiet"]) == EXIT_INVALID
    assert "9 reference images" in capsys.readouterr().err
    assert not fal_env.requests


def in_process(argv: list[str]) -> int:
    handlers = list(logging.root.handlers)  # main() configures logging onto the captured stderr
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code)
    finally:
        logging.root.handlers[:] = handlers


def test_the_options_are_the_nodes_table():
    parser = build_parser()
    flux2 = parser._subparsers._group_actions[0].choices["flux2"]  # noqa: SLF001 - argparse
    flags = {flag for action in flux2._actions for flag in action.option_strings}
    assert {"--model", "--image-size", "--width", "--height", "--seed", "--safety-tolerance",
            "--enable-safety-checker", "--no-enable-safety-checker", "--output-format",
            "--sync-mode", "--guidance", "--steps", "--max-reference-megapixels",
            "--transport", "--reference-encoding", "--timeout", "--nsfw-policy"} <= flags
    assert not {"--num-images", "--aspect-ratio", "--enhance-prompt"} & flags
    args = parser.parse_args(["flux2", "--prompt", "p", "a.png"])
    assert (args.model, args.image_size, args.max_reference_megapixels) == ("pro", "auto", 1.0)
