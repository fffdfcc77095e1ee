"""Decoding of the records the Lua scripts and producers write (see keys.py for fields; the
records the scripts edit are read by record_codec)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jobmaster.codec import DecodeError, load_record, pack, unpack, unpack_stream
from jobmaster.models import Attempt, AttemptOutcome, ErrorInfo, Job, JobState, JobSummary, LogLine
from jobmaster.record_codec import ATTEMPT, ATTEMPT_END, STATUS


def from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def job_record(
    name: str, arguments: bytes, priority: int, created_ms: int, tags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The immutable part of a job, written once at enqueue."""
    if tags:
        return {"n": name, "a": arguments, "p": priority, "c": created_ms, "t": list(tags)}
    return {"n": name, "a": arguments, "p": priority, "c": created_ms}


class RecordPacker:
    """``pack(job_record(name, arguments, priority, created_ms, tags))`` for the jobs of one
    definition and options, which differ only in their arguments and creation time: the
    msgpack of the rest is encoded once, and each record is that around its arguments'
    bytes (a producer's hot path)."""

    def __init__(
        self,
        name: str,
        priority: int,
        tags: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        fields = 4 + bool(tags) + bool(headers)
        self._head = bytes((0x80 + fields,)) + pack("n") + pack(name) + pack("a")
        self._priority = pack("p") + pack(priority) + pack("c")
        self._tags = pack("t") + pack(list(tags)) if tags else b""
        if headers:  # set by middleware (a trace context), on every job of the call
            self._tags += pack("h") + pack(dict(headers))

    def records(self, created_ms: int, arguments: Sequence[bytes]) -> list[bytes]:
        """The records of jobs created at ``created_ms`` with these packed arguments."""
        head, tail = self._head, self._priority + pack(created_ms) + self._tags
        records = []
        for packed in arguments:
            size = len(packed)
            if size < 0x100:  # msgpack bin 8, the common case, in one formatting operation
                records.append(b"%b\xc4%c%b%b" % (head, size, packed, tail))
            else:  # bin 16 or bin 32
                header = (
                    b"\xc5" + size.to_bytes(2, "big")
                    if size < 0x10000
                    else b"\xc6" + size.to_bytes(4, "big")
                )
                records.append(b"".join((head, header, packed, tail)))
        return records


def decode_arguments(record: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a job record; invalid stream entries keep their raw fields instead."""
    if "a" not in record:
        return {"raw": record.get("raw")}
    args = unpack(record["a"])
    if not isinstance(args, dict):
        raise DecodeError(f"job arguments must be a map, got {type(args).__name__}")
    return args


def _readable_record(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job record and its arguments for inspection: what cannot be decoded is shown as
    ``{"undecodable": "<hex>"}`` rather than hiding the job."""
    try:
        record = load_record(raw)
        if not isinstance(record, dict):
            raise DecodeError("a job record must be a map")
    except DecodeError:
        return {"n": "", "c": 0}, {"undecodable": raw[:256].hex()}
    try:
        return record, decode_arguments(record)
    except DecodeError:
        return record, {"undecodable": bytes(record.get("a", b""))[:256].hex()}


def _error(record: dict[str, Any]) -> ErrorInfo | None:
    if "x" not in record:
        return None
    return ErrorInfo(type=record["x"], message=record.get("m", ""), traceback=record.get("tb"))


def decode_log(data: bytes | None) -> tuple[list[LogLine], bool]:
    """Log lines of an attempt and whether some were dropped for the size limit."""
    if not data:
        return [], False
    lines: list[LogLine] = []
    truncated = False
    for item in unpack_stream(data):
        if item is None:
            truncated = True
            continue
        at, level, event, fields = item
        lines.append(LogLine(at=from_ms(at), level=level, event=event, fields=fields or {}))
    return lines, truncated


def decode_attempt(
    number: int,
    raw: bytes | None,
    end: bytes | None = None,
    logs: bytes | None = None,
    progress: bytes | None = None,
) -> Attempt:
    """Attempt ``number`` from its opening record and its end record (either may be missing;
    an opening record that cannot be read counts as missing: its end is still shown)."""
    at: dict[str, Any] = {}
    if raw is not None:
        try:
            at = ATTEMPT.decode(raw)
        except DecodeError:
            if end is None:
                raise
    if end is not None:
        at = {**at, **ATTEMPT_END.decode(end)}
    lines, truncated = decode_log(logs)
    return Attempt(
        number=at.get("n", number),
        worker_id=at.get("w", ""),
        hostname=at.get("h", ""),
        pid=at.get("p", 0),
        started_at=from_ms(at.get("s", 0)),
        finished_at=from_ms(at["f"]) if "f" in at else None,
        outcome=AttemptOutcome(at["o"]) if "o" in at else None,
        error=_error(at),
        logs=lines,
        logs_truncated=truncated,
        progress=unpack(progress) if progress else None,
    )


def decode_job(
    job_id: str,
    queue: str,
    record_raw: bytes,
    status_raw: bytes,
    result_raw: bytes | None,
    attempts: list[Attempt],
) -> Job:
    record, arguments = _readable_record(record_raw)
    status = STATUS.decode(status_raw)
    state = JobState(status["s"])
    return Job(
        id=job_id,
        name=record.get("n", ""),
        queue=queue,
        state=state,
        arguments=arguments,
        priority=record.get("p", 0),
        created_at=from_ms(record.get("c", 0)),
        tags=record.get("t", []),
        scheduled_for=from_ms(status["d"]) if "d" in status else None,
        finished_at=from_ms(status["f"]) if "f" in status else None,
        result=unpack(result_raw) if result_raw is not None else None,
        error=_error(status),
        attempts=attempts,
        group_id=_group_id(record),
    )


def _group_id(record: dict[str, Any]) -> str | None:
    group = record.get("g")
    return str(group[0]) if isinstance(group, list) and group else None


def decode_summary(job_id: str, queue: str, record_raw: bytes, status_raw: bytes) -> JobSummary:
    record, _ = _readable_record(record_raw)
    status = STATUS.decode(status_raw)
    return JobSummary(
        id=job_id,
        name=record.get("n", ""),
        queue=queue,
        state=JobState(status["s"]),
        priority=record.get("p", 0),
        created_at=from_ms(record.get("c", 0)),
        tags=record.get("t", []),
        attempts=status.get("a", 0),
        error=_error(status),
    )


def attempt_count(status_raw: bytes) -> int:
    return int(STATUS.decode(status_raw).get("a", 0))


def status_state(status_raw: bytes) -> JobState:
    return JobState(STATUS.decode(status_raw)["s"])


def dependency_met(entry: Sequence[Any]) -> bool:
    """Whether a dependency entry [queue, id, mode, last state, seq, kind] is met (as
    relations.lua decides)."""
    state = entry[3]
    return bool(state == "succeeded" or (entry[2] == "any" and state in _FINAL_NAMES))


_FINAL_NAMES = frozenset({"succeeded", "failed", "cancelled"})


def blocked_by(waits_raw: bytes | None) -> list[str]:
    """The ids of the dependencies a blocked job still waits on, from its waits record."""
    if not waits_raw:
        return []
    return [str(e[1]) for e in unpack(waits_raw) if not dependency_met(e)]
