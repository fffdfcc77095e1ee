"""The dashboard's command line: ``jobmaster dashboard`` (an entry point this package
registers with the ``jobmaster`` command) and ``python -m jobmaster_dashboard``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from jobmaster import Registry
from jobmaster.cli import UsageError, load_registry, say_which_redis
from jobmaster_dashboard.auth import AuthError

if TYPE_CHECKING:
    from jobmaster.cli import Commands

DASHBOARD_HELP = (
    "Serve the web dashboard (the jobmaster-dashboard package) with uvicorn. Credentials "
    "come from JOBMASTER_DASHBOARD_TOKEN, or JOBMASTER_DASHBOARD_USER and "
    "JOBMASTER_DASHBOARD_PASSWORD, unless --no-auth (a --read-only dashboard takes "
    "JOBMASTER_DASHBOARD_READ_ONLY_TOKEN, _USER and _PASSWORD instead when set)."
)


def add_command(commands: Commands) -> None:
    """Add ``dashboard`` to the ``jobmaster`` command (the ``jobmaster.commands`` entry
    point of this package)."""
    parser = commands.add_parser(
        "dashboard", help="serve the web dashboard", description=DASHBOARD_HELP
    )
    add_dashboard_arguments(parser)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0..65535), got {value}")
    return value


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``jobmaster dashboard`` (and of ``python -m jobmaster_dashboard``)."""
    parser.add_argument(
        "app",
        nargs="?",
        help="module:registry of the application: its job names make the enqueue and "
        "schedule forms work (default: the Redis of JOBMASTER_REDIS_URL, no job names)",
    )
    parser.add_argument("--app", dest="app_option", metavar="APP", help="the same, as an option")
    parser.add_argument("--redis-url", help="the Redis to show, instead of an application's")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8000, help="default: 8000")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every action")
    parser.add_argument("--root-path", default="", help="the path prefix behind a proxy")
    parser.add_argument(
        "--no-auth", action="store_true", help="serve without authentication (trusted networks)"
    )
    parser.set_defaults(run=run_dashboard)


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGINT or SIGTERM."""
    from jobmaster_dashboard.serve import build_app, serve  # uvicorn: not for --help

    if args.app and args.app_option:
        raise UsageError("give the application once: APP or --app APP")
    spec = args.app or args.app_option
    if spec and args.redis_url:
        raise UsageError("give the application (module:registry) or --redis-url, not both")
    target: Registry | str = (
        say_which_redis(load_registry(spec))
        if spec
        else args.redis_url or say_which_redis(Registry())
    )
    try:
        app = build_app(
            target,
            read_only=args.read_only,
            root_path=args.root_path,
            authenticate=not args.no_auth,
        )
    except AuthError as exc:
        raise UsageError(str(exc)) from None
    serve(app, args.host, args.port)
    return 0
