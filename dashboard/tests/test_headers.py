"""Every response carries the security headers: pages, refusals, redirects, files, streams."""

from __future__ import annotations

from dashboard_support import TOKEN, client_for

from jobmaster import Registry

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


async def test_every_response_has_the_security_headers(registry: Registry) -> None:
    bearer = {"authorization": f"Bearer {TOKEN}"}
    with client_for(registry, auth=TOKEN) as client:
        responses = {
            "page": client.get("/", headers=bearer),
            "refusal": client.get("/"),
            "login redirect": client.get("/failed", headers={"accept": "text/html"}),
            "login form": client.get("/login"),
            "file": client.get("/static/live.js"),
            "missing": client.get("/nowhere", headers=bearer),
            "forged post": client.post("/failed/retry", headers=bearer, data={"queue": "q"}),
        }
        with client.stream("GET", "/events", headers=bearer) as stream:
            responses["stream"] = stream
    statuses = {what: r.status_code for what, r in responses.items()}
    wanted = {"page": 200, "refusal": 401, "login redirect": 303, "file": 200}
    assert {what: statuses[what] for what in wanted} == wanted
    for what, response in responses.items():
        for name, value in EXPECTED.items():
            assert response.headers.get(name) == value, (what, name)
        policy = response.headers["content-security-policy"]
        directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
        assert directives["frame-ancestors"] == "'none'", what
        assert directives["script-src"] == "'self'", what  # no 'unsafe-inline'
        assert "unsafe" not in policy, what
