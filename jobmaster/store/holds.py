"""Why a queued job waits off its stream: the claim held it back on its limit key's wait
list (``limit:wait:<L>``) or on the queue's ``resource_wait`` list. Its status says nothing
of it (the claim does not write it), so readers look the job up in those lists: only for
queued jobs with a line in the queue's ``limits`` hash, and only in the lists that line
makes possible. Nothing here is on the path of a claim or an enqueue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobmaster.keys import QueueKeys
from jobmaster.models import HeldBack

SEARCHED = 1000
"""Ids looked at from each end of a wait list: a job held deeper in a longer list reads as
not held back (the answer is for display; the lookup must never block Redis for long)."""


def hold_lists(k: QueueKeys, line: bytes | None) -> list[tuple[HeldBack, str]]:
    """The lists a job with this ``limits`` line may be held on (why, list key), the limit
    key's wait list first. None for a job without controls."""
    if not line:
        return []
    fields = bytes(line).decode(errors="replace").split("\t")
    lists: list[tuple[HeldBack, str]] = []
    if len(fields) > 2 and fields[2]:
        lists.append(("limit", k.limit_wait(fields[2])))
    if len(fields) > 6 and fields[6]:
        lists.append(("resources", k.resource_wait))
    return lists


async def held_back(
    redis: Any, k: QueueKeys, jobs: Sequence[tuple[str, bytes | None]]
) -> dict[str, HeldBack]:
    """Which of these queued jobs (id, its ``limits`` line) are held back, and why: two
    pipelined ``LPOS`` per list a job may be on (among the ``SEARCHED`` oldest and newest
    ids), none for jobs without a line."""
    lookups = [(job_id, why, key) for job_id, line in jobs for why, key in hold_lists(k, line)]
    if not lookups:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _, key in lookups:  # bounded: a wait list may hold millions
            pipe.lpos(key, job_id, rank=1, maxlen=SEARCHED)
            pipe.lpos(key, job_id, rank=-1, maxlen=SEARCHED)
        found = await pipe.execute()
    out: dict[str, HeldBack] = {}
    for n, (job_id, why, _) in enumerate(lookups):
        if found[2 * n] is not None or found[2 * n + 1] is not None:
            out.setdefault(job_id, why)
    return out


async def held_back_of_page(
    redis: Any, k: QueueKeys, job_ids: Sequence[str]
) -> dict[str, HeldBack]:
    """As :func:`held_back` for a page of queued jobs: their lines in one ``HMGET`` (all
    empty, and nothing more is read, when the queue never had a job with controls)."""
    if not job_ids:
        return {}
    lines: Any = await redis.hmget(k.limits, list(job_ids))
    return await held_back(redis, k, list(zip(job_ids, lines, strict=True)))
