"""Put the example workflows' sample images where ComfyUI's Load Image finds them.

When ComfyUI loads the pack, every sample missing from ComfyUI's input folder (whatever
`--input-directory` says) is copied there from `workflows/inputs/`. Nothing is ever replaced or
deleted: a file already at that name (the user's, or ours from an earlier start) is left as it
is, so a second start changes nothing. The pack's own folder name does not matter (git clone,
registry or Manager install), since the samples are found next to this module.

The samples go to the top of the input folder, under names prefixed `kontext_`, not into a
subfolder: Load Image's list (ComfyUI 0.3.64) holds only top-level files, and frontend 1.58
flags a Load Image whose value is not in that list as a missing input before the run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "workflows" / "inputs"
SAMPLE_PREFIX = "kontext_"  # so a sample cannot be mistaken for a user's file
SAMPLE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
OPT_OUT_ENV = "FAL_KONTEXT_NO_SAMPLE_INPUTS"  # set to 1 to leave the input folder alone


def sample_files(samples_dir: Path = SAMPLES_DIR) -> list[Path]:
    """The sample images the example workflows load, sorted by name."""
    if not samples_dir.is_dir():
        return []
    return sorted(path for path in samples_dir.iterdir()
                  if path.name.startswith(SAMPLE_PREFIX)
                  and path.suffix.lower() in SAMPLE_SUFFIXES and path.is_file())


def install_sample_inputs(input_dir: Path, samples_dir: Path = SAMPLES_DIR) -> list[Path]:
    """Copy the samples missing from `input_dir`; return the files it created.

    Raises OSError when the folder cannot be created or written.
    """
    missing = [sample for sample in sample_files(samples_dir)
               if not os.path.lexists(input_dir / sample.name)]
    if not missing:
        return []
    input_dir.mkdir(parents=True, exist_ok=True)
    created = []
    for sample in missing:
        destination = input_dir / sample.name
        data = sample.read_bytes()
        try:
            # "x": create only; if something appeared there meanwhile, it is not ours to replace.
            with open(destination, "xb") as out:
                try:
                    out.write(data)
                except BaseException:
                    out.close()
                    destination.unlink(missing_ok=True)  # our own half-written file only
                    raise
        except FileExistsError:
            continue
        created.append(destination)
    return created


def install_sample_inputs_into_comfyui() -> None:
    """On pack load inside ComfyUI: add missing samples to its input folder, never fail the load."""
    if os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0"):
        return
    try:
        import folder_paths  # ComfyUI's; absent outside ComfyUI
    except ImportError:
        return
    target = "ComfyUI's input folder"
    try:
        input_dir = Path(folder_paths.get_input_directory())
        target = str(input_dir)
        created = install_sample_inputs(input_dir)
    # A read-only or odd input folder must not break the pack load: one line, then go on.
    except Exception as error:  # noqa: BLE001
        logger.warning("fal-kontext: could not add the example workflows' sample images to %s "
                       "(%s); copy workflows/inputs/kontext_*.png there to run the workflows",
                       target, error)
        return
    if created:
        logger.info("fal-kontext: added %d sample image(s) for the example workflows to %s",
                    len(created), target)
