"""The dashboard's tests use the main suite's private redis-server (and cluster) and registry
fixtures; tests marked ``deployments`` run on both."""

from tests.conftest import (  # noqa: F401
    deployment,
    pytest_generate_tests,
    redis_cluster,
    redis_server,
    redis_url,
    registry,
)
