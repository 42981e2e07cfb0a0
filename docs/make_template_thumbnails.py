"""Make the Templates-browser thumbnails, `workflows/<name>.jpg`, from a real run of each workflow.

ComfyUI's frontend shows `<name>.jpg` beside each template's `<name>.json` (the card's only
picture; its title is the file name). Run every `workflows/api/*.json` in a ComfyUI against the
stand-in fal server (tests/comfyui does), then:

    python docs/make_template_thumbnails.py --outputs <ComfyUI output folder>

Each thumbnail is the workflow's saved result (a 2x2 grid for a batch) over a caption: one line
on what the workflow does and "offline stand-in render", since the stand-in pastes the references
side by side instead of editing them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
SIZE = 512
CAPTION_HEIGHT = 104
DESCRIPTIONS = {  # one line each: what the workflow shows
    "Kontext - duckling on t-shirt": "2 references: the duckling onto the t-shirt",
    "Kontext - product beach scene": "3 references: bottle, beach and logo",
    "Kontext - four seed variants": "1 reference, 4 variants from one job",
    "FLUX.2 - duckling and logo tee": "FLUX.2, 3 references: duckling and logo on the tee",
}
NOTICE = "offline stand-in render (references pasted side by side)"


def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/Library/Fonts", "C:/Windows/Fonts"):
        if (Path(folder) / name).is_file():
            return ImageFont.truetype(str(Path(folder) / name), size)
    return ImageFont.load_default(size)


def saved_results(workflow: dict, outputs: Path) -> list[Path]:
    """The PNGs the workflow's SaveImage node wrote, first run first."""
    prefixes = [node["inputs"]["filename_prefix"] for node in workflow.values()
                if node["class_type"] == "SaveImage"]
    files = sorted(path for prefix in prefixes for path in outputs.glob(f"{prefix}_*.png"))
    if not files:
        raise SystemExit(f"no saved result for {prefixes} under {outputs}: run the workflow first")
    return files


def picture(files: list[Path], width: int, height: int) -> Image.Image:
    """The result (or a 2x2 grid of up to four) fitted into width x height on a dark ground."""
    canvas = Image.new("RGB", (width, height), (32, 32, 32))
    cells = 2 if len(files) > 1 else 1
    cell_w, cell_h = width // cells, height // cells
    for index, path in enumerate(files[:cells * cells]):
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((cell_w - 4, cell_h - 4), Image.Resampling.LANCZOS)
            x = (index % cells) * cell_w + (cell_w - image.width) // 2
            y = (index // cells) * cell_h + (cell_h - image.height) // 2
            canvas.paste(image, (x, y))
    return canvas


def thumbnail(name: str, files: list[Path]) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (24, 24, 24))
    image.paste(picture(files, SIZE, SIZE - CAPTION_HEIGHT), (0, 0))
    draw = ImageDraw.Draw(image)
    size = 23
    while size > 12 and draw.textlength(DESCRIPTIONS[name], font=_font(size, bold=True)) > SIZE - 32:
        size -= 1
    draw.text((16, SIZE - CAPTION_HEIGHT + 14), DESCRIPTIONS[name], font=_font(size, bold=True),
              fill=(240, 240, 240))
    draw.text((16, SIZE - CAPTION_HEIGHT + 58), NOTICE, font=_font(17), fill=(170, 170, 170))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, required=True, help="ComfyUI's output folder")
    args = parser.parse_args()
    for path in sorted((WORKFLOWS / "api").glob("*.json")):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        target = WORKFLOWS / f"{path.stem}.jpg"
        thumbnail(path.stem, saved_results(workflow, args.outputs)).save(
            target, quality=85, optimize=True)
        print(f"{target.name}: {target.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
