"""Relations on the command line: ``jobs show`` names what a job waits on and what waits on
it; ``groups show|list|cancel|retry``. Jobs are made with the test application's handlers
and run by real ``jobmaster worker --burst`` processes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobmaster import Quorum, Registry
from tests.conftest import PROCAPP, run_cli


def ok(redis_url: str, *args: str) -> str:
    """The stdout of a command that must succeed."""
    done = run_cli(redis_url, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def document(redis_url: str, *args: str) -> Any:
    """The one JSON document a command prints with ``--json``."""
    return json.loads(ok(redis_url, *args, "--json"))


def rows(output: str, title: str) -> list[list[str]]:
    """The cells of each row of the table titled ``title`` in a command's output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    found = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            found.append([cell.strip() for cell in line.strip("│").split("│")])
    return found


def run_worker(redis_url: str, queues: str = "default") -> None:
    ok(redis_url, "--log-level", "warning", "worker", PROCAPP, "--burst", "--queues", queues)


async def test_jobs_show_names_what_a_job_waits_on_and_what_waits_on_it(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add, explode

    first = await explode.options(job_id="first").enqueue("no luck")
    await add.options(job_id="then", after=[first]).enqueue(1, 2)
    await add.options(job_id="anyway", after_any=[first]).enqueue(3, 4)
    await add.options(job_id="elsewhere", after=[first], queue="other").enqueue(5, 6)

    shown = ok(redis_url, "jobs", "show", "then")
    assert "then add on default: blocked" in shown
    assert "blocked by: first" in shown
    assert rows(shown, "waits on") == [["default", "first", "after", "queued", "no"]]
    shown = ok(redis_url, "jobs", "show", "first")
    assert rows(shown, "waited on by") == [
        ["default", "then", "after", "blocked"],
        ["default", "anyway", "after_any", "blocked"],
        ["other", "elsewhere", "after", "blocked"],
    ]
    assert "waits on" not in shown
    assert "blocked by" not in shown

    run_worker(redis_url)
    # a failed dependency keeps its dependent blocked (until it is retried and succeeds)
    shown = ok(redis_url, "jobs", "show", "then")
    assert "then add on default: blocked" in shown
    assert rows(shown, "waits on") == [["default", "first", "after", "failed", "no"]]
    job = document(redis_url, "jobs", "show", "then")
    assert (job["state"], job["blocked_by"], job["group_id"]) == ("blocked", ["first"], None)
    assert job["upstream"] == [
        {"queue": "default", "id": "first", "mode": "all", "state": "failed", "met": False,
         "group": False}
    ]  # fmt: skip
    assert job["downstream"] == []
    job = document(redis_url, "jobs", "show", "first")
    assert [(d["queue"], d["id"], d["mode"], d["state"]) for d in job["downstream"]] == [
        ("default", "then", "all", "blocked"),
        ("default", "anyway", "any", "succeeded"),
        ("other", "elsewhere", "all", "blocked"),
    ]
    # after_any counts a failure as an end: that dependent ran
    shown = ok(redis_url, "jobs", "show", "anyway", "--queue", "default")
    assert "anyway add on default: succeeded" in shown
    assert "blocked by" not in shown
    assert rows(shown, "waits on") == [["default", "first", "after_any", "failed", "yes"]]


async def test_a_group_is_shown_listed_retried_and_cancelled(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add, explode, record

    members = [add.options(job_id=f"m{i}").call(i, i) for i in range(3)]
    await procapp.enqueue_group(
        [*members, explode.options(job_id="m3").call("bad input")],
        then=record.options(job_id="cb").call(7),
        group_id="g1",
    )
    shown = ok(redis_url, "groups", "show", "g1")
    assert "group g1 on default: running" in shown
    assert "complete when: all succeed; on failure: continue" in shown
    assert "progress: 0 of 4 members succeeded (4 needed), 0 failed, 0 cancelled, 4 not ended" in (
        shown
    )
    assert "then: default/cb (blocked)" in shown
    assert "members per state: 4 queued" in shown
    assert rows(shown, "members") == [[str(i), "default", f"m{i}", "queued"] for i in range(4)]

    run_worker(redis_url)
    shown = ok(redis_url, "groups", "show", "g1")
    assert "group g1 on default: failed" in shown
    assert "progress: 3 of 4 members succeeded (4 needed), 1 failed, 0 cancelled, 0 not ended" in (
        shown
    )
    assert "then: default/cb (blocked)" in shown  # a failed group's callback waits
    assert rows(shown, "members")[3] == ["3", "default", "m3", "failed"]
    callback = ok(redis_url, "jobs", "show", "cb")
    assert "blocked by: g1" in callback
    assert "group: g1 (callback; jobmaster groups show g1 --queue default)" in callback
    assert rows(callback, "waits on") == [["default", "group g1", "after", "failed", "no"]]
    member = document(redis_url, "jobs", "show", "m1")
    assert (member["group_id"], member["group_queue"], member["group_role"]) == (
        "g1", "default", "member"
    )  # fmt: skip
    listed = ok(redis_url, "groups", "list", "default")
    assert rows(listed, "default: groups, newest first")[0][:8] == [
        "g1", "failed", "all succeed", "continue", "4", "3", "1", "0"
    ]  # fmt: skip

    retried = ok(redis_url, "groups", "retry", "g1")
    assert "group g1: 1 member queued again: m3" in retried
    shown = ok(redis_url, "groups", "show", "g1")
    assert "members per state: 1 queued, 3 succeeded" in shown
    assert "1 not ended" in shown
    # the group runs again: it waits on the retried member
    listed = ok(redis_url, "groups", "list", "default")
    assert rows(listed, "default: groups, newest first")[0][:8] == [
        "g1", "running", "all succeed", "continue", "4", "3", "0", "0"
    ]  # fmt: skip

    cancelled = ok(redis_url, "groups", "cancel", "g1")
    assert (
        "group g1 cancelled: 1 member had not ended, now cancelled (running "
        "ones are asked to stop); its callback cb will not run"
    ) in cancelled
    assert "cb record on default: cancelled" in ok(redis_url, "jobs", "show", "cb")
    again = run_cli(redis_url, "groups", "cancel", "g1")
    assert again.returncode == 1
    assert "group g1 was cancelled already" in again.stderr
    refused = run_cli(redis_url, "groups", "retry", "g1")
    assert refused.returncode == 1
    assert "was cancelled; its members are not retried" in refused.stderr


async def test_a_quorum_group_completes_and_calls_back(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add, record

    await procapp.enqueue_group(
        [add.call(i, 1) for i in range(3)],
        complete_when=Quorum(2),
        then=record.options(job_id="done").call(2),
        group_id="q",
    )
    run_worker(redis_url)
    shown = ok(redis_url, "groups", "show", "q")
    assert "group q on default: succeeded" in shown
    assert "complete when: quorum 2 of 3; on failure: continue" in shown
    assert "then: default/done (succeeded)" in shown
    assert "group q (succeeded) has no failed or cancelled member to retry" in ok(
        redis_url, "groups", "retry", "q"
    )
    group = document(redis_url, "groups", "show", "q")
    assert (group["state"], group["complete_when"], group["size"], group["needed"]) == (
        "succeeded", 2, 3, 2
    )  # fmt: skip
    assert group["counts"]["succeeded"] == 3
    assert group["counts"]["queued"] == 0
    assert group["then"] == {"queue": "default", "id": "done", "state": "succeeded"}
    assert group["created_at"] <= group["finished_at"]
    assert "T" in group["created_at"]


async def test_a_large_group_lists_its_first_members_with_a_note(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add

    await procapp.enqueue_group([add.call(i, i) for i in range(120)], group_id="big")
    await procapp.enqueue_group([add.call(1, 1)], group_id="small")
    shown = ok(redis_url, "groups", "show", "big")
    assert len(rows(shown, "members")) == 50
    assert "note: listed the first 50 of 120 members; --limit 120 lists them all" in shown
    assert len(rows(ok(redis_url, "groups", "show", "big", "--limit", "120"), "members")) == 120
    group = document(redis_url, "groups", "show", "big", "--limit", "10")
    assert (group["size"], len(group["members"])) == (120, 10)
    assert group["members"][9] == {"index": 9, "queue": "default", "id": group["members"][9]["id"],
                                   "state": "queued"}  # fmt: skip
    listed = document(redis_url, "groups", "list", "default")
    assert [(g["id"], g["size"], g["state"]) for g in listed] == [
        ("small", 1, "running"),
        ("big", 120, "running"),
    ]
    assert "members" not in listed[0]
    assert document(redis_url, "groups", "list", "nothing-here") == []
    assert "no groups in queue nothing-here" in ok(redis_url, "groups", "list", "nothing-here")


@pytest.mark.deployments
async def test_relations_across_queues_are_shown(registry: Registry, redis_url: str) -> None:
    @registry.job(queue="flows")
    def extract(n: int) -> int:
        return n

    @registry.job(queue="other")
    def load(n: int) -> int:
        return n

    first = await extract.options(job_id="first", delay=3600).enqueue(1)
    await load.options(job_id="second", after=[first]).enqueue(2)
    await registry.enqueue_group(
        [extract.options(job_id="e").call(1), load.options(job_id="l").call(2)],
        then=load.options(job_id="cb").call(3),
        group_id="g",
    )
    shown = ok(redis_url, "jobs", "show", "second")
    assert "second load on other: blocked" in shown
    assert rows(shown, "waits on") == [["flows", "first", "after", "scheduled", "no"]]
    # the producer delivered the watch to the other queue before its enqueue returned
    assert rows(ok(redis_url, "jobs", "show", "first"), "waited on by") == [
        ["other", "second", "after", "blocked"]
    ]
    shown = ok(redis_url, "groups", "show", "g")
    assert "group g on flows: running" in shown
    assert "then: other/cb (blocked)" in shown
    assert rows(shown, "members") == [["0", "flows", "e", "queued"], ["1", "other", "l", "queued"]]
    callback = ok(redis_url, "jobs", "show", "cb")
    assert "group: g (callback; jobmaster groups show g --queue flows)" in callback
    assert rows(callback, "waits on") == [["flows", "group g", "after", "running", "no"]]
    member = document(redis_url, "jobs", "show", "l")
    assert (member["group_id"], member["group_queue"], member["group_role"]) == (
        "g", "flows", "member"
    )  # fmt: skip
    assert [g["id"] for g in document(redis_url, "groups", "list", "flows")] == ["g"]
    assert document(redis_url, "groups", "list", "other") == []


async def test_a_job_with_many_dependents_lists_the_first_with_a_note(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add

    root = await add.options(job_id="root", delay=3600).enqueue(0, 0)
    for n in range(60):
        await add.options(job_id=f"d{n}", after=[root]).enqueue(n, n)
    shown = ok(redis_url, "jobs", "show", "root")
    assert rows(shown, "waited on by")[:2] == [
        ["default", "d0", "after", "blocked"],
        ["default", "d1", "after", "blocked"],
    ]
    assert len(rows(shown, "waited on by")) == 50
    assert "note: listed 50 of the 60 jobs that wait on it; --json lists them all" in shown
    job = document(redis_url, "jobs", "show", "root")
    assert [d["id"] for d in job["downstream"]] == [f"d{n}" for n in range(60)]


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["groups", "show", "nope"], "no group 'nope'", 1),
        (["groups", "show", "nope", "--queue", "default"], "no group 'nope'", 1),
        (["groups", "show", "g", "--queue", "no such"], "queue= must be 1-64 characters", 1),
        (["groups", "show", "g", "--limit", "0"], "must be >= 1", 2),
        (["groups", "list", "no such"], "queue= must be 1-64 characters", 1),
        (["groups", "cancel", "nope"], "no group 'nope'", 1),
        (["groups", "retry", "nope"], "no group 'nope'", 1),
        (["groups"], "the following arguments are required", 2),
        (["jobs", "show", "nope", "--queue", "other"], "no job with id 'nope' in queue", 1),
    ],
)
def test_bad_input_is_explained(redis_url: str, args: list[str], message: str, code: int) -> None:
    done = run_cli(redis_url, *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr


async def test_enqueue_takes_dependencies_by_id(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add, explode

    first = await add.options(job_id="first").enqueue(1, 1)
    failing = await explode.options(job_id="failing", queue="other").enqueue("no luck")
    made = ok(
        redis_url, "enqueue", PROCAPP, "add", "--args", "[2, 2]", "--job-id", "dependent",
        "--after", first.id, "--after-any", failing.id,
    )  # fmt: skip
    assert made.strip() == "dependent"
    shown = ok(redis_url, "jobs", "show", "dependent")
    assert "dependent add on default: blocked" in shown
    assert rows(shown, "waits on") == [
        ["default", "first", "after", "queued", "no"],
        ["other", "failing", "after_any", "queued", "no"],
    ]
    # failing fails: after_any is met all the same. Its news crosses queues through the
    # relay, delivered when the burst worker stops: a second one runs the dependent.
    run_worker(redis_url, "default,other")
    run_worker(redis_url, "default,other")
    assert await procapp.handle("dependent", "default").result(timeout=10) == 4

    before = await procapp.count_jobs("default")
    unknown = run_cli(redis_url, "enqueue", PROCAPP, "add", "--args", "[1, 2]", "--after", "nope")
    assert unknown.returncode == 1
    assert "'nope'" in unknown.stdout + unknown.stderr
    assert await procapp.count_jobs("default") == before  # nothing was written
