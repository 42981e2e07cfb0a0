"""Draw the Templates-browser thumbnails, `workflows/<name>.jpg`, as a diagram of each workflow.

ComfyUI's frontend shows `<name>.jpg` beside each template's `<name>.json`: the card's only
picture (its title is the file name). The card shows what the workflow does, not an output:
the numbered references (the bundled samples the workflow loads, labelled by their Load Image
titles), the instruction, and a dashed placeholder where the result will be, saying so. A real
output needs a fal key; the offline stand-in's "edit" is a collage of the references, which made
the card look like the workflow makes collages.

    python docs/make_template_thumbnails.py     # rewrites every workflows/<name>.jpg

Everything is read from `workflows/api/<name>.json` (the API copy of each template) and
`workflows/inputs/`; Pillow only, deterministic for a given Pillow and font.
"""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
INPUTS = WORKFLOWS / "inputs"
SIZE = 512
REFERENCE_SOCKETS = ("images", "image_2", "image_3", "image_4", "image")
FAMILIES = {"FalKontext": "Kontext", "FalFlux2": "FLUX.2"}  # node id prefix -> the card's name
TITLE_PATTERN = re.compile(r"^image (\d+): (.+)$")  # a Load Image's title: "image 1: person"

BACKGROUND, PANEL, INK, MUTED = (30, 30, 34), (46, 46, 52), (236, 236, 236), (165, 165, 172)
ACCENT = (255, 196, 64)  # the numbers and arrows
PLACEHOLDER = (120, 120, 130)


@dataclass(frozen=True)
class Reference:
    number: int
    label: str
    picture: Path


@dataclass(frozen=True)
class Template:
    """What the card shows of one workflow."""

    references: tuple[Reference, ...]
    instruction: str
    num_images: int
    settings: str  # the family, model and choices the workflow makes: "Kontext max · 16:9 · png"

    @property
    def caption(self) -> str:
        count = len(self.references)
        inputs = f"{count} reference{'s' if count > 1 else ''} + instruction"
        results = f"{self.num_images} variants" if self.num_images > 1 else "1 edited image"
        return f"{inputs} → {results}"


def describe(workflow: dict) -> Template:
    """The references (in the order the node numbers them), instruction and settings."""
    node, family = next((node, family) for node in workflow.values()
                        for prefix, family in FAMILIES.items()
                        if node["class_type"].startswith(prefix))
    inputs = node["inputs"]
    references = []
    for socket in REFERENCE_SOCKETS:
        if socket not in inputs:
            continue
        source = workflow[inputs[socket][0]]
        title = TITLE_PATTERN.match(source["_meta"]["title"])
        if source["class_type"] != "LoadImage" or title is None:
            raise SystemExit(f"{socket} should come from a Load Image titled 'image N: what'")
        references.append(Reference(int(title[1]), title[2], INPUTS / source["inputs"]["image"]))
    settings = [f"{family} {inputs['model']}"]
    settings += [value for name, value in inputs.items()
                 if name in ("aspect_ratio", "image_size", "output_format")
                 and value not in ("auto", "jpeg")]
    return Template(tuple(references), inputs["prompt"], int(inputs.get("num_images", 1)),
                    " · ".join(settings))


def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/Library/Fonts", "C:/Windows/Fonts"):
        if (Path(folder) / name).is_file():
            return ImageFont.truetype(str(Path(folder) / name), size)
    return ImageFont.load_default(size)


def _arrow(draw: ImageDraw.ImageDraw, x: int, top: int, bottom: int) -> None:
    draw.line((x, top, x, bottom - 8), fill=ACCENT, width=4)
    draw.polygon([(x - 9, bottom - 10), (x + 9, bottom - 10), (x, bottom)], fill=ACCENT)


def _dashed_box(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], dash: int = 8) -> None:
    left, top, right, bottom = box
    for x in range(left, right, dash * 2):
        draw.line((x, top, min(x + dash, right), top), fill=PLACEHOLDER, width=2)
        draw.line((x, bottom, min(x + dash, right), bottom), fill=PLACEHOLDER, width=2)
    for y in range(top, bottom, dash * 2):
        draw.line((left, y, left, min(y + dash, bottom)), fill=PLACEHOLDER, width=2)
        draw.line((right, y, right, min(y + dash, bottom)), fill=PLACEHOLDER, width=2)


