"""Which origin plays which fal role, and which origins may see the key.

fal splits its API over hosts: the queue (`queue.fal.run`), the REST API for storage tokens
(`rest.fal.ai`) and the CDN that takes uploads (`v3.fal.media`). FAL_KONTEXT_BASE_URL sends all
three roles to one origin with fal's paths, which is how tests and the offline demo work.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from .errors import ConfigurationError

BASE_URL_ENV = "FAL_KONTEXT_BASE_URL"
FAL_QUEUE_URL = "https://queue.fal.run"
FAL_REST_URL = "https://rest.fal.ai"
FAL_UPLOAD_URL = "https://v3.fal.media"


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, the unit of trust for the key."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literals keep their brackets in a URL
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport_security(url: str, role: str) -> str:
    """Refuse anything but https, except plain http to this machine; returns the origin."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"The {role} URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"The {role} URL {origin_of(url)} uses plain http on a non-local host, which would send "
            "the fal key unencrypted; use https (plain http is allowed only for 127.0.0.1/localhost)")
    return origin_of(url)


@dataclass(frozen=True)
class FalHosts:
    """The origins for each role; `api_origins` are the only ones the key is sent to."""

    queue: str = FAL_QUEUE_URL
    rest: str = FAL_REST_URL
    upload: str = FAL_UPLOAD_URL

    def __post_init__(self) -> None:
        for role in ("queue", "rest", "upload"):
            object.__setattr__(self, role, check_transport_security(getattr(self, role), role))

    @classmethod
    def single_origin(cls, base_url: str) -> "FalHosts":
        """Every role on one origin (a stand-in server, a proxy)."""
        origin = check_transport_security(base_url.rstrip("/"), BASE_URL_ENV)
        return cls(queue=origin, rest=origin, upload=origin)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "FalHosts":
        base_url = environ.get(BASE_URL_ENV, "").strip()
        return cls.single_origin(base_url) if base_url else cls()

    @property
    def api_origins(self) -> frozenset[str]:
        return frozenset({self.queue, self.rest})

    def may_receive_key(self, url: str) -> bool:
        return origin_of(url) in self.api_origins
