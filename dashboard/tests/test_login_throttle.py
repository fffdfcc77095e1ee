"""Guessing credentials is slowed per client address and per user, and logged."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from dashboard_support import TOKEN, client_for, csrf_of
from starlette.applications import Starlette
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from jobmaster import Registry
from jobmaster_dashboard import AuthConfig, throttle

ATTACKER, OPERATOR = ("203.0.113.9", 40000), ("198.51.100.7", 40000)


class Clock:
    """The throttle's clock, moved by hand (the counting is what is tested, not waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def from_address(app: Starlette, address: tuple[str, int]) -> Iterator[TestClient]:
    with TestClient(app, client=address, follow_redirects=False) as client:
        yield client


def login(client: TestClient, token: str, csrf: str, **form: str) -> int:
    data = {"token": token, "csrf_token": csrf, **form}
    return client.post("/login", data=data).status_code


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_wrong_logins_are_slowed_and_logged(registry: Registry, clock: Clock) -> None:
    with client_for(registry, auth=TOKEN) as first:
        app = first.app
        assert isinstance(app, Starlette)
        app.state.login_throttle.clock = clock
    with from_address(app, ATTACKER) as attacker, capture_logs() as logs:
        csrf = csrf_of(attacker, "/login")
        answers = [login(attacker, f"guess-{n}", csrf) for n in range(300)]
        assert answers[:5] == [401] * 5  # looked at
        assert set(answers[5:]) == {429}  # refused unseen
        refused = attacker.post("/login", data={"token": TOKEN, "csrf_token": csrf})
        assert refused.status_code == 429  # even the right token, from this address
        assert "Too many failed logins" in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        clock.now += 1.0  # the first delay: one more guess is looked at
        assert login(attacker, "guess-again", csrf) == 401
        assert login(attacker, "and-again", csrf) == 429
    failures = [e for e in logs if e["event"] == "dashboard login failed"]
    assert len(failures) == 6
    assert failures[-1] | {"failures": 6} == {
        "event": "dashboard login failed",
        "log_level": "warning",
        "address": ATTACKER[0],
        "user": "token",
        "via": "form",
        "failures": 6,
    }
    assert not any("guess" in str(e) for e in logs)  # what was typed is not logged


async def test_the_right_user_from_another_address_waits_briefly(
    registry: Registry, clock: Clock
) -> None:
    auth = AuthConfig(user="ops", password="right")
    with client_for(registry, auth=auth) as first:
        app = first.app
        assert isinstance(app, Starlette)
        app.state.login_throttle.clock = clock
    with from_address(app, ATTACKER) as attacker, from_address(app, OPERATOR) as operator:
        csrf = csrf_of(attacker, "/login")
        for n in range(40):  # a guess each time the throttle lets one through
            clock.now += attacker_wait(app)
            assert login(attacker, "", csrf, user="ops", password=f"guess-{n}") == 401
        assert attacker_wait(app) == throttle.ADDRESS_LOCKOUT
        operator_csrf = csrf_of(operator, "/login")
        assert app.state.login_throttle.wait(OPERATOR[0], "ops") <= throttle.USER_LOCKOUT
        clock.now += throttle.USER_LOCKOUT
        assert login(operator, "", operator_csrf, user="ops", password="right") == 303
        assert operator.get("/").status_code == 200
        assert login(attacker, "", csrf, user="ops", password="guess") == 429  # still locked


def attacker_wait(app: Starlette) -> float:
    wait: float = app.state.login_throttle.wait(ATTACKER[0], "ops")
    return wait


async def test_wrong_header_credentials_are_slowed_too(registry: Registry) -> None:
    auth = AuthConfig(token=TOKEN, user="ops", password="right")
    with client_for(registry, auth=auth) as client:
        bearer = [
            client.get("/", headers={"authorization": f"Bearer guess-{n}"}).status_code
            for n in range(20)
        ]
        assert bearer == [401] * 5 + [429] * 15
        wrong = base64.b64encode(b"ops:guess").decode()
        basic = client.get("/", headers={"authorization": f"Basic {wrong}"})
        assert basic.status_code == 429  # the same address
        assert int(basic.headers["retry-after"]) >= 1