def _centred(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font, fill) -> None:
    draw.text((x - draw.textlength(text, font=font) / 2, y), text, font=font, fill=fill)


# Frontend 1.58 lays a "Node graph" badge over a card's top left corner (the top ~70 px
# of the thumbnail, seen at 1400x900), so the diagram starts below it.
TOP = 84


def _references(image: Image.Image, draw: ImageDraw.ImageDraw, template: Template) -> None:
    cell, top = 104, TOP
    gap = 40
    left = (SIZE - len(template.references) * cell - (len(template.references) - 1) * gap) // 2
    for index, reference in enumerate(template.references):
        x = left + index * (cell + gap)
        with Image.open(reference.picture) as picture:
            picture = picture.convert("RGB")
            picture.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            image.paste(picture, (x + (cell - picture.width) // 2, top + (cell - picture.height) // 2))
        draw.ellipse((x - 10, top - 10, x + 22, top + 22), fill=ACCENT)
        _centred(draw, x + 6, top - 6, str(reference.number), _font(19, bold=True), (20, 20, 20))
        _centred(draw, x + cell / 2, top + cell + 6, f"image {reference.number}: {reference.label}",
                 _font(15), INK)


def _instruction(draw: ImageDraw.ImageDraw, template: Template, top: int, bottom: int) -> None:
    draw.rounded_rectangle((24, top, SIZE - 24, bottom), radius=10, fill=PANEL)
    draw.text((38, top + 6), "instruction", font=_font(13, bold=True), fill=ACCENT)
    lines = textwrap.wrap(f"“{template.instruction}”", width=56)
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1].rstrip(" .,") + " …”"
    for row, line in enumerate(lines):
        draw.text((38, top + 24 + row * 18), line, font=_font(14), fill=INK)


def _result_placeholder(draw: ImageDraw.ImageDraw, template: Template, top: int, bottom: int) -> None:
    count = template.num_images
    width = 190 if count == 1 else 92
    gap = 12
    left = (SIZE - count * width - (count - 1) * gap) // 2
    for index in range(count):
        x = left + index * (width + gap)
        _dashed_box(draw, (x, top, x + width, bottom))
        if count > 1:
            _centred(draw, x + width / 2, (top + bottom) / 2 - 9, f"result {index + 1}", _font(14),
                     MUTED)
    if count == 1:
        _centred(draw, SIZE / 2, (top + bottom) / 2 - 20, "your result", _font(17, bold=True), MUTED)
        _centred(draw, SIZE / 2, (top + bottom) / 2 + 2, "appears here", _font(17, bold=True), MUTED)


def thumbnail(template: Template) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _references(image, draw, template)
    _arrow(draw, SIZE // 2, TOP + 128, TOP + 146)
    _instruction(draw, template, TOP + 148, TOP + 230)
    _arrow(draw, SIZE // 2, TOP + 232, TOP + 250)
    _result_placeholder(draw, template, TOP + 254, 420)
    draw.rectangle((0, 432, SIZE, SIZE), fill=(20, 20, 22))
    size = 22
    while size > 14 and draw.textlength(template.caption, font=_font(size, bold=True)) > SIZE - 32:
        size -= 1
    draw.text((16, 444), template.caption, font=_font(size, bold=True), fill=INK)
    note = f"{template.settings} · a diagram, not a result: dashed = placeholder"
    size = 14
    while size > 10 and draw.textlength(note, font=_font(size)) > SIZE - 32:
        size -= 1
    draw.text((16, 478), note, font=_font(size), fill=MUTED)
    return image


def template_names() -> list[str]:
    return sorted(path.stem for path in (WORKFLOWS / "api").glob("*.json"))


def draw_template(name: str) -> Image.Image:
    workflow = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text(encoding="utf-8"))
    return thumbnail(describe(workflow))


def main() -> None:
    for name in template_names():
        target = WORKFLOWS / f"{name}.jpg"
        draw_template(name).save(target, quality=88, optimize=True)
        print(f"{target.name}: {target.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
