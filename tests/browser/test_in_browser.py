"""What a ComfyUI user sees, in headless Chromium, on the frontend the backend pins and on the
current one: the Templates browser, every shipped workflow loaded, the price badge following
the widgets, a run to the end, a cancelled run and a failed one, each screenshotted.

Skipped unless all of these are present (CI has none of them):
- COMFYUI_DIR: a ComfyUI checkout (COMFYUI_PYTHON: the interpreter that runs it), as tests/comfyui;
- Chromium (CHROMIUM, default /usr/bin/chromium) and node with playwright-core (PLAYWRIGHT_CORE:
  its folder, e.g. a scratch `npm install playwright-core`'s node_modules/playwright-core);
- for the current frontend: COMFYUI_FRONT_END_ROOT, the `static` folder of a
  `pip install --target DIR comfyui-frontend-package==1.58.x` (else only the pinned one runs).

Each frontend gets its own ComfyUI, started with an empty input folder, and a stand-in fal
server. Screenshots go to BROWSER_SCREENSHOTS/<frontend>/ (default: pytest's tmp folder); with
UPDATE_README_SCREENSHOT=1 the current frontend's mid-run picture replaces the README's.

    COMFYUI_DIR=/tmp/comfyui COMFYUI_PYTHON=/tmp/comfyui-venv/bin/python \\
    COMFYUI_FRONT_END_ROOT=/tmp/fe158/comfyui_frontend_package/static \\
    PLAYWRIGHT_CORE=/tmp/pw/node_modules/playwright-core \\
        python -m pytest tests/browser -v
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from comfyui_process import (
    COMFYUI_DIR,
    COMFYUI_PYTHON,
    HAVE_COMFYUI,
    PACK_ROOT,
    ComfyUI,
    link_pack,
)
from fal_kontext.kontext import flux2_models as f
from fal_kontext.nodes.price_route import price_table
from fal_kontext.standin import StandInServer

DRIVER = Path(__file__).with_name("drive_comfyui.mjs")
UI_WORKFLOWS = sorted(path.stem for path in (PACK_ROOT / "workflows").glob("*.json"))
README_SCREENSHOT = PACK_ROOT / "docs" / "screenshots" / "kontext_multi_workflow.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT_CORE = os.environ.get("PLAYWRIGHT_CORE", "").strip()
FRONT_END_ROOT = os.environ.get("COMFYUI_FRONT_END_ROOT", "").strip()
NODE = shutil.which("node")
HAVE_BROWSER = (bool(NODE) and Path(CHROMIUM).is_file()
                and (Path(PLAYWRIGHT_CORE) / "package.json").is_file())

pytestmark = [
    pytest.mark.skipif(not HAVE_COMFYUI, reason="set COMFYUI_DIR to a ComfyUI checkout"),
    pytest.mark.skipif(not HAVE_BROWSER,
                       reason="needs node, Chromium and PLAYWRIGHT_CORE (playwright-core's folder)"),
    pytest.mark.timeout(900),
]

FRONTENDS = [
    pytest.param("pinned", None, id="pinned"),  # the version the backend's requirements pin
    pytest.param("current", FRONT_END_ROOT, id="current", marks=pytest.mark.skipif(
        not FRONT_END_ROOT, reason="set COMFYUI_FRONT_END_ROOT to a newer frontend's static folder")),
]


def _badge(node_type: str, model: str, count: int) -> str:
    return f"${price_table()['nodes'][node_type][model][str(count)]:.2f}/run"


def _flux2_usd(tier: str, output: tuple[int, int], references: int) -> str:
    """The FLUX.2 badge's figure: the output plus each connected reference at the 1 MP limit."""
    text = f"{f.estimate_cost_usd(f.FLUX2_MODELS[tier], output, [(1_000_000, 1)] * references):.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)


