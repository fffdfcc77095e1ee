"""What ``--metrics-port`` costs a worker: its CPU time per no-op job with the metrics on and
off, in alternating runs (medians).

    PYTHONPATH=.:benchmarks python benchmarks/bench_metrics.py [--jobs 20000] [--runs 5]

Each run enqueues ``--jobs`` no-op jobs and empties the queue with one burst worker process
(:mod:`bench_app`, ``BENCH_METRICS=1`` for the metrics), which reports the CPU time it spent
(``time.process_time()`` around ``worker.run()``). A private redis-server is started.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from bench_core import enqueue_bulk, process, run_async  # noqa: E402

from jobmaster.embedded import EmbeddedRedis  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with EmbeddedRedis() as server:
        for run in range(args.runs):
            for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
                namespace = f"metrics{run}{mode}"
                run_async(lambda ns=namespace: enqueue_bulk(server.url, ns, args.jobs))
                os.environ["BENCH_METRICS"] = "1" if mode == "on" else "0"
                figures = process(server.url, namespace, args.jobs)
                cpu[mode].append(figures["worker_cpu_us_per_job"])
                figure = cpu[mode][-1]
                print(f"run {run + 1} metrics {mode}: {figure:.2f} us CPU per job", flush=True)
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(f"median CPU per job: off {off:.2f} us, on {on:.2f} us: {100 * (on / off - 1):+.1f}%")


if __name__ == "__main__":
    main()
