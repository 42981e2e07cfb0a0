"""The repository's promises to its users: README commands, packaging metadata."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import fal_kontext

ROOT = Path(__file__).resolve().parents[1]
# Where the README's pictures are served from (the registry and GitHub both show them).
RAW_FILES_URL = "https://raw.githubusercontent.com/fal-kontext/fal-kontext/main/"


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci_script, ".ci/run must run the README's test command, nothing weaker"
    assert "pytest" in commands[1]


def test_version_agrees_across_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == fal_kontext.__version__


def test_requirements_txt_and_pyproject_list_the_same_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert sorted(requirements) == sorted(project["dependencies"])
    assert not any(req.lower().startswith("torch") for req in requirements), "torch is ComfyUI's"


def test_comfy_registry_metadata_is_present():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["name"] == "fal-kontext"
    comfy = config["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"]
    assert config["project"]["urls"]["Repository"]
    assert (ROOT / "LICENSE").is_file()


def test_readme_lists_exactly_the_shipped_workflows():
    text = (ROOT / "README.md").read_text()
    block = text[text.index("<!-- workflows:start -->"):text.index("<!-- workflows:end -->")]
    listed = set(re.findall(r"`((?:Kontext|FLUX\.2) - [^`]+)`", block))
    shipped = {path.stem for path in (ROOT / "workflows").glob("*.json")}
    assert listed == shipped


def test_readme_pictures_resolve_outside_the_repository_too():
    # The registry package leaves docs/screenshots/ out (.comfyignore), and the registry shows
    # the README: a relative link to a screenshot would be a broken image there.
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".comfyignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert pictures, "the README shows the pack at work"
    for target in pictures:
        path = target.removeprefix(RAW_FILES_URL)
        if path == target:  # a relative link: it must not point into a folder the registry drops
            assert not any(target.startswith(folder + "/") for folder in ignored), target
        assert (ROOT / path).is_file(), f"{target} names no file of this repository"
