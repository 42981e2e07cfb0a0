"""The example workflows' sample images reach ComfyUI's input folder on load, and nothing else.

Real temporary folders; ComfyUI's `folder_paths` is a fake module naming the input folder.
"""
from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import pytest
from fal_kontext.nodes import sample_inputs
from fal_kontext.nodes.sample_inputs import (
    SAMPLES_DIR,
    install_sample_inputs,
    install_sample_inputs_into_comfyui,
    sample_files,
)

SAMPLE_NAMES = sorted(path.name for path in SAMPLES_DIR.glob("kontext_*.png"))


@pytest.fixture
def comfy_input(monkeypatch, tmp_path) -> Path:
    """A fake ComfyUI whose input folder (as --input-directory would set it) is empty."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_input_directory = lambda: str(input_dir)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.delenv(sample_inputs.OPT_OUT_ENV, raising=False)
    return input_dir


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(folder.iterdir())}


def test_the_samples_are_the_images_the_workflows_load():
    assert [path.name for path in sample_files()] == SAMPLE_NAMES
    assert "make_samples.py" not in SAMPLE_NAMES and len(SAMPLE_NAMES) >= 3


def test_an_empty_input_folder_gets_every_sample(comfy_input):
    install_sample_inputs_into_comfyui()
    assert sorted(p.name for p in comfy_input.iterdir()) == SAMPLE_NAMES
    for name in SAMPLE_NAMES:
        assert (comfy_input / name).read_bytes() == (SAMPLES_DIR / name).read_bytes()


def test_a_second_start_changes_nothing(comfy_input):
    install_sample_inputs_into_comfyui()
    before = snapshot(comfy_input)
    assert install_sample_inputs(comfy_input) == []
    install_sample_inputs_into_comfyui()
    assert snapshot(comfy_input) == before


def test_a_users_file_of_the_same_name_is_never_overwritten(comfy_input):
    users = comfy_input / SAMPLE_NAMES[0]
    users.write_bytes(b"the user's own picture")
    (comfy_input / "holiday.png").write_bytes(b"unrelated")
    created = install_sample_inputs(comfy_input)
    assert users.read_bytes() == b"the user's own picture"
    assert (comfy_input / "holiday.png").read_bytes() == b"unrelated"
    assert sorted(p.name for p in created) == SAMPLE_NAMES[1:]


def test_a_broken_symlink_of_that_name_is_left_alone(comfy_input):
    link = comfy_input / SAMPLE_NAMES[0]
    link.symlink_to(comfy_input / "nowhere.png")
    install_sample_inputs(comfy_input)
    assert link.is_symlink() and not link.exists()


def test_only_missing_samples_are_added(comfy_input):
    install_sample_inputs(comfy_input)
    (comfy_input / SAMPLE_NAMES[1]).unlink()
    assert [p.name for p in install_sample_inputs(comfy_input)] == [SAMPLE_NAMES[1]]


def test_a_missing_input_folder_is_created(tmp_path):
    created = install_sample_inputs(tmp_path / "not" / "yet")
    assert sorted(p.name for p in created) == SAMPLE_NAMES


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_input_folder_logs_one_line_and_does_not_raise(comfy_input, caplog):
    comfy_input.chmod(0o555)
    try:
        with caplog.at_level(logging.WARNING):
            install_sample_inputs_into_comfyui()
    finally:
        comfy_input.chmod(0o755)
    assert len(caplog.records) == 1 and "could not add" in caplog.text


def test_any_copy_failure_logs_one_line_and_does_not_raise(comfy_input, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sample_inputs, "install_sample_inputs", refuse)
    with caplog.at_level(logging.WARNING):
        install_sample_inputs_into_comfyui()
    assert len(caplog.records) == 1
    assert "could not add" in caplog.text and str(comfy_input) in caplog.text
    assert "Permission denied" in caplog.text


def test_outside_comfyui_nothing_happens(comfy_input, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # import fails as outside ComfyUI
    install_sample_inputs_into_comfyui()
    assert not any(comfy_input.iterdir()) and not caplog.records


def test_the_opt_out_leaves_the_input_folder_alone(comfy_input, monkeypatch):
    monkeypatch.setenv(sample_inputs.OPT_OUT_ENV, "1")
    install_sample_inputs_into_comfyui()
    assert not any(comfy_input.iterdir())
