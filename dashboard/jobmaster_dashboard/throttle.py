"""Slowing down password guessing: failed logins counted per client address and per user.

The first :data:`FREE_FAILURES` failures cost nothing; after that, each further attempt
must wait twice as long as the one before (1 s, 2 s, 4 s, ...) since the last failure,
up to :data:`ADDRESS_LOCKOUT` for the address and only :data:`USER_LOCKOUT` for the user,
so that guessing from one address locks that address out for long but the right user,
from another address, waits a few seconds at most. An attempt made while it must wait
is refused without looking at the credentials (and counts for nothing); a success clears
the address's and the user's failures; failures are forgotten :data:`FORGET_AFTER`
seconds after the last one. Counts live in the dashboard process (at most
:data:`MAX_TRACKED` addresses and users, the least recently failed ones forgotten first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
"""Failures allowed before attempts must wait."""
ADDRESS_LOCKOUT = 15 * 60.0
"""The longest wait for an address (seconds)."""
USER_LOCKOUT = 30.0
"""The longest wait for a user, whatever address the failures came from (seconds)."""
FORGET_AFTER = 60 * 60.0
"""Failures are forgotten this long after the last one (seconds; longer than the longest
wait, so that a locked-out address gets one guess per wait, not five free ones again)."""
MAX_TRACKED = 10_000


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Counts failed logins and says how long the next attempt must wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, address: str, user: str) -> float:
        """Seconds before an attempt from ``address`` as ``user`` is looked at (0: now)."""
        now = self.clock()
        return max(
            self._wait(f"address:{address}", ADDRESS_LOCKOUT, now),
            self._wait(f"user:{user}", USER_LOCKOUT, now),
        )

    def failed(self, address: str, user: str) -> int:
        """Count a failed attempt; the address's failures so far."""
        now = self.clock()
        counts = [self._count(key, now) for key in (f"address:{address}", f"user:{user}")]
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)
        return counts[0]

    def succeeded(self, address: str, user: str) -> None:
        """Forget the failures of the address and of the user."""
        self._failures.pop(f"address:{address}", None)
        self._failures.pop(f"user:{user}", None)

    def _wait(self, key: str, longest: float, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None or failures.count < FREE_FAILURES:
            return 0.0
        if now - failures.last >= FORGET_AFTER:
            del self._failures[key]
            return 0.0
        delay = min(2.0 ** min(failures.count - FREE_FAILURES, 30), longest)
        return max(0.0, failures.last + delay - now)

    def _count(self, key: str, now: float) -> int:
        failures = self._failures.pop(key, None)
        if failures is None or now - failures.last >= FORGET_AFTER:
            failures = _Failures(0, now)
        failures.count += 1
        failures.last = now
        self._failures[key] = failures  # the most recent failures last
        return failures.count
