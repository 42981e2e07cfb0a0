"""ComfyUI's error report names an exception by `type(ex).__module__` + `__qualname__`
(execution.py `full_type_name`) and imports a pack by its folder path, so without care the
report reads `/.../custom_nodes/fal-kontext.client.errors.ContentPolicyError`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]

# What ComfyUI's nodes.py `load_custom_node` does for a pack folder, then the name its
# execution.py reports for an exception the node raised.
LOAD_LIKE_COMFYUI = """
import importlib, importlib.util, json, sys
module_path = sys.argv[1]
sys_module_name = module_path.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(sys_module_name, module_path + "/__init__.py")
module = importlib.util.module_from_spec(spec)
sys.modules[sys_module_name] = module
spec.loader.exec_module(module)
client_errors = importlib.import_module(sys_module_name + ".client.errors")
pack_errors = importlib.import_module(sys_module_name + ".kontext.errors")

def full_type_name(klass):
    return klass.__module__ + "." + klass.__qualname__

print(json.dumps({
    "loaded_as": client_errors.__name__,
    "content_policy": full_type_name(client_errors.ContentPolicyError),
    "invalid_input": full_type_name(pack_errors.InvalidInputError),
    "every_class": sorted({full_type_name(value).rsplit(".", 1)[0]
                           for errors in (client_errors, pack_errors)
                           for value in vars(errors).values()
                           if isinstance(value, type) and issubclass(value, BaseException)
                           and value.__qualname__ not in ("Exception", "BaseException")}),
}))
"""


def test_error_reports_name_the_class_by_the_packs_import_name_not_its_path(tmp_path):
    # A folder name like a Manager install's, with a dot ComfyUI rewrites.
    folder = tmp_path / "custom_nodes" / "ComfyUI-fal.kontext"
    folder.parent.mkdir()
    folder.symlink_to(PACK_ROOT, target_is_directory=True)
    done = subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI, str(folder)],
                          capture_output=True, text=True, timeout=60, check=True)
    names = json.loads(done.stdout)
    assert "custom_nodes" in names["loaded_as"], "the pack was loaded by path, as ComfyUI does"
    assert names["content_policy"] == "fal_kontext.client.errors.ContentPolicyError"
    assert names["invalid_input"] == "fal_kontext.kontext.errors.InvalidInputError"
    assert names["every_class"] == ["fal_kontext.client.errors", "fal_kontext.kontext.errors"]


def test_the_names_are_the_ones_the_pack_imports_by():
    from fal_kontext.client import errors as client_errors
    from fal_kontext.kontext import errors as pack_errors

    for module in (client_errors, pack_errors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) \
                    and value.__module__.startswith("fal_kontext"):
                assert getattr(sys.modules[value.__module__], value.__qualname__) is value
