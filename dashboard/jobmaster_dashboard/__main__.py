"""``python -m jobmaster_dashboard``: the same as ``jobmaster dashboard`` (see ``--help``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jobmaster.cli import UsageError
from jobmaster.errors import JobmasterError
from jobmaster_dashboard.cli import DASHBOARD_HELP, add_dashboard_arguments, run_dashboard


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jobmaster_dashboard", description=DASHBOARD_HELP
    )
    add_dashboard_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_dashboard(args)
    except (UsageError, JobmasterError) as exc:
        raise SystemExit(f"jobmaster dashboard: {exc}") from None


if __name__ == "__main__":
    main()
