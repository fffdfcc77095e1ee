"""The dashboard's tests use the main suite's private redis-server and registry fixtures."""

from tests.conftest import redis_server, redis_url, registry  # noqa: F401
