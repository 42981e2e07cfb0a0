"""A web extension of the pack laid out as ComfyUI serves it, beside stubs of the frontend's
`scripts/app.js` and `scripts/api.js`, run by node.js (the extensions' tests)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
NODE = shutil.which("node")


def run_extension(tmp_path: Path, extension: str, app_stub: str, api_stub: str, runner: str,
                  *arguments: str) -> dict:
    """Run `runner` (an ES module importing the extension) and return what it printed as JSON."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(app_stub)
    (tmp_path / "scripts" / "api.js").write_text(api_stub)
    extension_dir = tmp_path / "extensions" / "fal-kontext"  # where ComfyUI serves WEB_DIRECTORY
    extension_dir.mkdir(parents=True)
    shutil.copy(WEB / extension, extension_dir)
    (tmp_path / "run.mjs").write_text(runner)
    result = subprocess.run([NODE, "run.mjs", *arguments], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
