"""Login sessions: logging out ends them, unused ones expire, cookies are Secure when asked."""

from __future__ import annotations

import asyncio
import time

from dashboard_support import TOKEN, client_for, csrf_of
from starlette.testclient import TestClient

from jobmaster import Registry
from jobmaster_dashboard import create_app
from tests.conftest import wait_until

SESSION = "jobmaster_session"


def log_in(client: TestClient) -> str:
    """Log in through the form; the session cookie's value."""
    token = csrf_of(client, "/login")
    response = client.post("/login", data={"token": TOKEN, "csrf_token": token})
    assert response.status_code == 303
    assert client.get("/").status_code == 200
    return client.cookies[SESSION]


async def test_a_cookie_replayed_after_logout_is_refused(registry: Registry) -> None:
    with client_for(registry, auth=TOKEN) as client:
        cookie = log_in(client)
        client.post("/logout", data={"csrf_token": client.cookies["jobmaster_csrf"]})
        assert SESSION not in client.cookies
        replay = {"cookie": f"{SESSION}={cookie}"}  # the copy someone kept
        assert client.get("/", headers=replay).status_code == 401
        page = client.get("/failed", headers={**replay, "accept": "text/html"})
        assert page.status_code == 303
        again = log_in(client)  # logging in again opens a new session
        assert again != cookie


async def test_an_unused_session_expires_and_a_used_one_lives_on(registry: Registry) -> None:
    with client_for(registry, auth=TOKEN, session_ttl=1.0) as client:
        log_in(client)
        deadline = time.monotonic() + 2.5  # longer than the session lives unused
        while time.monotonic() < deadline:
            assert client.get("/workers").status_code == 200  # each request slides it
            await asyncio.sleep(0.2)
        # Each look is a request too: look less often than the session lives unused.
        await wait_until(lambda: client.get("/workers").status_code == 401, 5, interval=1.5)


async def test_the_session_lifetime_comes_from_the_environment(registry: Registry) -> None:
    app = create_app(registry, auth=TOKEN, environ={"JOBMASTER_DASHBOARD_SESSION_TTL": "60"})
    assert app.state.session_settings.session_ttl == 60
    assert create_app(registry, auth=TOKEN).state.session_settings.session_ttl == 12 * 3600


async def test_cookies_are_secure_over_https_or_when_asked(registry: Registry) -> None:
    def cookies_set(client: TestClient) -> dict[str, str]:
        """Log in; the Set-Cookie headers of the login form and of logging in, by name."""
        form = client.get("/login").headers.get_list("set-cookie")
        [csrf] = [c for c in form if c.startswith("jobmaster_csrf=")]
        token = csrf.partition("=")[2].partition(";")[0]
        response = client.post(
            "/login",
            data={"token": TOKEN, "csrf_token": token},
            headers={"cookie": f"jobmaster_csrf={token}"},  # a Secure cookie, sent by hand
        )
        assert response.status_code == 303
        return {
            c.partition("=")[0]: c.lower()
            for c in [*form, *response.headers.get_list("set-cookie")]
        }

    with client_for(registry, auth=TOKEN) as plain:
        cookies = cookies_set(plain)
        assert "httponly" in cookies[SESSION]
        assert "secure" not in cookies[SESSION]
        assert "secure" not in cookies["jobmaster_csrf"]
    with client_for(registry, auth=TOKEN, secure_cookies=True) as asked:
        cookies = cookies_set(asked)
        assert "; secure" in cookies[SESSION]
        assert "; secure" in cookies["jobmaster_csrf"]
    app = create_app(registry, auth=TOKEN)
    with TestClient(app, base_url="https://dash.example", follow_redirects=False) as https:
        cookies = cookies_set(https)
        assert "; secure" in cookies[SESSION]
        assert "; secure" in cookies["jobmaster_csrf"]
