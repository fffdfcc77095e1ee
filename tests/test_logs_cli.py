"""``jobmaster logs``: an attempt's log lines, followed live (``-f``) from a real worker
process while the job runs, and searched over a queue's recent jobs (``--grep``)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from jobmaster import JobState, Registry
from jobmaster.keys import Keys
from tests.conftest import ROOT, finish, run_cli, start_worker, stop_process, wait_until

APP = "apps.opsapp:registry"
KEYS = Keys().queue("ops")


@pytest.fixture
async def opsapp(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import opsapp as module

    module = importlib.reload(module)  # its Redis is the server or the cluster
    yield module.registry
    await module.registry.aclose()


async def _cli(redis_url: str, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "JOBMASTER_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobmaster.cli", *args,
        cwd=ROOT / "tests", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), 10)).decode()


async def _state(registry: Registry, job_id: str, state: JobState) -> bool:
    return (await registry.get_job(job_id)).state is state


@pytest.mark.deployments
async def test_logs_follow_shows_lines_while_the_job_runs(
    opsapp: Registry, redis_url: str, tmp_path: Path, raw_redis: redis.Redis
) -> None:
    from tests.apps.opsapp import chatty

    gate = tmp_path / "gate"
    worker = start_worker(APP, redis_url, "--queues", "ops")
    try:
        handle = await chatty.enqueue(str(gate))
        await wait_until(lambda: _state(opsapp, handle.id, JobState.ACTIVE), timeout=15)
        follower = await _cli(redis_url, "logs", handle.id, "-f")
        first = await _line(follower)
        assert "info" in first
        assert "first line" in first
        assert "step=1" in first
        assert follower.returncode is None  # still following: the job waits on its gate
        assert (await opsapp.get_job(handle.id)).state is JobState.ACTIVE

        gate.touch()
        second = await _line(follower)
        assert "warning" in second
        assert "second line" in second
        assert "step=2" in second
        out, err = await asyncio.wait_for(follower.communicate(), 10)  # the attempt ended
        assert follower.returncode == 0, err
        assert out == b""  # each line once
        assert await handle.result(timeout=5) == "done"
        assert raw_redis.zcard(KEYS.log_followers) == 0  # it left the list
    finally:
        gate.touch()
        stop_process(worker)


async def _followed(raw_redis: redis.Redis) -> bool:
    return bool(raw_redis.zcard(KEYS.log_followers))


async def test_logs_follow_waits_for_a_queued_job_to_start(
    opsapp: Registry, redis_url: str, tmp_path: Path, raw_redis: redis.Redis
) -> None:
    from tests.apps.opsapp import chatty

    gate = tmp_path / "gate"
    handle = await chatty.enqueue(str(gate))
    follower = await _cli(redis_url, "logs", handle.id, "-f", "--json")
    await wait_until(lambda: _followed(raw_redis), timeout=10)  # no worker yet: it waits
    worker = start_worker(APP, redis_url, "--queues", "ops")
    try:
        first = json.loads(await _line(follower))
        assert (first["job_id"], first["attempt"], first["level"]) == (handle.id, 1, "info")
        assert (first["event"], first["fields"]) == ("first line", {"step": 1})
        gate.touch()
        second = json.loads(await _line(follower))
        assert (second["event"], second["fields"]) == ("second line", {"step": 2})
        out, err = await asyncio.wait_for(follower.communicate(), 10)
        assert (follower.returncode, out) == (0, b""), err
    finally:
        gate.touch()
        stop_process(worker)


async def test_logs_json_grep_and_no_feed_without_followers(
    opsapp: Registry, redis_url: str, tmp_path: Path, raw_redis: redis.Redis
) -> None:
    from tests.apps.opsapp import chatty, double

    gate = tmp_path / "gate"
    gate.touch()
    handles = [await chatty.enqueue(str(gate)) for _ in range(3)]
    await double.enqueue(1)
    worker = start_worker(APP, redis_url, "--queues", "ops", "--burst")
    code, output = finish(worker)
    assert code == 0, output
    assert raw_redis.exists(KEYS.log_feed) == 0  # nobody followed: nothing was copied

    shown = run_cli(redis_url, "logs", handles[0].id, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["job_id"] == handles[0].id
    assert [(line["event"], line["attempt"]) for line in document["lines"]] == [
        ("first line", 1),
        ("second line", 1),
    ]
    text = run_cli(redis_url, "logs", handles[0].id)
    assert [line.split()[2:4] for line in text.stdout.splitlines()] == [
        ["first", "line"],
        ["second", "line"],
    ]

    found = run_cli(redis_url, "logs", "--queue", "ops", "--grep", "second|step.: 2", "--json")
    assert found.returncode == 0, found.stderr
    matches = json.loads(found.stdout)["lines"]
    assert sorted(m["job_id"] for m in matches) == sorted(h.id for h in handles)
    assert {m["event"] for m in matches} == {"second line"}

    missing = run_cli(redis_url, "logs", handles[0].id, "--attempt", "2")
    assert missing.returncode == 1
    assert "no attempt 2" in missing.stderr
    bad = run_cli(redis_url, "logs", "--queue", "ops", "--grep", "(")
    assert bad.returncode == 2
    assert "not a regular expression" in bad.stderr
    assert run_cli(redis_url, "logs").returncode == 2
