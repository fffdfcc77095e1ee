"""The calls of an enqueue, shared by the asynchronous store and the blocking producer: the
jobs cut into runs of one band and delay, the call's KEYS and ARGV, and what its replies say."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from redis.exceptions import OutOfMemoryError

from jobmaster.errors import is_out_of_memory
from jobmaster.store.connection import GROUP, QueueKeyLists
from jobmaster.store.types import NewJob
from jobmaster.transport.resp import encode_enqueue, encode_values


class EnqueueRefused(OutOfMemoryError):
    """Redis ran out of memory during an enqueue of several script calls: each call is
    atomic (the first write of a script is refused whole, see :func:`created_flags`), and
    ``created`` says, per job, True or False as :meth:`JobCommands.enqueue
    <jobmaster.store.jobs.JobCommands.enqueue>` does, or None where its call was refused."""

    def __init__(self, message: str, created: list[bool | None]) -> None:
        super().__init__(message)
        self.created = created


def created_flags(sizes: Sequence[int], replies: Sequence[Any]) -> list[bool]:
    """The created flags of an enqueue's script calls, from their replies (``sizes``: the
    jobs of each call, 0 for a reply that is not a call's). An error reply is raised;
    when each is Redis out of memory, :class:`EnqueueRefused` says what was written.
    Redis refuses a script for lack of memory at its first write only, so a refused call
    wrote nothing, and a call that began writing finished."""
    created: list[bool | None] = []
    refused: BaseException | None = None
    for size, reply in zip(sizes, replies, strict=True):
        if isinstance(reply, BaseException):
            if not is_out_of_memory(reply):
                raise reply
            refused = refused or reply
            created += [None] * size
        elif size:
            created += (bool(c) for c in reply)
    if refused is not None:
        raise EnqueueRefused(str(refused), created)
    return created  # type: ignore[return-value]  # no None without a refusal


def enqueue_call(
    lists: QueueKeyLists, jobs: Sequence[NewJob], events_maxlen: int
) -> tuple[list[str], list[Any]]:
    """KEYS (with only the streams of the bands used) and ARGV of one enqueue call."""
    keys, runs = _runs(lists, jobs)
    argv: list[Any] = [GROUP, events_maxlen]
    for band, slot, delay_ms, run in runs:
        argv += (len(run), band, slot, delay_ms)
        for job in run:
            argv += (job.id, job.record)
    return keys, argv


def enqueue_command(
    heads: dict[tuple[str, ...], bytes],
    sha: str,
    lists: QueueKeyLists,
    jobs: Sequence[NewJob],
    events_maxlen: int,
) -> bytes:
    """The EVALSHA of :func:`enqueue_call`, encoded (``heads``: as
    :func:`jobmaster.transport.resp.encode_evalsha`'s)."""
    keys, runs = _runs(lists, jobs)
    return encode_enqueue(heads, sha, keys, _options(events_maxlen), runs)


@cache
def _options(events_maxlen: int) -> tuple[bytes, int]:
    """The first two arguments of every enqueue call, encoded, and how many."""
    return encode_values((GROUP, events_maxlen)), 2


def _runs(
    lists: QueueKeyLists, jobs: Sequence[NewJob]
) -> tuple[list[str], list[tuple[int, int, int, list[NewJob]]]]:
    """The enqueue script's KEYS, with the streams of the bands used, and the jobs cut into
    runs of one band and delay, each with the index of its band's stream among the KEYS'
    streams (1-based): (band, index, delay ms, jobs)."""
    keys = list(lists.enqueue)
    slots: dict[int, int] = {}
    runs: list[tuple[int, int, int, list[NewJob]]] = []
    for job in jobs:
        if runs and runs[-1][0] == job.band and runs[-1][2] == job.delay_ms:
            runs[-1][3].append(job)
            continue
        slot = slots.get(job.band)
        if slot is None:
            keys.append(lists.streams[job.band])
            slot = slots[job.band] = len(slots) + 1
        runs.append((job.band, slot, job.delay_ms, [job]))
    return keys, runs
