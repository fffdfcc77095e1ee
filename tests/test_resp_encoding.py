"""The Redis protocol encoders against redis-py's, and a worker on a host with a non-ASCII name."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from jobmaster import JobState, Registry
from jobmaster.keys import Keys
from jobmaster.store.connection import QueueKeyLists
from jobmaster.store.enqueueing import enqueue_call, enqueue_command
from jobmaster.store.types import Completion, NewJob, finish_values
from jobmaster.transport.resp import encode_command, encode_completions, encode_evalsha
from tests.conftest import live_worker

_PACKER = Connection()

arguments = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.text(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=8,
)
ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30)


def redis_py(command: str, *args: Any) -> bytes:
    """redis-py's encoding of a command (whose name it splits on spaces, as in CONFIG GET)."""
    return b"".join(_PACKER.pack_command(command, *args))


@given(arguments)
def test_encode_command_matches_redis_py(args: list[Any]) -> None:
    assert encode_command(["SET", *args]) == redis_py("SET", *args)


@given(st.lists(ids, max_size=3), arguments)
def test_encode_evalsha_matches_redis_py(keys: list[str], args: list[Any]) -> None:
    sha = "a" * 40
    assert encode_evalsha({}, sha, keys, args) == redis_py("EVALSHA", sha, len(keys), *keys, *args)


@given(
    st.lists(
        st.tuples(
            ids,
            ids,
            st.binary(max_size=40),
            st.sampled_from([-1, 5, 2**40]),
            st.sampled_from(["succeeded", "failed", "scheduled"]),
            st.text(max_size=40),
        ),
        max_size=8,
    )
)
def test_encode_completions_matches_redis_py(
    specs: list[tuple[str, str, bytes, int, str, str]],
) -> None:
    completions = [
        Completion(job_id, token, "x", state, result=result, result_ttl_ms=ttl, error_message=text)
        for job_id, token, result, ttl, state, text in specs
    ]
    encoded, count = encode_completions(completions)
    argv = finish_values(completions)
    assert count == len(argv)
    assert b"*%d\r\n$5\r\nFCALL\r\n%b" % (count + 1, encoded) == redis_py("FCALL", *argv)


@settings(max_examples=50)
@given(st.lists(st.tuples(ids, st.integers(0, 9), st.integers(0, 2)), min_size=1, max_size=6))
def test_enqueue_command_matches_redis_py(specs: list[tuple[str, int, int]]) -> None:
    lists = QueueKeyLists(Keys("ns").queue("q"))
    jobs = [
        NewJob(id=job_id, record=job_id.encode() * 2, band=band, delay_ms=delay)
        for job_id, band, delay in specs
    ]
    keys, argv = enqueue_call(lists, jobs, 100)
    sha = "b" * 40
    encoded = enqueue_command({}, sha, lists, jobs, 100)
    assert encoded == redis_py("EVALSHA", sha, len(keys), *keys, *argv)


async def test_a_worker_on_a_host_with_a_non_ascii_name_records_its_jobs(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "jörg-laptop")

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    handles = [await add.enqueue(i, 1) for i in range(3)]
    async with live_worker(registry):
        assert [await h.result(timeout=10) for h in handles] == [1, 2, 3]
    job = await handles[0].info()
    assert job.state is JobState.SUCCEEDED
    assert job.attempts[0].hostname == "jörg-laptop"
