"""The lease keeper: renews a worker's leases from a thread of its own, and watches its event
loop.

An async handler that blocks the event loop (a CPU-bound loop, a blocking call) would stop
any renewal made by the loop itself: its lease would expire, another worker would start the
job beside it, and the job would end failed as a poison job. The keeper renews on its own
connection, so leases stay held for as long as the process lives, whatever runs in the loop;
and it says when the loop stalls, so the cause is found.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from jobmaster.errors import describe
from jobmaster.store import Lease
from jobmaster.worker.loops import RETRY_DELAYS

RenewFn = Callable[[str, Sequence[Lease], int], tuple[list[Lease], list[Lease]]]
"""(queue, leases, lease ms) -> (leases no longer held, leases whose cancellation was asked)."""

TICK = 0.25
"""Seconds between the keeper's checks of the event loop."""
LOOP_STALL_WARNING = 1.0
"""Seconds the event loop may go without running a callback before a warning is logged."""


class LeaseKeeper:
    """Renews leases every ``interval`` seconds from a daemon thread.

    Args:
        renew: the renewal call (run in the keeper's thread).
        leases: the leases to keep, by queue (called in the keeper's thread: it must only
            read the worker's state, in operations that are atomic under the GIL).
        on_renewed: called in the event loop with (queue, lost leases, cancel requests).
        running: the ids of the jobs running now, named in stall warnings.
        interval: seconds between renewals.
        lease_ms: the lease length given at each renewal.
        loop: the worker's event loop.
        log: the worker's logger.
        stall_warning: seconds of a stalled loop before a warning.
        close: called once the keeper stopped (to close its connection).
    """

    def __init__(
        self,
        *,
        renew: RenewFn,
        leases: Callable[[], dict[str, list[Lease]]],
        on_renewed: Callable[[str, list[Lease], list[Lease]], None],
        running: Callable[[], list[str]],
        interval: float,
        lease_ms: int,
        loop: asyncio.AbstractEventLoop,
        log: Any,
        stall_warning: float = LOOP_STALL_WARNING,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._renew = renew
        self._leases = leases
        self._on_renewed = on_renewed
        self._running = running
        self._interval = interval
        self._lease_ms = lease_ms
        self._loop = loop
        self._log = log
        self._stall_warning = stall_warning
        self._close = close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobmaster-leases", daemon=True)
        self._lock = threading.Lock()
        self._ping_sent: float | None = None
        self._stall_reported = False
        self.stalls = 0
        """Stalls of the event loop seen so far (each one logged)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing (the worker has nothing left to keep) and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._close is not None and not self._thread.is_alive():
            self._close()
            self._close = None

    def renew_now(self) -> None:
        """One round of renewals (the thread's own, also used by tests)."""
        for queue, leases in self._leases().items():
            if not leases:
                continue
            lost, cancel = self._renew(queue, leases, self._lease_ms)
            if lost or cancel:
                self._call_in_loop(self._on_renewed, queue, lost, cancel)

    def _run(self) -> None:
        next_renewal = time.monotonic() + self._interval
        failures = 0
        while not self._stop.wait(min(TICK, max(0.0, next_renewal - time.monotonic()))):
            self._watch_loop()
            if time.monotonic() < next_renewal:
                continue
            try:
                self.renew_now()
            except Exception as exc:  # Redis went away: try again soon, within the lease
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                self._log.warning(
                    "lease renewal failed; retrying", error=describe(exc), retry_in=delay
                )
                next_renewal = time.monotonic() + min(delay, self._interval)
            else:
                failures = 0
                next_renewal = time.monotonic() + self._interval

    def _call_in_loop(self, callback: Callable[..., None], *args: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the worker is gone
            return False
        return True

    # -- the event loop's lag ----------------------------------------------------------------

    def _watch_loop(self) -> None:
        """Send the loop a callback; warn once when the last one waits too long."""
        now = time.monotonic()
        with self._lock:
            sent = self._ping_sent
            if sent is None:
                self._ping_sent = now
            elif now - sent >= self._stall_warning and not self._stall_reported:
                self._stall_reported = True
                self.stalls += 1
            else:
                return
        if sent is None:
            self._call_in_loop(self._pong, now)
            return
        self._log.warning(
            "the event loop is blocked: an async handler runs blocking code (run it in a sync "
            "handler or executor='process'); leases are still renewed",
            blocked_for=round(now - sent, 1),
            running=self._running(),
        )

    def _pong(self, sent: float) -> None:
        """Runs in the event loop: it is responsive again."""
        with self._lock:
            if self._ping_sent != sent:
                return
            reported, self._ping_sent, self._stall_reported = self._stall_reported, None, False
        if reported:
            self._log.warning(
                "the event loop is responsive again", blocked_for=round(time.monotonic() - sent, 1)
            )
