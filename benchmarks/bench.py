"""The benchmark: jobmaster's own figures, then jobmaster side by side with its peers.

One command runs both parts, each on a private redis-server of its own:

1. ``bench_core.py``: jobmaster alone: enqueue (one at a time, concurrent, bulk),
   processing, Redis round trips and commands per job, latency, scaling with 1, 2 and 4
   worker processes, worker RSS and Redis memory per 100,000 queued jobs;
2. ``bench_peers.py``: jobmaster, rq, arq, saq, dramatiq, celery, huey, taskiq, bullmq,
   streaq and a bare redis-py streams loop on no-op jobs, with ratios to the best peer and to
   bare streams; latency both with an idle worker (a random idle gap before each sample) and
   back to back.

Run it with ``scripts/bench`` (which installs the peers into ``.venv-bench``)::

    scripts/bench [--quick] [--jobs N] [--runs N] [--samples N] [--idle-samples N]
                  [--idle-gap MIN,MAX] [--seed N] [--batch N] [--only a,b]
                  [--skip-core | --skip-peers] [--json PATH]

``--jobs``, ``--runs``, ``--samples`` and ``--quick`` go to both parts; ``--idle-samples``,
``--idle-gap``, ``--seed``, ``--batch`` and ``--only`` to the side-by-side one. ``--json
PATH`` writes ``{"core": ..., "peers": ...}``.

Before the parts run, jobmaster's modules and the benchmark's own are byte-compiled: pip
compiles the peers as it installs them, and jobmaster from a wheel would be too, but an
editable install of the repository (with ``PYTHONDONTWRITEBYTECODE`` set, as in CI) would
compile every module again at each worker's start, about 30 ms of it.
"""

from __future__ import annotations

import argparse
import compileall
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PARTS = {"core": BENCH_DIR / "bench_core.py", "peers": BENCH_DIR / "bench_peers.py"}
SHARED = ("jobs", "runs", "samples")
"""Flags forwarded to both parts (with ``--quick``)."""
PEERS_ONLY = ("idle_samples", "idle_gap", "seed", "batch", "only")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="jobs per phase (defaults: 20000, 10000)")
    parser.add_argument("--runs", type=int, help="runs; medians are shown (default 3)")
    parser.add_argument(
        "--samples",
        type=int,
        help="latency samples per run (1000; side by side, back to back, 500)",
    )
    parser.add_argument(
        "--idle-samples", type=int, help="latency samples after an idle gap, side by side (200)"
    )
    parser.add_argument("--idle-gap", metavar="MIN,MAX", help="idle gaps in ms (50,550)")
    parser.add_argument("--seed", type=int, help="seed of the idle gaps (0)")
    parser.add_argument("--batch", type=int, help="jobs per bulk call, side by side (1000)")
    parser.add_argument("--only", metavar="LIB[,LIB]", help="libraries side by side")
    parser.add_argument("--quick", action="store_true", help="each part's quick defaults")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-core", action="store_true", help="only the side-by-side part")
    skip.add_argument("--skip-peers", action="store_true", help="only jobmaster's own figures")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    return parser.parse_args()


def part_command(name: str, args: argparse.Namespace, output: Path | None) -> list[str]:
    command = [sys.executable, str(PARTS[name])]
    if output is not None:
        command += ["--json", str(output)]
    if args.quick:
        command.append("--quick")
    for flag in SHARED + (PEERS_ONLY if name == "peers" else ()):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    return command


def main() -> int:
    args = parse_args()
    names = [n for n in PARTS if not getattr(args, f"skip_{n}")]
    report: dict[str, Any] = {}
    for directory in (REPO_ROOT / "jobmaster", BENCH_DIR):
        if not compileall.compile_dir(directory, quiet=1):
            print(f"bench: could not byte-compile {directory}", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="jobmaster-bench-") as tmp:
        for name in names:
            output = None if args.json is None else Path(tmp) / f"{name}.json"
            code = subprocess.call(part_command(name, args, output))
            if code != 0:
                print(f"bench: the {name} part failed (exit status {code})", file=sys.stderr)
                return code
            if output is not None:
                report[name] = json.loads(output.read_text())
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results of {' and '.join(names)} written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
