"""The dashboard's tests use the main suite's private redis-server (and cluster) and registry
fixtures; tests marked ``deployments`` run on both. The browser tests' fixtures are in
browser_support.py."""

from browser_support import app, browser, dashboard_url, page, playwright  # noqa: F401

from tests.conftest import (  # noqa: F401
    deployment,
    pytest_generate_tests,
    redis_cluster,
    redis_server,
    redis_url,
    registry,
)
