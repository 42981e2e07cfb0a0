"""Where the key comes from, how it is cleaned, and which hosts may ever receive it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fal_kontext.client import ConfigurationError, FalClient, FalHosts, MissingKeyError, resolve_key


def test_explicit_key_wins_over_the_environment():
    assert resolve_key("explicit-key-1", {"FAL_KEY": "env-key-123"}) == "explicit-key-1"


def test_fal_key_then_id_and_secret_then_config_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"fal_key": "from-file-key"}))
    env = {"FAL_KONTEXT_CONFIG": str(config)}
    assert resolve_key(None, env) == "from-file-key"
    assert resolve_key(None, {**env, "FAL_KEY_ID": "key-id-1", "FAL_KEY_SECRET": "secret-22"}) \
        == "key-id-1:secret-22"
    assert resolve_key(None, {**env, "FAL_KEY": "env-key-123", "FAL_KEY_ID": "key-id-1",
                              "FAL_KEY_SECRET": "secret-22"}) == "env-key-123"


@pytest.mark.parametrize("raw", ['  "abc-123:def"  ', "'abc-123:def'\n", "Key abc-123:def", "\tabc-123:def "])
def test_stray_whitespace_quotes_and_scheme_are_removed(raw):
    assert resolve_key(raw, {}) == "abc-123:def"


def test_a_key_with_inner_spaces_is_refused_without_echoing_it():
    with pytest.raises(ConfigurationError) as caught:
        resolve_key("abc 123secretpart", {})
    assert "123secretpart" not in str(caught.value)


def test_missing_key_names_every_place_to_put_one(tmp_path):
    with pytest.raises(MissingKeyError) as caught:
        resolve_key(None, {"FAL_KONTEXT_CONFIG": str(tmp_path / "c.json")})
    assert "FAL_KEY" in str(caught.value) and str(tmp_path / "c.json") in str(caught.value)


def test_a_broken_config_file_says_what_it_should_look_like(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("fal_key = nope")
    with pytest.raises(ConfigurationError, match="fal_key"):
        resolve_key(None, {"FAL_KONTEXT_CONFIG": str(config)})


@pytest.mark.parametrize("url", ["http://fal.example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1"])
def test_plain_http_to_a_non_loopback_host_is_refused(url):
    with pytest.raises(ConfigurationError):
        FalHosts.single_origin(url)
    with pytest.raises(ConfigurationError):
        FalClient("some-key-123", base_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:5", "https://fal.example.com"])
def test_https_and_loopback_http_are_accepted(url):
    assert FalHosts.single_origin(url).queue


def test_default_hosts_are_fals_and_only_api_hosts_get_the_key():
    hosts = FalHosts.from_env({})
    assert hosts.queue == "https://queue.fal.run" and hosts.rest == "https://rest.fal.ai"
    assert hosts.may_receive_key("https://queue.fal.run/fal-ai/flux-pro/requests/1/status")
    assert not hosts.may_receive_key("https://v3.fal.media/files/x.png")
    assert not hosts.may_receive_key("https://queue.fal.run.evil.com/x")


def test_base_url_env_var_points_every_role_at_one_origin():
    hosts = FalHosts.from_env({"FAL_KONTEXT_BASE_URL": "http://127.0.0.1:4567/"})
    assert hosts.queue == hosts.rest == hosts.upload == "http://127.0.0.1:4567"


def test_repr_masks_the_key():
    client_repr = repr(FalClient("supersecretkey-abcdef-123", base_url="http://127.0.0.1:9"))
    assert "supersecretkey-abcdef-123" not in client_repr


def test_the_client_imports_without_torch_or_comfyui():
    code = ("import sys\n"
            "for name in ('torch', 'comfy', 'folder_paths', 'server'): sys.modules[name] = None\n"
            "import fal_kontext.client, fal_kontext.kontext.pipeline\n"
            "assert not any(m.startswith(('torch', 'comfy')) for m in sys.modules if sys.modules[m])\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
