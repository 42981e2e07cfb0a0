"""One version everywhere: pyproject.toml (what the Comfy Registry publishes), the changelog, the
CLI's --version and the nodes' `info`, all read from pyproject.toml by `version.py`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import fal_kontext
from fal_kontext import version as v
from fal_kontext.nodes.kontext_nodes import FalKontextEdit
from node_calls import call_node, solid

ROOT = Path(__file__).resolve().parents[1]
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CHANGELOG = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
RELEASE_HEADING = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


@pytest.fixture
def fresh_version():
    """pack_version() looked up again (it is cached for the process)."""
    v.pack_version.cache_clear()
    yield
    v.pack_version.cache_clear()


def test_the_pack_reports_the_version_in_pyproject():
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT_VERSION)
    assert v.pack_version() == fal_kontext.__version__ == PROJECT_VERSION


def test_the_cli_reports_it(tmp_path):
    answer = subprocess.run([sys.executable, "-m", "fal_kontext", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == f"fal-kontext {PROJECT_VERSION}"


@pytest.mark.anyio
async def test_the_node_info_reports_it(fal_env):
    _, _, info = await call_node(FalKontextEdit, prompt="p", image=solid((1.0, 0.0, 0.0)))
    assert json.loads(info)["pack_version"] == PROJECT_VERSION


def test_the_changelog_names_this_version_as_the_latest_release():
    releases = RELEASE_HEADING.findall(CHANGELOG)
    assert releases, "no '## [x.y.z] - yyyy-mm-dd' heading in CHANGELOG.md"
    assert releases[0][0] == PROJECT_VERSION, "pyproject.toml and CHANGELOG.md disagree"
    assert [r[0] for r in releases] == sorted((r[0] for r in releases), reverse=True,
                                              key=lambda text: tuple(map(int, text.split("."))))
    assert releases[-1][0] == "0.1.0"


def test_the_changelog_keeps_the_keep_a_changelog_shape():
    assert CHANGELOG.startswith("# Changelog\n")
    headings = re.findall(r"^(##+) (.+)$", CHANGELOG, re.MULTILINE)
    assert headings[0] == ("##", "[Unreleased]") or headings[0][1].startswith(f"[{PROJECT_VERSION}]")
    for level, title in headings:
        if level == "###":
            assert title in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, title
    for version in ["Unreleased", *(r[0] for r in RELEASE_HEADING.findall(CHANGELOG))]:
        assert re.search(rf"^\[{re.escape(version)}\]: https://", CHANGELOG, re.MULTILINE), \
            f"no link for [{version}] at the bottom"


# --- where the version comes from ------------------------------------------------------------


def test_pyproject_parsing_agrees_with_a_toml_parser():
    text = (ROOT / "pyproject.toml").read_text()
    assert v.version_in_pyproject(text) == tomllib.loads(text)["project"]["version"]


def test_only_the_project_table_counts():
    text = ('[tool.other]\nversion = "9.9.9"\n\n[[tool.list]]\nversion = "8"\n'
            '[project] # the package\nname = "x"\nversion = "1.2.3"  # released\n'
            '[tool.after]\nversion = "7"\n')
    assert v.version_in_pyproject(text) == "1.2.3"
    assert v.version_in_pyproject('[tool.x]\nversion = "1"\n') is None
    assert v.version_in_pyproject('[project]\nname = "x"\n[tool.y]\nversion = "2"\n') is None


def test_pyproject_beside_the_package_wins_over_stale_installed_metadata(monkeypatch, fresh_version):
    # An editable install keeps the version `pip install -e` saw; ComfyUI loads the folder.
    monkeypatch.setattr(v.metadata, "version", lambda name: "0.0.1")
    assert v.pack_version() == PROJECT_VERSION


def test_installed_metadata_is_used_where_no_pyproject_ships(monkeypatch, tmp_path, fresh_version):
    monkeypatch.setattr(v, "PYPROJECT", tmp_path / "pyproject.toml")  # a wheel has none
    monkeypatch.setattr(v.metadata, "version",
                        lambda name: "3.4.5" if name == "fal-kontext" else metadata.version(name))
    assert v.pack_version() == "3.4.5"


def test_nothing_to_read_gives_unknown_rather_than_failing_a_run(monkeypatch, tmp_path, fresh_version):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(v, "PYPROJECT", tmp_path / "pyproject.toml")
    monkeypatch.setattr(v.metadata, "version", not_installed)
    assert v.pack_version() == v.UNKNOWN
