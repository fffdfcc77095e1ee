"""Log lines a worker could not write because Redis was full, counted per attempt.

When Redis refuses writes for lack of memory (maxmemory with noeviction), log lines and
progress are dropped rather than held up: an attempt's end must still be written (it keeps
the job), and buffered output would grow without bound. Each attempt that lost lines gets one
line saying how many, written once Redis has room again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import msgpack

from jobmaster.codec import pack_loose
from jobmaster.store import Output

NOTE = "log lines were dropped: Redis was full (maxmemory)"


class DroppedOutput:
    """Counts of dropped log lines by queue and attempt, and the notes that report them."""

    def __init__(self) -> None:
        self._counts: defaultdict[str, dict[tuple[str, int], int]] = defaultdict(dict)
        self.total = 0
        """Lines dropped since the worker started."""

    def __bool__(self) -> bool:
        return bool(self._counts)

    def drop(self, queue: str, outputs: Sequence[Output]) -> int:
        """Count the lines of ``outputs`` as dropped; returns how many."""
        counts = self._counts[queue]
        dropped = 0
        for out in outputs:
            if not out.lines:
                continue
            lines = _count(out.lines)
            key = (out.job_id, out.attempt)
            counts[key] = counts.get(key, 0) + lines
            dropped += lines
        if not counts:
            del self._counts[queue]
        self.total += dropped
        return dropped

    def notes(self) -> dict[str, list[Output]]:
        """One line per attempt that lost lines, by queue (to write, then :meth:`clear`)."""
        now = int(time.time() * 1000)
        return {
            queue: [
                Output(job_id, attempt, pack_loose([now, "warning", NOTE, {"dropped": n}]))
                for (job_id, attempt), n in counts.items()
            ]
            for queue, counts in self._counts.items()
        }

    def clear(self, queue: str) -> None:
        """The notes of ``queue`` were written."""
        self._counts.pop(queue, None)


def _count(lines: bytes) -> int:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(lines)
    return sum(1 for _ in unpacker)
