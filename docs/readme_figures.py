"""Copy the measured figures into the README, so it never states a number no run produced.

    python docs/readme_figures.py        # after `python -m bench.run_all --full` and/or
                                         # `FAL_KONTEXT_RECORD_RESULTS=1 python -m pytest tests/reliability`

Sources: bench/results.md (benchmarks) and tests/reliability/RESULTS.md (reliability suites).
tests/test_readme_figures.py fails when the README and those reports disagree.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCH_REPORT = ROOT / "bench" / "results.md"
RAW_FILES_URL = "https://raw.githubusercontent.com/fal-kontext/fal-kontext/main/"
RELIABILITY_REPORT = ROOT / "tests" / "reliability" / "RESULTS.md"

BENCH_INTRO = """## Benchmarks

`python -m pip install -e ".[bench]" torch==2.13.0 && python -m bench.run_all --full` (about
6 minutes, from the repository root) measures the pack against what peer packs do: fal's official `fal_client` (uploads one
after another, `subscribe` with its 0.1 s polling) with ComfyUI-style tensor conversion and
Pillow's default PNG, both talking to the same stand-in server on this machine, runs
interleaved, medians of several rounds, ratios taken within the same round. Full report with
every table: [bench/results.md](bench/results.md)."""

BENCH_P5 = """**P5 is met with fresh references** (see its row). Eight nodes with eight different pairs
of fresh 1 MP photos now JPEG-encode 16 images in about a third of the CPU time PNG took, and the
encodes run on both cores: the pack encodes through a file descriptor, which lets Pillow release
the GIL for the whole encode (into a BytesIO it holds it for JPEG, so worker threads took turns;
last table of bench/results.md "png"). What remains above one node is mostly the requests
themselves (P5', references uploaded before), with the stand-in decoding and rendering on the
same two cores."""

BENCH_ENCODING = """**References over a real uplink.** Loopback makes bytes free; the uplink benchmark throttles
everything the clients send (one token bucket over every request body at the stand-in) to 20
and 100 Mbit/s. Photos go as JPEG 4:4:4 with flat quantisation tables and graphics, alpha and
gray images as PNG (rule and sources under "How references are sent"). **E1** is measured on a
1 MP photo with ~2.6 levels of sensor noise (a photo scaled down to 1 MP keeps about that much
at most) and holds the 40 dB floor on the heavy-noise fixture every other benchmark uses (~5
levels of independent noise per channel) and on random pixels too. There the bytes go to the
noise itself: no JPEG or WebP setting gets 40 dB on it below ~40 % of a PNG (every format
measured is in bench/results.md), while the quality scale (q94) dropped to 35.5 dB. **P3**
counts the pack's conversion, hash and colour count (~5 ms) on top of the encoder."""

BENCH_FLUX2 = """**F1: what the reference downscale saves on FLUX.2.** FLUX.2 bills the references' megapixels
like the output's, so the pack's default `max_reference_megapixels` (1 on the FLUX.2 node) is a
price decision as much as an upload one. The figures are the pack's price rule applied to the
sizes it sends (the stand-in bills by the same rule):"""

BENCH_CHAIN = """**Chained edits (C1).** A result fed into the next node is a file fal already serves: the
pack sends its URL (see "Chained edits" under How the nodes behave), where it used to encode
the result's pixels and upload them, a second JPEG generation of a photo. Step 2 of a two-step
chain over a 20 Mbit/s uplink, against the same pack with that table emptied:"""

RELIABILITY_INTRO = """## Reliability, security and spend safety

Every figure below comes from `FAL_KONTEXT_RECORD_RESULTS=1 python -m pytest tests/reliability`
(part of the normal test run; the variable only rewrites the report) over real HTTP against the
stand-in. Full report, including the exact message of every failure and all bad-input cases:
[tests/reliability/RESULTS.md](tests/reliability/RESULTS.md)."""


def markdown_section(text: str, heading: str) -> str:
    """The body of `## heading` in a generated report, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise KeyError(heading)
    return match.group(1).strip()


def reliability_section(text: str, name: str) -> str:
    """A `<!-- begin: name -->` section of RESULTS.md without its heading and <details> parts."""
    match = re.search(rf"<!-- begin: {name} -->\n(.*?)<!-- end: {name} -->", text, re.DOTALL)
    if match is None:
        raise KeyError(name)
    body = re.sub(r"<details>.*?</details>", "", match.group(1), flags=re.DOTALL)
    return re.sub(r"^## .*\n", "", body.strip()).strip()


def bold_table(section: str, title_start: str) -> str:
    """The `**title...**` paragraph and the table under it, from a report section."""
    match = re.search(rf"^\*\*{re.escape(title_start)}.*?(?=\n\n(?!\|)|\Z)", section,
                      re.MULTILINE | re.DOTALL)
    if match is None:
        raise KeyError(title_start)
    return match.group(0).strip()


def absolute_pictures(markdown: str, folder: str) -> str:
    """Pictures a report links relatively, as the URLs the README needs (the registry shows
    the README without the repository's files around it)."""
    return re.sub(r"(!\[[^\]]*\]\()(?!https?://)([^)]+)\)",
                  lambda match: f"{match.group(1)}{RAW_FILES_URL}{folder}/{match.group(2)})", markdown)


def benchmarks_block() -> str:
    report = absolute_pictures(BENCH_REPORT.read_text(), "bench")
    return "\n\n".join([
        BENCH_INTRO,
        "**Machine**\n\n" + markdown_section(report, "Machine"),
        "**Targets**\n\n" + markdown_section(report, "Targets"),
        BENCH_ENCODING,
        bold_table(markdown_section(report, "png"), "What each reference is sent as"),
        markdown_section(report, "uplink"),
        BENCH_CHAIN,
        markdown_section(report, "chain"),
        BENCH_P5,
        markdown_section(report, "concurrency"),
        "**Scaling** — overhead grows linearly with input bytes, at about a sixth of the "
        "baseline's slope (the plot, bench/scaling.png, is drawn when matplotlib is installed):",
        bold_table(markdown_section(report, "scaling"), "Straight-line fit"),
        BENCH_FLUX2,
        bold_table(markdown_section(report, "flux2_price"), "FLUX.2 price of one edit"),
    ])


def reliability_block() -> str:
    report = RELIABILITY_REPORT.read_text()
    titles = {"paid-jobs": "What was paid for survives (job ledger)",
              "fault-matrix": "Fault matrix", "spend-safety": "Spend safety",
              "key-hygiene": "Key hygiene", "load-soak": "Load and soak",
              "rss-soak": "Memory outside the Python heap",
              "result-cache": "Never paying twice: result cache and upload cache"}
    parts = [RELIABILITY_INTRO]
    parts += [f"### {title}\n\n{reliability_section(report, name)}" for name, title in titles.items()]
    return "\n\n".join(parts)


BLOCKS = {"benchmarks": benchmarks_block, "reliability": reliability_block}


def readme_block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", text, re.DOTALL)
    if match is None:
        raise KeyError(name)
    return match.group(1)


def rewrite_readme() -> None:
    text = README.read_text()
    for name, render in BLOCKS.items():
        block = f"<!-- {name}:start -->\n{render()}\n<!-- {name}:end -->"
        text = re.sub(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", lambda _, block=block: block, text,
                      flags=re.DOTALL)
    README.write_text(text)


if __name__ == "__main__":
    rewrite_readme()
