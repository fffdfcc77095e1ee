"""The multiplexed connection of the hot path: replies in order, errors, loss, timeouts."""

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from jobmaster import Registry
from jobmaster.embedded import EmbeddedRedis
from jobmaster.keys import Keys
from jobmaster.store.connection import QueueKeyLists
from jobmaster.store.enqueueing import enqueue_call, enqueue_command
from jobmaster.store.types import Completion, NewJob
from jobmaster.transport.address import supports
from jobmaster.transport.blocking import BlockingConnection, can_spin
from jobmaster.transport.multiplexed import MultiplexedConnection
from jobmaster.transport.resp import encode_command, encode_completions, encode_evalsha


@pytest.fixture
def own_server() -> Iterator[EmbeddedRedis]:
    """A redis-server this test may kill, stop and restart."""
    with EmbeddedRedis() as server:
        yield server


def test_encode_command_is_resp() -> None:
    assert encode_command(["SET", "k", b"v\r\n", 7, 1.5]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n7\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(TypeError, match="cannot send NoneType"):
        encode_command(["SET", "k", None])


def test_supports_plain_tcp_urls_only() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("redis://:secret@localhost/3")
    assert not supports("rediss://127.0.0.1:6379/0")
    assert not supports("unix:///tmp/redis.sock")
    assert not supports("redis://127.0.0.1:6379/0?socket_timeout=3")


async def test_concurrent_callers_each_get_their_own_reply(redis_url: str) -> None:
    conn = MultiplexedConnection(redis_url)
    try:
        replies = await asyncio.gather(*(conn.execute("ECHO", f"m{i}") for i in range(2000)))
        assert replies == [f"m{i}".encode() for i in range(2000)]
        # an error reply fails only its own call
        results = await asyncio.gather(
            conn.execute("ECHO", "a"),
            conn.execute("NOSUCHCOMMAND"),
            conn.execute("ECHO", "b"),
            return_exceptions=True,
        )
        assert (results[0], results[2]) == (b"a", b"b")
        assert isinstance(results[1], ResponseError)
        assert "unknown command" in str(results[1])
    finally:
        await conn.close()


async def test_scripts_are_loaded_when_redis_does_not_know_them(redis_url: str) -> None:
    conn = MultiplexedConnection(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        script = "return {KEYS[1], ARGV[1]}"
        sha = client.script_load(script)
        client.script_flush()
        assert await conn.evalsha(sha, script, ["k"], ["v"]) == [b"k", b"v"]
        assert await conn.evalsha(sha, script, ["k2"], [3]) == [b"k2", b"3"]
        with pytest.raises(NoScriptError):
            await conn.execute("EVALSHA", "0" * 40, 0)
    finally:
        client.close()
        await conn.close()


async def test_url_credentials_and_database_are_used(own_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(own_server.url)
    client.config_set("requirepass", "s3cret")
    client = redis.Redis.from_url(own_server.url, password="s3cret")
    client.set("where", "db0")
    url = f"redis://:s3cret@127.0.0.1:{own_server.port}/2"
    conn = MultiplexedConnection(url)
    try:
        await conn.execute("SET", "where", "db2")
        assert (client.get("where"), await conn.execute("GET", "where")) == (b"db0", b"db2")
    finally:
        await conn.close()
        client.close()
    wrong = MultiplexedConnection(f"redis://:nope@127.0.0.1:{own_server.port}/0")
    with pytest.raises(ResponseError, match=r"WRONGPASS|invalid"):
        await wrong.execute("PING")
    await wrong.close()


async def test_a_lost_server_fails_pending_calls_and_the_next_call_reconnects(
    own_server: EmbeddedRedis,
) -> None:
    conn = MultiplexedConnection(own_server.url)
    try:
        assert await conn.execute("PING") == b"PONG"
        blocked = asyncio.ensure_future(conn.execute("BLPOP", "nothing", "5"))
        await asyncio.sleep(0.2)  # the command is on its way; the server now dies
        own_server.kill()
        with pytest.raises(ConnectionError):
            await blocked
        with pytest.raises(ConnectionError, match="cannot connect"):
            await conn.execute("PING")
        own_server.start()
        assert await conn.execute("PING") == b"PONG"
    finally:
        await conn.close()


async def test_a_server_that_does_not_answer_times_out(own_server: EmbeddedRedis) -> None:
    conn = MultiplexedConnection(own_server.url, timeout=0.5)
    assert own_server.process is not None
    try:
        assert await conn.execute("PING") == b"PONG"
        os.kill(own_server.process.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(5):
                with pytest.raises(TimeoutError, match="did not answer"):
                    await conn.execute("PING")
        finally:
            os.kill(own_server.process.pid, signal.SIGCONT)
        assert await conn.execute("PING") == b"PONG"  # a fresh connection
    finally:
        await conn.close()


def test_a_server_that_does_not_answer_times_out_on_the_blocking_connection(
    own_server: EmbeddedRedis,
) -> None:
    conn = BlockingConnection(own_server.url, timeout=0.5)
    assert own_server.process is not None
    try:
        assert conn.pipeline([["PING"]]) == [b"PONG"]
        os.kill(own_server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r"did not answer in 0\.5s"):
                conn.pipeline([["PING"]])
            assert 0.4 < time.monotonic() - started < 5
        finally:
            os.kill(own_server.process.pid, signal.SIGCONT)
        assert conn.pipeline([["PING"]]) == [b"PONG"]  # a fresh connection
    finally:
        conn.close()


def test_replies_read_by_spinning_are_whole_and_in_order(redis_url: str) -> None:
    conn = BlockingConnection(redis_url, spin=0.001)
    try:
        assert conn.spin == (0.001 if can_spin() else 0.0)  # never on one core
        big = os.urandom(3 * 1024 * 1024)  # a reply of many reads
        replies = conn.pipeline([["ECHO", "a"], ["ECHO", big], ["NOSUCHCOMMAND"], ["ECHO", "b"]])
        assert replies[:2] == [b"a", big]
        assert isinstance(replies[2], ResponseError)
        assert replies[3] == b"b"
        assert [conn.pipeline([["INCR", "spun"]])[0] for _ in range(500)] == list(range(1, 501))
    finally:
        conn.close()


def test_spinning_stops_costing_cpu_when_replies_are_slower_than_the_spin(
    redis_url: str,
) -> None:
    """Replies that each take 20 ms, with a spin of 5 ms: spinning on each of 40 calls
    would burn 200 ms of CPU; after the first empty-handed spins, reads sleep."""
    conn = BlockingConnection(redis_url, spin=0.005)
    try:
        conn.pipeline([["PING"]])
        started = time.thread_time()
        for _ in range(40):
            assert conn.pipeline([["BLPOP", "nothing-here", 0.02]]) == [None]
        assert time.thread_time() - started < 0.08
    finally:
        conn.close()


def test_a_spinning_connection_still_times_out(own_server: EmbeddedRedis) -> None:
    conn = BlockingConnection(own_server.url, timeout=0.5, spin=0.002)
    assert own_server.process is not None
    try:
        assert conn.pipeline([["PING"]]) == [b"PONG"]
        os.kill(own_server.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError, match=r"did not answer in 0\.5s"):
                conn.pipeline([["PING"]])
        finally:
            os.kill(own_server.process.pid, signal.SIGCONT)
        assert conn.pipeline([["PING"]]) == [b"PONG"]
    finally:
        conn.close()


async def test_registry_producers_use_it_and_report_redis_unavailable(
    own_server: EmbeddedRedis, tmp_path: object
) -> None:
    from jobmaster import RedisUnavailable

    registry = Registry(own_server.url, environ={})

    @registry.job()
    async def noop() -> None: ...

    try:
        await noop.enqueue()
        assert registry.connection().store.connection.fast is not None
        own_server.kill()
        with pytest.raises(RedisUnavailable):
            await noop.enqueue()
        own_server.start()
        handle = await noop.enqueue()
        assert handle.created
    finally:
        await registry.aclose()


# -- the blocking producer of enqueue_sync --------------------------------------------------------


def test_enqueue_sync_from_many_threads_and_after_script_flush(redis_url: str) -> None:
    import threading

    from jobmaster import JobState

    registry = Registry(redis_url, namespace="threads", environ={})

    @registry.job()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        assert registry.blocking_producer() is not None
        handles: list[Any] = []
        lock = threading.Lock()

        def produce(n: int) -> None:
            for i in range(50):
                handle = add.enqueue_sync(n, i)
                with lock:
                    handles.append(handle)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({h.id for h in handles}) == 200
        assert all(h.created for h in handles)
        redis.Redis.from_url(redis_url).script_flush()  # Redis forgot the script: loaded again
        more = add.enqueue_many_sync([(1, 1), {"a": 2, "b": 2}])
        assert [h.created for h in more] == [True, True]
        again = add.options(job_id=handles[0].id).enqueue_sync(0, 0)
        assert not again.created
        counts = registry.run_sync(registry.count_jobs("default"))
        assert counts[JobState.QUEUED] == 202
        assert registry.run_sync(more[1].info()).arguments == {"a": 2, "b": 2}
    finally:
        registry.close()


def test_enqueue_sync_in_a_forked_child_uses_its_own_connection(redis_url: str) -> None:
    registry = Registry(redis_url, namespace="forked", environ={})

    @registry.job()
    def noop() -> None: ...

    try:
        noop.enqueue_sync()  # the parent's connection now exists
        pid = os.fork()
        if pid == 0:  # the child: enqueue twice, then leave without cleanup
            code = 0
            try:
                noop.enqueue_sync()
                noop.enqueue_sync()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        noop.enqueue_sync()  # the parent's connection is intact
        counts = registry.run_sync(registry.count_jobs("default"))
        assert sum(counts.values()) == 4
    finally:
        registry.close()


def test_enqueue_sync_reports_redis_unavailable_and_recovers(own_server: EmbeddedRedis) -> None:
    from jobmaster import RedisUnavailable

    registry = Registry(own_server.url, environ={})

    @registry.job()
    def noop() -> None: ...

    try:
        noop.enqueue_sync()
        own_server.kill()
        with pytest.raises(RedisUnavailable, match="enqueue failed"):
            noop.enqueue_sync()
        own_server.start()
        assert noop.enqueue_sync().created
    finally:
        registry.close()


def test_invalid_arguments_write_nothing_on_the_blocking_path(redis_url: str) -> None:
    from jobmaster import InvalidArguments

    registry = Registry(redis_url, namespace="invalid", environ={})

    @registry.job()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        with pytest.raises(InvalidArguments, match="call #1"):
            add.enqueue_many_sync([(1, 2), ("x", 2)])
        assert registry.run_sync(registry.known_queues()) == []
    finally:
        registry.close()


async def test_a_connection_closed_while_idle_is_replaced_without_an_error(redis_url: str) -> None:
    conn = MultiplexedConnection(redis_url)
    admin = redis.Redis.from_url(redis_url)
    try:
        await conn.execute("CLIENT", "SETNAME", "idle-victim")
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert await conn.execute("PING") == b"PONG"
        assert await conn.execute("CLIENT", "GETNAME") is None  # a new connection
    finally:
        admin.close()
        await conn.close()


def test_the_blocking_producer_replaces_a_connection_closed_while_idle(redis_url: str) -> None:
    registry = Registry(redis_url, namespace="idle", environ={})

    @registry.job()
    def noop() -> None: ...

    admin = redis.Redis.from_url(redis_url)
    try:
        noop.enqueue_sync()
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert noop.enqueue_sync().created
    finally:
        admin.close()
        registry.close()


async def test_a_large_batch_is_sent_in_overlapping_script_calls(redis_url: str) -> None:
    from jobmaster import JobState
    from jobmaster.store import ENQUEUE_CHUNK

    registry = Registry(redis_url, namespace="batches", environ={})

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    try:
        await add.enqueue(0, 0)
        redis.Redis.from_url(redis_url).script_flush()  # every call of the batch is refused
        count = 4 * ENQUEUE_CHUNK + 7
        handles = await add.enqueue_many([(i, i) for i in range(count)])
        assert all(h.created for h in handles)
        assert len({h.id for h in handles}) == count
        assert (await registry.count_jobs("default"))[JobState.QUEUED] == count + 1
        newest = await registry.list_jobs("default", JobState.QUEUED, limit=3)
        assert [j.id for j in newest] == [h.id for h in reversed(handles[-3:])]
        assert (await handles[ENQUEUE_CHUNK].info()).arguments == {
            "a": ENQUEUE_CHUNK,
            "b": ENQUEUE_CHUNK,
        }
        again = await add.options(job_id=handles[5].id).enqueue(1, 1)
        assert not again.created
    finally:
        await registry.aclose()


def test_the_encoded_enqueue_call_is_the_generic_encoding_of_its_arguments() -> None:
    lists = QueueKeyLists(Keys("ns").queue("q"))
    jobs = [
        NewJob("a" * 32, b"\x84record", 0),
        NewJob("user-id:42/x", b"\x00" * 300, 9, delay_ms=1500),
        NewJob("b" * 200, b"", 3),
        *(NewJob(f"id{band}", b"r", band, delay_ms=band * 10**9) for band in range(10)),
    ]
    sha = "f" * 40
    keys, argv = enqueue_call(lists, jobs, 10_000)
    assert enqueue_command({}, sha, lists, jobs, 10_000) == encode_evalsha({}, sha, keys, argv)


@pytest.mark.parametrize(
    "completion",
    [
        Completion("a" * 32, "worker-1/1", "succeeded", "succeeded", result=b"\xc0"),
        Completion("id:7", "w/2", "succeeded", "succeeded", result=b"\x00" * 300, result_ttl_ms=5),
        Completion("id", "w/3", "failed", "scheduled", 1500, error_type="E", error_message="é"),
    ],
    ids=["success", "success-with-ttl", "failure"],
)
def test_an_encoded_completion_is_the_generic_encoding_of_its_arguments(
    completion: Completion,
) -> None:
    body, count = encode_completions([completion])
    argv = completion.argv()
    assert count == len(argv)
    assert b"*%d\r\n%s" % (count, body) == encode_command(argv)


async def test_a_blocking_read_may_outlast_the_timeout_and_wakes_on_new_entries(
    redis_url: str, raw_redis: redis.Redis
) -> None:
    conn = MultiplexedConnection(redis_url, timeout=0.3)
    read = ["XREAD", "COUNT", 1, "BLOCK", 800, "STREAMS", "s", "$"]
    try:
        started = asyncio.get_running_loop().time()
        assert await conn.execute_blocking(0.8, *read) is None  # the block ended, empty
        assert asyncio.get_running_loop().time() - started >= 0.75
        woken = asyncio.ensure_future(conn.execute_blocking(0.8, *read))
        await asyncio.sleep(0.1)
        entry = raw_redis.xadd("s", {"id": "job"})
        [[stream, [(entry_id, fields)]]] = await asyncio.wait_for(woken, 0.6)
        assert (stream, entry_id, fields) == (b"s", entry, [b"id", b"job"])
    finally:
        await conn.close()
