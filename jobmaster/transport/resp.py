"""The Redis protocol (RESP2): the one encoder of commands, and error replies as exceptions.

Every command jobmaster writes itself (rather than through redis-py) is encoded here; lengths
count bytes (a text is sent as UTF-8). The hot path's calls have encoders of their own
(:func:`encode_enqueue`, :func:`encode_completions`) that build a job's values with one
formatting operation; tests check every encoder against redis-py's ``pack_command``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.exceptions import NoScriptError, ResponseError


class EnqueuedJob(Protocol):
    """What :func:`encode_enqueue` reads of a job (``jobmaster.store.NewJob`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def record(self) -> bytes: ...


class EndedAttempt(Protocol):
    """What :func:`encode_completions` reads of an attempt's end (``jobmaster.store.
    Completion`` is one)."""

    @property
    def job_id(self) -> str: ...

    @property
    def token(self) -> str: ...

    @property
    def next_state(self) -> str: ...

    @property
    def result(self) -> bytes: ...

    @property
    def result_ttl_ms(self) -> int: ...

    def argv(self) -> tuple[Any, ...]: ...


def encode_values(args: Sequence[Any]) -> bytes:
    """Values as the protocol's bulk strings, without the array header of a command."""
    parts: list[bytes] = []
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            value = arg
        elif kind is str:
            value = arg.encode()
        elif kind is int:
            value = b"%d" % arg
        elif kind is float:
            value = repr(arg).encode()
        elif isinstance(arg, bytes | bytearray | memoryview):
            value = bytes(arg)
        elif isinstance(arg, str):
            value = str(arg).encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            value = b"%d" % arg
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        append(b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(parts)


def encode_command(args: Sequence[Any]) -> bytes:
    """A command in the Redis protocol (RESP2): an array of bulk strings."""
    return b"*%d\r\n%b" % (len(args), encode_values(args))


def encode_evalsha(
    heads: dict[tuple[str, ...], bytes],
    sha: str,
    keys: Sequence[str],
    args: Sequence[Any],
    encoded: tuple[bytes, int] = (b"", 0),
) -> bytes:
    """``EVALSHA sha numkeys keys... args...``; the part before the arguments is encoded once
    per script and keys, and kept in ``heads``. ``encoded``: more arguments, already in the
    protocol's form (by :func:`encode_values` or the encoders below), and how many."""
    head = heads.get((sha, *keys))
    if head is None:
        head = encode_values(["EVALSHA", sha, len(keys), *keys])
        if len(heads) < 4096:
            heads[(sha, *keys)] = head
    body = encode_values(args) if args else b""
    more, count = encoded
    return b"*%d\r\n%s%s%s" % (3 + len(keys) + len(args) + count, head, body, more)


def encode_enqueue(
    heads: dict[tuple[str, ...], bytes],
    sha: str,
    keys: Sequence[str],
    leading: tuple[bytes, int],
    runs: Sequence[tuple[int, int, int, Sequence[EnqueuedJob]]],
) -> bytes:
    """The EVALSHA of an enqueue: the ``leading`` values (encoded by :func:`encode_values`,
    and how many), then per run (band, index of its
    stream among the KEYS' streams, delay ms, jobs) four values (how many jobs, band, index,
    delay) and each job's id and record. A producer's hot path: each run's four values, and
    each job's two, are encoded by one formatting operation (bands are 0-9)."""
    parts, count = [leading[0]], leading[1]
    for band, slot, delay_ms, run in runs:
        size, delay = b"%d" % len(run), b"%d" % delay_ms
        parts.append(
            b"$%d\r\n%b\r\n$1\r\n%d\r\n$%d\r\n%d\r\n$%d\r\n%b\r\n"
            % (len(size), size, band, len(str(slot)), slot, len(delay), delay)
        )
        for job in run:
            job_id, record = job.id.encode(), job.record
            parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(job_id), job_id, len(record), record))
        count += 4 + 2 * len(run)
    return encode_evalsha(heads, sha, keys, (), (b"".join(parts), count))


def encode_completions(completions: Sequence[EndedAttempt]) -> tuple[bytes, int]:
    """The values the finish script reads for these ends (``jobmaster.store.types.
    finish_values``) in the protocol's form, and how many: each success's with one formatting
    operation (the worker's hot path). Lengths count bytes: a token holds the worker's id,
    and so its host name, which may be any text."""
    parts: list[bytes] = []
    count, at, total = 0, 0, len(completions)
    while at < total:
        first = completions[at]
        if first.next_state != "succeeded":
            argv = first.argv()
            parts.append(encode_values(argv))
            count += len(argv)
            at += 1
            continue
        ttl, end = first.result_ttl_ms, at + 1
        while (
            end < total
            and completions[end].next_state == "succeeded"
            and completions[end].result_ttl_ms == ttl
        ):
            end += 1
        size, ttl_text = b"%d" % (end - at), b"%d" % ttl
        parts.append(
            b"$1\r\nS\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(size), size, len(ttl_text), ttl_text)
        )
        for completion in completions[at:end]:
            job_id, token = completion.job_id.encode(), completion.token.encode()
            result = completion.result
            parts.append(
                b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                % (len(job_id), job_id, len(token), token, len(result), result)
            )
        count += 3 + 3 * (end - at)
        at = end
    return b"".join(parts), count


def error_reply(message: str) -> ResponseError:
    """An error reply of Redis as redis-py's exception for it."""
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)
