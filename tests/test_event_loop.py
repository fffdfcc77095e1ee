"""The worker's event loop: uvloop by default where installed, asyncio's own on request."""

from __future__ import annotations

import asyncio

import pytest

from jobmaster import Registry
from jobmaster.errors import ConfigError
from jobmaster.event_loop import loop_factory, loop_name, run
from tests.conftest import PROCAPP as APP
from tests.conftest import finish, run_cli, start_worker


async def _running_loop() -> str:
    return loop_name(asyncio.get_running_loop())


def test_run_uses_the_loop_asked_for() -> None:
    assert run(_running_loop(), "asyncio") == "asyncio"
    assert run(_running_loop(), "uvloop") == "uvloop"  # a dependency on this platform
    assert run(_running_loop()) == "uvloop"


def test_an_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="auto, uvloop, asyncio"):
        loop_factory("trio")


@pytest.mark.parametrize(
    ("option", "expected"), [([], "uvloop"), (["--loop", "asyncio"], "asyncio")]
)
async def test_a_worker_process_runs_jobs_on_its_loop(
    procapp: Registry, redis_url: str, option: list[str], expected: str
) -> None:
    from tests.apps.procapp import add

    handles = await add.enqueue_many([(i, 1) for i in range(20)])
    code, out = finish(start_worker(APP, redis_url, "--burst", *option))
    assert code == 0, out
    assert f"loop={expected}" in out
    assert [await h.result(timeout=1) for h in handles] == [i + 1 for i in range(20)]


def test_the_cli_refuses_an_unknown_loop(redis_url: str) -> None:
    result = run_cli(redis_url, "worker", APP, "--loop", "trio", "--burst")
    assert result.returncode == 2
    assert "invalid choice: 'trio'" in result.stderr
    assert "'uvloop'" in result.stderr
