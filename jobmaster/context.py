"""The attempt's context, given to handlers whose first parameter is typed ``Context``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from jobmaster.codec import pack, pack_loose

if TYPE_CHECKING:
    import structlog

LineEcho = Callable[[str, str, dict[str, Any]], None]


class GroupView(Protocol):
    """``ctx.group``: the group of a member or of a callback
    (:class:`jobmaster.groups.GroupContext`)."""

    id: str
    queue: str
    index: int | None
    """The member's index in its group (0 for the first); None in the callback."""

    async def results(self) -> list[Any]:
        """The members' results in member order (None for one that did not succeed)."""
        ...


class _Discard:
    """The logger at the end of the chain: lines were kept by the capture processor."""

    def msg(self, *args: Any, **kwargs: Any) -> None:
        return None

    debug = info = warning = warn = error = critical = exception = log = msg


class Context:
    """One attempt of one job, as its handler sees it.

    Attributes:
        job_id: the job's id.
        job_name: the job definition's name.
        queue: the queue the job came from.
        attempt: this attempt's number, 1 for the first.
        log: a structlog logger; its lines are kept on this attempt's record.
        cancelled: set when the worker wants the attempt to stop (shutdown, timeout);
            sync handlers should check it in long loops.
    """

    def __init__(
        self,
        job_id: str,
        job_name: str,
        queue: str,
        attempt: int,
        echo: LineEcho | None = None,
    ) -> None:
        import structlog  # here, not above: producers import this module but make no contexts

        self.job_id = job_id
        self.job_name = job_name
        self.queue = queue
        self.attempt = attempt
        self.cancelled = threading.Event()
        self.group: GroupView | None = None
        """The job's group, when it is a member or the callback of one (its id, the
        member's ``index``, and ``await ctx.group.results()``)."""
        self._echo = echo
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._progress: bytes = b""
        self.last_activity = time.monotonic()
        self.log: structlog.BoundLogger = structlog.wrap_logger(
            _Discard(),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                self._capture,
            ],
            wrapper_class=structlog.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=False,
        )

    @property
    def attempt_id(self) -> str:
        """``<job id>:<attempt number>``, unique across every attempt of every job."""
        return f"{self.job_id}:{self.attempt}"

    def progress(self, value: float | str) -> None:
        """Report progress: a fraction between 0 and 1, or a short message."""
        if isinstance(value, bool) or not isinstance(value, float | int | str):
            raise TypeError(f"progress takes a fraction or a message, got {value!r}")
        if not isinstance(value, str) and not 0 <= value <= 1:
            raise ValueError(f"progress fraction must be between 0 and 1, got {value}")
        with self._lock:
            self._progress = pack(value)
        self.last_activity = time.monotonic()

    def heartbeat(self) -> None:
        """Tell the worker the attempt is making progress (for idle timeouts)."""
        self.last_activity = time.monotonic()

    def _capture(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        level = str(event_dict.pop("level", "info"))
        event = str(event_dict.pop("event", ""))
        fields = dict(event_dict)
        line = pack_loose([int(time.time() * 1000), level, event, fields])
        with self._lock:
            self._lines.append(line)
        self.last_activity = time.monotonic()
        if self._echo is not None:  # the worker's own log: say whose line it is
            self._echo(level, event, {**fields, "job_id": self.job_id, "attempt": self.attempt})
        from structlog import DropEvent

        raise DropEvent

    def take_output(self) -> tuple[bytes, bytes]:
        """Log lines and progress written since the last call (for the worker to store)."""
        with self._lock:
            lines, self._lines = self._lines, []
            progress, self._progress = self._progress, b""
        return b"".join(lines), progress
