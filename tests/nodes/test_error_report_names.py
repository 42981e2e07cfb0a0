"""ComfyUI's error report names an exception by `type(ex).__module__` + `__qualname__`
(execution.py `full_type_name`) and imports a pack by its folder path, so without care the
report reads `/.../custom_nodes/fal-kontext.client.errors.ContentPolicyError`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]

# What ComfyUI's nodes.py `load_custom_node` does for a pack folder (then it reads the node
# mappings, which imports every module of the pack), and the name its execution.py reports for
# an exception a node raised.
LOAD_LIKE_COMFYUI = """
import importlib, importlib.util, json, sys
module_path = sys.argv[1]
sys_module_name = module_path.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(sys_module_name, module_path + "/__init__.py")
module = importlib.util.module_from_spec(spec)
sys.modules[sys_module_name] = module
spec.loader.exec_module(module)
module.NODE_CLASS_MAPPINGS
client_errors = importlib.import_module(sys_module_name + ".client.errors")
pack_errors = importlib.import_module(sys_module_name + ".kontext.errors")

def full_type_name(klass):
    return klass.__module__ + "." + klass.__qualname__

def subclasses(klass):
    for sub in klass.__subclasses__():
        yield sub
        yield from subclasses(sub)

print(json.dumps({
    "loaded_as": client_errors.__name__,
    "content_policy": full_type_name(client_errors.ContentPolicyError),
    "invalid_input": full_type_name(pack_errors.InvalidInputError),
    "safety_filter": full_type_name(pack_errors.SafetyFilterError),
    "every_error": sorted({full_type_name(klass) for klass in
                           (client_errors.FalError, *subclasses(client_errors.FalError))}),
}))
"""


def test_error_reports_name_the_class_by_the_packs_import_name_not_its_path(tmp_path):
    # A folder name like a Manager install's, with a dot ComfyUI rewrites.
    folder = tmp_path / "custom_nodes" / "ComfyUI-fal.kontext"
    folder.parent.mkdir()
    folder.symlink_to(PACK_ROOT, target_is_directory=True)
    env = {**os.environ, "FAL_KONTEXT_RESULT_CACHE_DIR": str(tmp_path / "cache"),
           "FAL_KONTEXT_CONFIG": str(tmp_path / "no-config.json")}
    done = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(folder)], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    names = json.loads(done.stdout.strip().splitlines()[-1])
    assert "custom_nodes" in names["loaded_as"], "the pack was loaded by path, as ComfyUI does"
    assert names["content_policy"] == "fal_kontext.client.errors.ContentPolicyError"
    assert names["invalid_input"] == "fal_kontext.kontext.errors.InvalidInputError"
    assert names["safety_filter"].startswith("fal_kontext.") and \
        names["safety_filter"].endswith(".SafetyFilterError")
    assert len(names["every_error"]) > 20
    outside = [name for name in names["every_error"] if not name.startswith("fal_kontext.")]
    assert not outside, outside


def test_the_names_are_the_ones_the_pack_imports_by():
    from fal_kontext.client import errors as client_errors
    from fal_kontext.kontext import errors as pack_errors

    for module in (client_errors, pack_errors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, client_errors.FalError):
                assert getattr(sys.modules[value.__module__], value.__qualname__) is value
