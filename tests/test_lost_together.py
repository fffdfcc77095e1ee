"""A job that kills its worker takes no batch-mate down with it for good: jobs lost together
run apart afterwards, and only the one that keeps killing its worker counts its losses."""

from __future__ import annotations

import signal

from jobmaster import AttemptOutcome, JobState, Registry
from tests.conftest import PROCAPP, finish, start_worker


async def test_jobs_lost_beside_a_job_that_kills_its_worker_succeed(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import kill_worker, work

    innocents = [await work.enqueue(n, 300) for n in range(9)]
    poison = await kill_worker.enqueue()  # claimed in one batch with the nine
    deaths = 0
    for _ in range(20):
        worker = start_worker(
            PROCAPP, redis_url, "--lease", "0.5", "--concurrency", "10", "--burst", "--grace", "0"
        )
        code, out = finish(worker)
        if code == -signal.SIGKILL:
            deaths += 1
        else:
            assert code == 0, out
        if await poison.state() is JobState.FAILED and all(
            [await h.state() is JobState.SUCCEEDED for h in innocents]
        ):
            break

    for handle in innocents:
        job = await handle.info()
        assert job.state is JobState.SUCCEEDED, job.error
        outcomes = [a.outcome for a in job.attempts]
        assert outcomes[-1] is AttemptOutcome.SUCCEEDED
        assert outcomes.count(AttemptOutcome.LOST) <= 1  # lost once beside the killer, at most
    job = await poison.info()
    assert job.error is not None
    assert job.error.type == "TooManyLostAttempts"
    # its first death, beside the others, did not count: three more, alone, did
    assert deaths <= 4
