"""Redis instructions per job of jobmaster's hot paths, counted by callgrind.

A redis-server runs under ``valgrind --tool=callgrind`` on a free loopback port; for each
phase the counters are zeroed (``callgrind_control -z``), the phase runs, and the counters
are dumped (``callgrind_control -d``). Instruction counts do not depend on the machine's
load, so unlike the timed benchmarks they compare across runs and days. Phases, each on
a queue that already holds 1,000 jobs (so that its hashes are past Redis's small encodings):

1. ``enqueue_many``: ``--jobs`` jobs in calls of 1,000;
2. ``enqueue_sync``: ``--single`` jobs one at a time;
3. processing: a burst worker in this process empties the queue of phase 1 (claims and
   records of successes, with everything a worker does meanwhile), the first calls of its
   scripts on this server included (Redis compiles a script once);
4. processing, one job per call: a burst worker of concurrency 1 empties the queue of
   phase 2 (a claim and a record of a success per job, as an idle worker does);
5. ``cancel``: ``--single`` queued jobs cancelled one at a time.

Then the relations between jobs, each as the instructions of a related job: its enqueue,
its processing, and its share of what the ends of the jobs it waits on do for it (so that it
compares with a plain job's ``enqueue_sync`` + processing, shown as the ratio). Each kind runs
``--relations`` jobs on queues of their own, after as many were enqueued and processed
there (so that the relations' hashes too are past the small encodings):

6. ``after``, same queue: a job enqueued one at a time with ``after=[a]``, ``a`` a plain job
   of its queue (enqueued in bulk, not counted); processing counts both jobs less phase 3's
   figure for ``a``: what ``a``'s end does to unblock it is the related job's;
7. ``after``, another queue: the same with ``a`` in another queue, whose end reaches the
   job through the relay (the enqueue's message asking ``a``'s queue for news, delivered by
   the producer; the news, delivered by the worker's relayer); the worker serves both queues;
8. group member: groups of 100 members (``enqueue_group``) with a callback in their queue;
   processing counts the members and callbacks (each member carries 1/100 of its callback).

It needs valgrind (Debian: ``apt install valgrind``), which the project does not install.
Usage (from the repository root; about two minutes)::

    .venv/bin/python benchmarks/redis_instructions.py [--jobs 5000] [--single 2000]
                                                      [--relations 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from bench_app import make_registry  # noqa: E402

from jobmaster import JobHandle  # noqa: E402
from jobmaster.embedded import free_port  # noqa: E402
from jobmaster.worker import Worker  # noqa: E402

WARM_UP = 1000
"""Jobs queued before each phase: hashes and sorted sets of 512 entries or fewer are
listpacks, which Redis searches linearly; a queue in use is past that."""
GROUP_SIZE = 100
"""Members of each group of phase 8."""
RELATIONS = ("after, same queue", "after, another queue", "group member (100, callback)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=5000, help="jobs of enqueue_many and processing"
    )
    parser.add_argument(
        "--single", type=int, default=2000, help="jobs of enqueue_sync and of cancel"
    )
    parser.add_argument(
        "--relations",
        type=int,
        default=1000,
        help=f"related jobs of each kind, a multiple of {GROUP_SIZE} (0: none)",
    )
    args = parser.parse_args()
    if args.relations < 0 or args.relations % GROUP_SIZE:
        parser.error(f"--relations must be a multiple of {GROUP_SIZE}")
    with callgrind_server() as (url, counter):
        figures = _measure(url, counter, args.jobs, args.single)
        plain = figures["processing (claim + success)"]
        related = _relations(url, counter, args.relations, plain) if args.relations else {}
    print(f"Redis instructions per job (callgrind, redis-server {_redis_version()})")
    for name, value in figures.items():
        print(f"  {name:<34} {value:>9,.0f}")
    if related:
        alone = figures["enqueue_sync (one at a time)"] + plain
        print(
            f"Redis instructions per related job: enqueue + processing (a plain job: {alone:,.0f})"
        )
        for name, (enqueue, processing) in related.items():
            total = enqueue + processing
            print(
                f"  {name:<34} {total:>9,.0f} = {enqueue:,.0f} + {processing:,.0f}"
                f"  ({total / alone:.2f}x)"
            )
    return 0


@contextlib.contextmanager
def callgrind_server() -> Iterator[tuple[str, _Counter]]:
    """A redis-server under callgrind on a free port: its URL, and its counter."""
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: apt install valgrind redis-server)")
    with tempfile.TemporaryDirectory(prefix="jobmaster-callgrind-") as tmp:
        port = free_port()
        server = subprocess.Popen(
            [
                "valgrind", "--tool=callgrind", "--dump-instr=no",
                f"--callgrind-out-file={tmp}/callgrind.out",
                "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", tmp,
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"redis://127.0.0.1:{port}/0"
            _wait_for(url)
            yield url, _Counter(server.pid, Path(tmp))
        finally:
            server.terminate()
            server.wait(timeout=60)


class _Counter:
    """Instructions the server runs during a phase."""

    def __init__(self, pid: int, directory: Path) -> None:
        self.pid, self.directory, self.dumps = pid, directory, 0

    def count(self, phase: Callable[[], None]) -> int:
        subprocess.run(["callgrind_control", "-z", str(self.pid)], check=True, capture_output=True)
        phase()
        subprocess.run(["callgrind_control", "-d", str(self.pid)], check=True, capture_output=True)
        self.dumps += 1
        dump = self.directory / f"callgrind.out.{self.dumps}"
        for line in dump.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        raise RuntimeError(f"no summary line in {dump}")


def _measure(url: str, counter: _Counter, jobs: int, single: int) -> dict[str, float]:
    registry = make_registry(url, "callgrind")
    noop = registry.jobs["noop"]

    async def enqueue_many(count: int) -> None:
        async with registry:
            for first in range(0, count, 1000):
                await noop.enqueue_many([(n,) for n in range(min(1000, count - first))])

    async def process() -> None:
        worker = Worker(registry, burst=True, install_signal_handlers=False, echo_job_logs=False)
        await worker.run()
        if worker.jobs_done != jobs + WARM_UP:
            raise RuntimeError(f"the worker did {worker.jobs_done} jobs, not {jobs + WARM_UP}")

    asyncio.run(enqueue_many(WARM_UP))
    bulk = counter.count(lambda: asyncio.run(enqueue_many(jobs)))
    process_total = counter.count(lambda: asyncio.run(process()))

    single_queue = noop.options(queue="single")
    single_queue.enqueue_many_sync([(n,) for n in range(WARM_UP)])

    def one_at_a_time() -> None:
        for n in range(single):
            single_queue.enqueue_sync(n)

    one = counter.count(one_at_a_time)

    async def process_one_by_one() -> None:
        worker = Worker(
            registry,
            queues=["single"],
            concurrency=1,
            burst=True,
            install_signal_handlers=False,
            echo_job_logs=False,
        )
        await worker.run()
        if worker.jobs_done != single + WARM_UP:
            raise RuntimeError(f"the worker did {worker.jobs_done} jobs, not {single + WARM_UP}")

    alone = counter.count(lambda: asyncio.run(process_one_by_one()))

    async def cancel(handles: list[JobHandle[None]]) -> None:
        async with registry:
            for handle in handles:
                await handle.cancel()

    queued = single_queue.enqueue_many_sync([(n,) for n in range(single)])
    cancelled = counter.count(lambda: asyncio.run(cancel(queued)))
    registry.close()
    return {
        "enqueue_many (1,000 per call)": bulk / jobs,
        "enqueue_sync (one at a time)": one / single,
        "processing (claim + success)": process_total / (jobs + WARM_UP),
        "processing, one job per call": alone / (single + WARM_UP),
        "cancel (a queued job)": cancelled / single,
    }


def _relations(
    url: str, counter: _Counter, count: int, plain: float
) -> dict[str, tuple[float, float]]:
    """Phases 6 to 8: (enqueue, processing) instructions per related job of each kind;
    ``plain`` is phase 3's figure, the processing of a plain job."""
    registry = make_registry(url, "callgrind-relations")
    noop = registry.jobs["noop"]

    async def upstream_jobs(queue: str) -> list[JobHandle[None]]:
        async with registry:
            return await noop.options(queue=queue).enqueue_many([(n,) for n in range(count)])

    async def dependents(ups: list[JobHandle[None]], queue: str) -> None:
        async with registry:
            for n, up in enumerate(ups):
                await noop.options(queue=queue, after=[up]).enqueue(n)

    async def groups(queue: str) -> None:
        async with registry:
            for _ in range(count // GROUP_SIZE):
                members = [noop.options(queue=queue).call(n) for n in range(GROUP_SIZE)]
                await registry.enqueue_group(members, then=noop.options(queue=queue).call(-1))

    async def process(queues: list[str], jobs: int) -> None:
        """Run a worker on ``queues`` until it did ``jobs`` jobs (not a burst: a job whose
        news comes through the relay stays blocked, not queued, until the worker's relayer
        delivers it)."""
        worker = Worker(
            registry,
            queues=queues,
            max_jobs=jobs,
            install_signal_handlers=False,
            echo_job_logs=False,
        )
        await worker.run()
        if worker.jobs_done != jobs:
            raise RuntimeError(f"{queues}: the worker did {worker.jobs_done} jobs, not {jobs}")

    def pairs(upstream: str, queue: str) -> tuple[Callable[[], None], Callable[[], None]]:
        ups = asyncio.run(upstream_jobs(upstream))
        queues = sorted({upstream, queue})
        return (
            lambda: asyncio.run(dependents(ups, queue)),
            lambda: asyncio.run(process(queues, 2 * count)),
        )

    def grouped() -> tuple[Callable[[], None], Callable[[], None]]:
        return (
            lambda: asyncio.run(groups("grouped")),
            lambda: asyncio.run(process(["grouped"], count + count // GROUP_SIZE)),
        )

    kinds: dict[str, tuple[Callable[[], tuple[Callable[[], None], Callable[[], None]]], int]] = {
        RELATIONS[0]: (lambda: pairs("after", "after"), count),
        RELATIONS[1]: (lambda: pairs("upstream", "downstream"), count),
        RELATIONS[2]: (grouped, 0),
    }
    figures: dict[str, tuple[float, float]] = {}
    for name, (prepare, plain_jobs) in kinds.items():
        enqueue, work = prepare()  # a warm-up round, not counted
        enqueue()
        work()
        enqueue, work = prepare()
        enqueued = counter.count(enqueue)
        processed = counter.count(work) - plain * plain_jobs  # less the plain upstream jobs
        figures[name] = (enqueued / count, processed / count)
    registry.close()
    return figures


def _wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url)
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), "?")


if __name__ == "__main__":
    sys.exit(main())
