"""Validation of per-enqueue options (delay, at, priority, job id, queue), shared by
enqueue and by the operations on waiting jobs."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from jobmaster.definition import MAX_DELAY, MAX_TAGS, QUEUE_PATTERN, TAG_PATTERN
from jobmaster.errors import InvalidArguments

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,200}$")
RESERVED_ID_PREFIX = "invalid-"
"""Ids of this shape name the failed jobs recorded for undecodable stream entries
(``invalid-<entry id>``, see claim.lua); no job of one's own may take one."""
_QUEUE_RE = re.compile(QUEUE_PATTERN)
_TAG_RE = re.compile(TAG_PATTERN)


def delay_to_ms(delay: float | timedelta | None, at: datetime | None) -> int:
    if delay is not None and at is not None:
        raise InvalidArguments("give delay= or at=, not both")
    if at is not None:
        if not isinstance(at, datetime):
            raise InvalidArguments(f"at= must be a datetime, got {at!r}")
        if at.tzinfo is None:
            raise InvalidArguments(
                f"at= must be timezone-aware (e.g. datetime.now(UTC)), got naive {at}"
            )
        seconds_ahead = (at - datetime.now(UTC)).total_seconds()
        if seconds_ahead > MAX_DELAY:
            raise InvalidArguments(
                f"at= must be at most {MAX_DELAY // 86400} days ahead (about ten years), "
                f"got {at.isoformat()}"
            )
        return max(0, int(seconds_ahead * 1000))
    if delay is None:
        return 0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise InvalidArguments(f"delay= must be a number of seconds >= 0, got {delay!r}")
    if seconds > MAX_DELAY:
        raise InvalidArguments(
            f"delay= must be at most {MAX_DELAY:,} seconds (about ten years), got {delay!r}"
        )
    return int(seconds * 1000)


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidArguments(f"priority= must be an integer from 0 to 9, got {priority!r}")
    return priority


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidArguments(
            f"job_id= must be 1-200 characters of letters, digits and _.:@/+=-, got {job_id!r}"
        )
    if job_id.startswith(RESERVED_ID_PREFIX):
        raise InvalidArguments(
            f"job_id= must not start with {RESERVED_ID_PREFIX!r}: such ids are reserved for the "
            f"records of undecodable queue entries, got {job_id!r}"
        )
    return job_id


def check_queue(queue: str) -> str:
    if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
        raise InvalidArguments(
            f"queue= must be 1-64 characters of letters, digits and _.-, got {queue!r}"
        )
    return queue


def check_tags(tags: object) -> tuple[str, ...]:
    if isinstance(tags, str) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidArguments(f"tags= must be a list of strings, got {tags!r}")
    if len(tags) > MAX_TAGS:
        raise InvalidArguments(f"tags= takes at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
            raise InvalidArguments(
                f"each tag must be 1-64 characters of letters, digits and _.:/=+-, got {tag!r}"
            )
    return tuple(dict.fromkeys(sorted(tags) if isinstance(tags, set | frozenset) else tags))
