"""Draw the sample reference images the example workflows load (Pillow shapes only, no media).

Run `python workflows/inputs/make_samples.py` to rewrite the PNGs next to this file. The output is
deterministic: no randomness, no fonts, only flat shapes drawn at twice the size and scaled down
so edges are smooth. The pack copies the `kontext_*.png` files into ComfyUI's input folder when
ComfyUI starts (nodes/sample_inputs.py), only where they are missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SUPERSAMPLE = 2  # draw at 2x, downscale once: cheap antialiasing without extra dependencies

Box = tuple[float, float, float, float]
Painter = Callable[[ImageDraw.ImageDraw, Callable[..., list[float]]], None]


def vertical_gradient(size: tuple[int, int], top: tuple[int, int, int],
                      bottom: tuple[int, int, int], bands: int = 16) -> Image.Image:
    """A background in a few flat bands (flat areas keep the PNG small)."""
    width, height = size
    image = Image.new("RGB", size, top)
    draw = ImageDraw.Draw(image)
    for band in range(bands):
        t = band / max(bands - 1, 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom))
        draw.rectangle((0, band * height // bands, width, (band + 1) * height // bands), fill=colour)
    return image


def render(size: tuple[int, int], background: Image.Image | tuple[int, int, int],
           paint: Painter) -> Image.Image:
    """Run `paint` on a supersampled canvas; it receives the draw and a scaler for coordinates."""
    big = (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE)
    if isinstance(background, Image.Image):
        canvas = background.resize(big, Image.Resampling.NEAREST)
    else:
        canvas = Image.new("RGB", big, background)

    def s(*values: float) -> list[float]:
        return [v * SUPERSAMPLE for v in values]

    paint(ImageDraw.Draw(canvas), s)
    return canvas.resize(size, Image.Resampling.LANCZOS)


def person_in_tshirt() -> Image.Image:
    """A standing figure in a plain light-grey t-shirt, the shirt front left empty for a print."""
    skin, shirt, trousers, hair = (232, 190, 160), (214, 218, 224), (52, 70, 110), (70, 48, 36)

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.ellipse(s(96, 468, 416, 500), fill=(200, 204, 210))  # floor shadow
        d.rounded_rectangle(s(196, 330, 250, 480), radius=10 * SUPERSAMPLE, fill=trousers)
        d.rounded_rectangle(s(262, 330, 316, 480), radius=10 * SUPERSAMPLE, fill=trousers)
        d.polygon(s(170, 178, 120, 300, 150, 314, 190, 226), fill=shirt)  # sleeves and arms
        d.polygon(s(342, 178, 392, 300, 362, 314, 322, 226), fill=shirt)
        d.ellipse(s(116, 296, 150, 330), fill=skin)
        d.ellipse(s(362, 296, 396, 330), fill=skin)
        d.rounded_rectangle(s(176, 168, 336, 350), radius=28 * SUPERSAMPLE, fill=shirt)
        d.pieslice(s(224, 150, 288, 200), 0, 180, fill=skin)  # neckline
        d.rectangle(s(240, 132, 272, 172), fill=skin)  # neck
        d.ellipse(s(206, 42, 306, 150), fill=skin)
        d.chord(s(200, 34, 312, 120), 180, 360, fill=hair)
        d.ellipse(s(234, 88, 244, 98), fill=(40, 40, 40))
        d.ellipse(s(268, 88, 278, 98), fill=(40, 40, 40))
        d.arc(s(238, 100, 274, 130), 20, 160, fill=(150, 70, 70), width=3 * SUPERSAMPLE)

    return render((512, 512), vertical_gradient((512, 512), (236, 240, 246), (206, 214, 226)), paint)


def duckling() -> Image.Image:
    """A yellow duckling seen from the side, on a plain pale background."""
    yellow, wing, beak = (252, 214, 52), (238, 186, 30), (246, 134, 40)

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.ellipse(s(110, 400, 400, 430), fill=(222, 226, 216))
        d.polygon(s(216, 392, 236, 392, 230, 410, 200, 414), fill=beak)  # feet
        d.polygon(s(276, 392, 296, 392, 290, 410, 260, 414), fill=beak)
        d.ellipse(s(120, 220, 400, 400), fill=yellow)  # body
        d.polygon(s(380, 260, 440, 220, 410, 300), fill=yellow)  # tail
        d.ellipse(s(96, 96, 276, 270), fill=yellow)  # head
        d.chord(s(200, 250, 340, 350), 0, 180, fill=wing)
        d.polygon(s(100, 178, 40, 196, 100, 208), fill=beak)
        d.ellipse(s(140, 148, 164, 172), fill=(30, 30, 30))
        d.ellipse(s(146, 152, 154, 160), fill=(255, 255, 255))
        d.ellipse(s(160, 64, 196, 110), fill=yellow)  # tuft

    return render((512, 512), (244, 246, 238), paint)


def product_bottle() -> Image.Image:
    """A glass-green bottle with a blank cream label, studio-lit on grey."""
    glass, dark, cap, label = (46, 128, 96), (30, 92, 68), (186, 150, 70), (246, 238, 214)

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.ellipse(s(150, 452, 362, 488), fill=(168, 170, 176))
        d.rounded_rectangle(s(176, 190, 336, 470), radius=34 * SUPERSAMPLE, fill=glass)
        d.polygon(s(210, 200, 302, 200, 280, 130, 232, 130), fill=glass)  # shoulder
        d.rectangle(s(232, 70, 280, 134), fill=glass)
        d.rounded_rectangle(s(226, 40, 286, 82), radius=6 * SUPERSAMPLE, fill=cap)
        d.rounded_rectangle(s(184, 270, 328, 400), radius=6 * SUPERSAMPLE, fill=label)
        d.rectangle(s(318, 214, 326, 450), fill=dark)  # shade along the right edge
        d.rounded_rectangle(s(194, 212, 206, 448), radius=6 * SUPERSAMPLE, fill=(130, 196, 168))

    return render((512, 512), vertical_gradient((512, 512), (230, 231, 234), (190, 192, 198)), paint)


def beach_background() -> Image.Image:
    """A landscape of sky, sun, sea and sand: a backdrop for placing a product."""
    width, height = 512, 320

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.ellipse(s(380, 36, 444, 100), fill=(255, 236, 160))
        d.rectangle(s(0, 150, width, 210), fill=(40, 130, 180))  # sea
        for y in (166, 184, 200):
            d.line(s(40, y, 150, y), fill=(120, 190, 220), width=2 * SUPERSAMPLE)
            d.line(s(260, y + 4, 400, y + 4), fill=(120, 190, 220), width=2 * SUPERSAMPLE)
        d.polygon(s(0, 204, 120, 196, 260, 206, 400, 198, width, 204, width, height, 0, height),
                  fill=(232, 210, 160))  # sand with a soft shoreline
        d.ellipse(s(60, 250, 84, 262), fill=(214, 190, 140))
        d.ellipse(s(420, 270, 452, 286), fill=(214, 190, 140))

    sky = vertical_gradient((width, height), (120, 180, 232), (196, 226, 246))
    return render((width, height), sky, paint)


def logo() -> Image.Image:
    """A simple geometric brand mark (a wave in a ring) on white."""

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.ellipse(s(56, 56, 200, 200), fill=(22, 60, 120))
        d.ellipse(s(72, 72, 184, 184), fill=(255, 255, 255))
        d.pieslice(s(80, 80, 176, 176), 0, 180, fill=(30, 150, 200))
        d.chord(s(88, 104, 128, 144), 180, 360, fill=(30, 150, 200))
        d.chord(s(128, 112, 168, 152), 0, 180, fill=(255, 255, 255))

    return render((256, 256), (255, 255, 255), paint)


def portrait() -> Image.Image:
    """Head and shoulders of a person in front of a warm backdrop."""
    skin, hair, jacket = (224, 176, 140), (44, 32, 26), (150, 60, 50)

    def paint(d: ImageDraw.ImageDraw, s) -> None:
        d.chord(s(96, 360, 416, 620), 180, 360, fill=jacket)  # shoulders
        d.polygon(s(226, 372, 286, 372, 256, 430), fill=(240, 236, 228))  # collar
        d.rectangle(s(230, 300, 282, 372), fill=skin)
        d.ellipse(s(172, 110, 340, 330), fill=skin)
        d.chord(s(162, 86, 350, 250), 180, 360, fill=hair)
        d.ellipse(s(164, 150, 186, 230), fill=hair)
        d.ellipse(s(326, 150, 348, 230), fill=hair)
        d.ellipse(s(208, 200, 230, 216), fill=(255, 255, 255))
        d.ellipse(s(282, 200, 304, 216), fill=(255, 255, 255))
        d.ellipse(s(214, 202, 226, 214), fill=(60, 90, 60))
        d.ellipse(s(288, 202, 300, 214), fill=(60, 90, 60))
        d.line(s(204, 188, 232, 184), fill=hair, width=4 * SUPERSAMPLE)
        d.line(s(280, 184, 308, 188), fill=hair, width=4 * SUPERSAMPLE)
        d.polygon(s(256, 214, 246, 254, 264, 254), fill=(204, 154, 120))
        d.chord(s(232, 266, 282, 292), 0, 180, fill=(176, 84, 84))

    return render((512, 512), vertical_gradient((512, 512), (246, 214, 170), (226, 170, 130)), paint)


SAMPLES: dict[str, Callable[[], Image.Image]] = {
    "kontext_person_tshirt.png": person_in_tshirt,
    "kontext_duckling.png": duckling,
    "kontext_product_bottle.png": product_bottle,
    "kontext_background_beach.png": beach_background,
    "kontext_logo.png": logo,
    "kontext_portrait.png": portrait,
}


def main() -> None:
    for name, draw in SAMPLES.items():
        path = HERE / name
        draw().save(path, format="PNG", optimize=True)
        print(f"{path.name}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
