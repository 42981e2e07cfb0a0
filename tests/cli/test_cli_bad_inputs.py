"""Bad inputs through the CLI: each is refused with one line naming the input, before any request."""
from __future__ import annotations

import pytest

from support import TEST_KEY, png_bytes
from test_cli import EXIT_AUTH, EXIT_INVALID, EXIT_USAGE, cli_env, run_cli


@pytest.fixture
def picture(tmp_path) -> str:
    path = tmp_path / "ref.png"
    path.write_bytes(png_bytes())
    return str(path)


@pytest.mark.parametrize("extra, code, names", [
    (["--prompt", "   "], EXIT_INVALID, "prompt"),
    (["--prompt", "x" * 10_001], EXIT_INVALID, "prompt"),
    (["--prompt", "p", "--num-images", "0"], EXIT_INVALID, "num_images"),
    (["--prompt", "p", "--num-images", "5"], EXIT_INVALID, "num_images"),
    (["--prompt", "p", "--guidance", "25"], EXIT_INVALID, "guidance_scale"),
    (["--prompt", "p", "--seed", "-1"], EXIT_INVALID, "seed"),
    (["--prompt", "p", "--timeout", "1"], EXIT_INVALID, "timeout_seconds"),
    (["--prompt", "p", "--aspect-ratio", "5:4"], EXIT_USAGE, "aspect-ratio"),
    (["--prompt", "p", "--model", "ultra"], EXIT_USAGE, "model"),
    (["--prompt", "p", "--output-format", "gif"], EXIT_USAGE, "output-format"),
])
def test_invalid_parameters_are_refused_before_any_request(standin, tmp_path, picture, extra, code,
                                                           names):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", *extra, picture, "--quiet"], env)
    assert done.returncode == code and names in done.stderr
    assert not standin.requests


def test_too_many_references_names_the_count(standin, tmp_path, picture):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", *[picture] * 9, "--quiet"], env)
    assert done.returncode == EXIT_INVALID and "9 reference images" in done.stderr
    assert not standin.requests


@pytest.mark.parametrize("content, problem", [(b"", "not a PNG"), (b"hello", "not a PNG")])
def test_a_file_that_is_not_an_image_is_named(standin, tmp_path, content, problem):
    bad = tmp_path / "notes.txt"
    bad.write_bytes(content)
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", str(bad), "--quiet"], env)
    assert done.returncode == EXIT_INVALID and "notes.txt" in done.stderr and problem in done.stderr
    assert not standin.requests


def test_a_missing_file_is_named(standin, tmp_path):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", str(tmp_path / "nope.png"), "--quiet"], env)
    assert done.returncode == EXIT_INVALID and "nope.png" in done.stderr


@pytest.mark.parametrize("pasted", [f"  {TEST_KEY}\n", f'"{TEST_KEY}"', f"Key {TEST_KEY}"])
def test_a_pasted_key_with_stray_characters_works(standin, tmp_path, picture, pasted):
    env = cli_env(tmp_path, FAL_KEY=pasted, FAL_KONTEXT_BASE_URL=standin.base_url)
    done = run_cli(["edit", "--prompt", "p", picture, "--quiet", "-o", str(tmp_path / "o")], env)
    assert done.returncode == 0, done.stderr
    submit = standin.submits()[0]
    assert submit.headers["authorization"] == f"Key {TEST_KEY}"


def test_a_plain_http_non_local_base_url_is_refused(tmp_path, picture):
    env = cli_env(tmp_path, FAL_KEY=TEST_KEY, FAL_KONTEXT_BASE_URL="http://fal.example.com")
    done = run_cli(["edit", "--prompt", "p", picture, "--quiet"], env)
    assert done.returncode == EXIT_AUTH and "plain http" in done.stderr
    assert TEST_KEY not in done.stderr
