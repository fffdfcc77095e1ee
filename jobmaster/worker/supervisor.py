"""``jobmaster worker --processes N``: N worker processes under one supervisor.

The supervisor restarts a child that dies (backing off when children die right after
they start), forwards SIGTERM and SIGINT to every child, and exits once all children have
exited after a signal (or, with ``--burst``, once each finished): 0 when each exited 0.
A child whose supervisor dies (even by SIGKILL) stops as on SIGTERM
(:mod:`jobmaster.worker.parent`); a child that recycled itself (``--max-jobs``,
``--max-memory``) is replaced at once; a child drained or stopped remotely (``drain_worker``,
``stop_worker``) is not replaced, and once every child has ended so (or after a signal) the
supervisor exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import structlog

from jobmaster.worker.recycling import RECYCLED_EXIT_CODE, RETIRED_EXIT_CODE

QUICK_DEATH = 2.0
"""A child that dies sooner than this after starting delays its restart (crash loop)."""
MAX_RESTART_DELAY = 10.0


class Supervisor:
    def __init__(
        self,
        worker_args: Sequence[str],
        processes: int,
        *,
        burst: bool = False,
        metrics_port: int | None = None,
    ) -> None:
        self.command = [sys.executable, "-m", "jobmaster.cli", *worker_args]
        self.metrics_port = metrics_port  # child i serves its metrics on metrics_port + i
        self.processes = processes
        self.burst = burst
        self.stopping = False
        self.log = structlog.get_logger("jobmaster.supervisor").bind(pid=os.getpid())
        self._children: dict[int, tuple[int, subprocess.Popen[bytes], float]] = {}
        self._restart_delay = 0.0
        self._signal = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for slot in range(self.processes):
            self._spawn(slot)
        self.log.info("supervising worker processes", processes=self.processes)
        codes: list[int] = []
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            entry = self._children.pop(pid, None)
            if entry is None:
                continue
            slot, process, started = entry
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            if code == RETIRED_EXIT_CODE:
                self.log.info("worker process drained or stopped remotely; not replaced", slot=slot)
                codes.append(0)
                continue
            if code == RECYCLED_EXIT_CODE and not self.stopping:
                self.log.info("worker process recycled; starting a new one", slot=slot)
                self._spawn(slot)
                continue
            if self.stopping or (self.burst and code == 0):
                # a child recycling itself when the signal came, or one that the signal
                # ended before it could start (nothing of it ran), stopped as it should
                clean = code == RECYCLED_EXIT_CODE or (self.stopping and code == -self._signal)
                codes.append(0 if clean else code)
                continue
            self._restart(slot, code, time.monotonic() - started)
        return 0 if all(code == 0 for code in codes) else 1

    def _spawn(self, slot: int) -> None:
        # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which
        # forwards it once (a second signal would make a child skip its grace period).
        command = [*self.command, "--supervisor-pid", str(os.getpid())]
        if self.metrics_port is not None:
            command += ["--metrics-port", str(self.metrics_port + slot)]
        process = subprocess.Popen(command, start_new_session=True)
        self._children[process.pid] = (slot, process, time.monotonic())

    def _restart(self, slot: int, code: int, lived: float) -> None:
        if lived < QUICK_DEATH:
            self._restart_delay = min(max(self._restart_delay * 2, 0.5), MAX_RESTART_DELAY)
        else:
            self._restart_delay = 0.0
        self.log.warning(
            "worker process died; restarting it",
            slot=slot,
            exit_code=code,
            restart_in=self._restart_delay,
        )
        deadline = time.monotonic() + self._restart_delay
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))
        if not self.stopping:
            self._spawn(slot)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        self._signal = signum
        for _, process, _ in self._children.values():
            if process.returncode is None:
                process.send_signal(signum)
