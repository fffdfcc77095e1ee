"""The dashboard on a Sentinel deployment: given a ``redis+sentinel://`` URL, it reads the
master's jobs through the sentinels."""

from __future__ import annotations

from starlette.testclient import TestClient

from jobmaster import Registry
from jobmaster_dashboard import create_app
from tests.sentinel_servers import SentinelDeployment


async def test_the_dashboard_reads_the_master_through_the_sentinels() -> None:
    deployment = SentinelDeployment(replicas=1)
    try:
        registry = Registry(deployment.url, environ={})

        @registry.job(queue="through-sentinels")
        async def noop() -> None: ...

        handle = await noop.enqueue()
        await registry.aclose()
        registry.close()
        app = create_app(deployment.url, auth=None)
        with TestClient(app) as client:
            overview = client.get("/")
            assert overview.status_code == 200
            assert "through-sentinels" in overview.text
            page = client.get("/job", params={"queue": "through-sentinels", "id": handle.id})
            assert page.status_code == 200
            assert "queued" in page.text
    finally:
        deployment.close()
