"""``jobmaster worker``: run a worker process, or several under a supervisor."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from jobmaster import event_loop
from jobmaster.cli.application import load_registry, say_which_redis
from jobmaster.cli.arguments import (
    Commands,
    port_number,
    positive_int,
    queues,
    resources,
    seconds,
    size,
)


def add_parser(commands: Commands) -> None:
    worker = commands.add_parser("worker", help="run a worker process")
    worker.add_argument("app", help="module:registry of the application")
    worker.add_argument("--queues", type=queues, help="comma-separated, highest priority first")
    worker.add_argument("--concurrency", type=positive_int, default=100)
    worker.add_argument("--burst", action="store_true", help="exit when nothing is left")
    worker.add_argument("--lease", type=seconds, help="lease length in seconds")
    worker.add_argument(
        "--heartbeat", type=seconds, help="seconds between lease renewals (default lease/3)"
    )
    worker.add_argument("--grace", type=seconds, default=30.0, help="shutdown grace period")
    worker.add_argument(
        "--processes", type=positive_int, default=1, help="worker processes under a supervisor"
    )
    worker.add_argument(
        "--max-jobs",
        type=positive_int,
        help="recycle a worker process after it started N jobs (it finishes them and exits; "
        "the supervisor starts a new one)",
    )
    worker.add_argument(
        "--max-memory",
        type=size,
        metavar="SIZE",
        help="recycle a worker process once its memory (RSS) passes SIZE, e.g. 512M or 2G",
    )
    worker.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (with --processes N, "
        "child i serves on PORT+i)",
    )
    worker.add_argument(
        "--metrics-host", default="", help="the address to serve metrics on (default: all)"
    )
    worker.add_argument(
        "--resources",
        type=resources,
        metavar="NAME=AMOUNT,...",
        help="what this worker process offers jobs that declare resources=, e.g. "
        "cpu=8,gpu=2,mem=64G (default: no limit; with --processes N, each process offers "
        "them)",
    )
    # set by the supervisor in its children's command lines: its own pid
    worker.add_argument("--supervisor-pid", type=positive_int, help=argparse.SUPPRESS)
    worker.add_argument(
        "--loop",
        choices=event_loop.LOOPS,
        default="auto",
        help="event loop: uvloop where installed (auto, the default), or asyncio's own",
    )
    worker.set_defaults(run=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    # The worker runtime is imported by this command only, not by the others.
    from jobmaster.worker import Worker
    from jobmaster.worker.recycling import RECYCLED_EXIT_CODE, RETIRED_EXIT_CODE

    registry = say_which_redis(load_registry(args.app))  # fails here if it cannot be imported
    if args.processes > 1:
        from jobmaster.worker.supervisor import Supervisor

        supervisor = Supervisor(
            child_arguments(args), args.processes, burst=args.burst, metrics_port=args.metrics_port
        )
        return supervisor.run()
    if args.metrics_port is not None:
        from jobmaster.ops.metrics import WorkerMetrics

        metrics = WorkerMetrics(args.concurrency)
        registry.use(metrics)
        metrics.serve(args.metrics_port, args.metrics_host)
    worker = Worker(
        registry,
        queues=args.queues,
        concurrency=args.concurrency,
        burst=args.burst,
        lease=args.lease,
        heartbeat=args.heartbeat,
        grace=args.grace,
        supervisor=args.supervisor_pid,
        max_jobs=args.max_jobs,
        max_memory=args.max_memory,
        resources=args.resources,
    )
    event_loop.run(worker.run(), args.loop)
    # a recycled worker tells its supervisor to start a new one, a drained or remotely
    # stopped one to start none; alone, it just ends
    code = 0
    if args.supervisor_pid and worker.recycled:
        code = RECYCLED_EXIT_CODE
    elif args.supervisor_pid and worker.retired:
        code = RETIRED_EXIT_CODE
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.name.startswith("jobmaster-sync") and t.is_alive() for t in threading.enumerate()):
        # A sync handler that ignored ctx.cancelled still runs in a thread; its job was
        # handed back already, so the process ends without waiting for it.
        os._exit(code)
    return code


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The worker command line of one supervised process (the supervisor adds each one's
    ``--metrics-port``)."""
    child = ["--log-level", args.log_level, "--log-format", args.log_format, "worker", args.app]
    child += ["--concurrency", str(args.concurrency), "--grace", str(args.grace)]
    child += ["--loop", args.loop]
    if args.queues:
        child += ["--queues", ",".join(args.queues)]
    if args.lease is not None:
        child += ["--lease", str(args.lease)]
    if args.heartbeat is not None:
        child += ["--heartbeat", str(args.heartbeat)]
    if args.max_jobs is not None:
        child += ["--max-jobs", str(args.max_jobs)]
    if args.max_memory is not None:
        child += ["--max-memory", str(args.max_memory)]
    if args.metrics_host:
        child += ["--metrics-host", args.metrics_host]
    if args.resources is not None:
        child += ["--resources", args.resources]
    if args.burst:
        child.append("--burst")
    return child