@pytest.mark.parametrize("label, front_end_root", FRONTENDS)
def test_what_a_user_sees(label, front_end_root, tmp_path):
    out_dir = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path / "screenshots") / label
    root = Path(COMFYUI_DIR).resolve()
    pack_folder = link_pack(root / "custom_nodes")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FAL_", "PYTEST_"))}
    extra = ("--front-end-root", front_end_root) if front_end_root else ()
    with StandInServer(processing_delay=5.0) as standin:
        env.update({"FAL_KEY": "test-key-123", "FAL_KONTEXT_BASE_URL": standin.base_url,
                    "FAL_KONTEXT_CONFIG": str(tmp_path / "no-config.json"),
                    "FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path / "result-cache"),
                    "PYTHONUNBUFFERED": "1"})
        server = ComfyUI(root, COMFYUI_PYTHON, env, tmp_path / "comfyui", extra_args=extra)
        try:
            server.start()
            driver = subprocess.run(
                [NODE, str(DRIVER)], capture_output=True, text=True, timeout=600, check=False,
                env={**os.environ, "COMFY_URL": server.base + "/", "PACK_FOLDER": pack_folder,
                     "WORKFLOWS": json.dumps(UI_WORKFLOWS), "OUT_DIR": str(out_dir),
                     "CHROMIUM": CHROMIUM, "PLAYWRIGHT_CORE": PLAYWRIGHT_CORE})
            cancels = len(standin.cancels())
        finally:
            server.stop()
    assert driver.returncode == 0, driver.stderr[-4000:]
    findings = json.loads(driver.stdout.strip().splitlines()[-1])
    (out_dir / "findings.json").write_text(json.dumps(findings, indent=2))
    assert not findings.get("errors"), findings.get("errors")
    ours = [line for line in findings["http_errors"] + findings["console_errors"]
            if pack_folder in line or "fal_kontext" in line or "kontext_price_badge" in line]
    assert not ours, ours

    # Templates browser: a loaded thumbnail per workflow, the workflows' names as titles.
    thumbnails = {line.rsplit("/", 1)[-1] for line in findings["templates"]["thumbnails"]
                  if line.startswith("200 ")}
    assert thumbnails == {f"{name}.jpg".replace(" ", "%20") for name in UI_WORKFLOWS}, thumbnails
    failed = [line for line in findings["http_errors"] if "/workflow_templates/" in line]
    assert not failed, failed
    assert findings["templates"]["titles_seen"] == UI_WORKFLOWS

    # Each workflow's saved view shows every node whole (the Kontext node with its status line).
    for name, view in findings["views"].items():
        hidden = [node for node in view["nodes"] if not node["visible"]]
        assert not hidden, f"{name}: off screen in the saved view: {hidden}"

    # The price badge follows model and num_images, from the backend's table.
    assert findings["badge"] == {"prox1": _badge("FalKontextMulti", "pro", 1),
                                 "prox3": _badge("FalKontextMulti", "pro", 3),
                                 "maxx3": _badge("FalKontextMulti", "max", 3)}

    # FLUX.2's badge: the template's three references at the 1 MP limit, then max at 1920x1088.
    auto = (f.AUTO_TARGET_PIXELS, 1)  # the badge prices `auto` at the estimate, 1 MP
    assert findings["flux2_badge"] == {
        "loaded": f"~{_flux2_usd('pro', auto, 3)}/run · out auto ≈1 MP + 3 refs ≤1 MP",
        "max_custom": f"~{_flux2_usd('max', (1920, 1088), 3)}/run · out 1.99 MP + 3 refs ≤1 MP"}

    # In the optional Nodes 2.0 view too, from the node's first draw, wherever that view draws
    # badges at all (1.58 does; 1.27's experimental one draws none, not even the source badge).
    if label == "current":
        assert findings.get("vue_draws_badges"), "1.58's Nodes 2.0 view was not checked"
    if findings.get("vue_draws_badges"):
        assert findings["vue_badge"] == {"prox1": _badge("FalKontextMulti", "pro", 1),
                                         "maxx3": _badge("FalKontextMulti", "max", 3)}
    if label == "current":  # and a run's last status line stays on the node there too
        vue_run = findings["vue_run"]
        assert vue_run["end"] == "execution_success" and vue_run["last_text"].startswith("Done")
        assert vue_run["shown"], vue_run

    runs = findings["runs"]
    for name in UI_WORKFLOWS:
        assert runs[f"done_{name}"]["end"] == "execution_success", runs[f"done_{name}"]
        assert runs[f"done_{name}"]["texts"], "the node showed no status while it ran"
    for run in runs.values():  # the last status line stays in view after the run, one way or other
        shown = run["shown_after"]
        assert run["texts"][-1] in (shown["frontend_widget"], shown["pack_line"]), run
        assert not (shown["frontend_widget"] and shown["pack_line"]), "shown twice"
    assert runs["cancelled"]["end"] == "execution_interrupted", runs["cancelled"]
    assert cancels >= 1, "the cancelled run did not cancel the fal job"
    assert runs["failed"]["end"] == "execution_error", runs["failed"]
    for shot in ["templates_browser", "mid_run", "cancelled", "failed"]:
        assert (out_dir / f"{shot}.png").is_file(), shot

    if label == "current" and os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        shutil.copyfile(out_dir / "mid_run.png", README_SCREENSHOT)
