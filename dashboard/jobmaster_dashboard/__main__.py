"""``python -m jobmaster_dashboard --app module:registry``: serve the dashboard with uvicorn."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import uvicorn

from jobmaster import Registry
from jobmaster_dashboard.app import create_app
from jobmaster_dashboard.auth import AuthError


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` (like ``jobmaster worker``) and check it is a Registry."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"--app takes module:registry, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the working directory, as `python -m` users expect
    registry = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(registry, Registry):
        raise SystemExit(f"{spec} is not a jobmaster.Registry (got {type(registry).__name__})")
    return registry


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jobmaster_dashboard",
        description="Serve the jobmaster dashboard. Credentials come from "
        "JOBMASTER_DASHBOARD_TOKEN or JOBMASTER_DASHBOARD_USER and _PASSWORD.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="the application's registry, as module:attribute")
    source.add_argument("--redis-url", help="or a Redis URL (job names only, no handlers)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every action")
    parser.add_argument("--root-path", default="", help="the path prefix behind a proxy")
    parser.add_argument(
        "--no-auth", action="store_true", help="serve without authentication (trusted networks)"
    )
    args = parser.parse_args(argv)
    target: Registry | str = load_registry(args.app) if args.app else args.redis_url
    try:
        app = (
            create_app(target, auth=None, read_only=args.read_only, root_path=args.root_path)
            if args.no_auth
            else create_app(target, read_only=args.read_only, root_path=args.root_path)
        )
    except AuthError as exc:
        raise SystemExit(f"jobmaster dashboard: {exc}") from None
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=True)


if __name__ == "__main__":
    main()
