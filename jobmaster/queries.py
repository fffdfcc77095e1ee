"""Reading a namespace's jobs, queues and workers for a Registry: looking a job up by id,
pages of jobs, statistics and the events feed, with Redis's errors named."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from jobmaster.errors import JobmasterError, JobNotFound, redis_errors
from jobmaster.event_feed import abandoned_on_cancel, event_feed
from jobmaster.handle import JobHandle
from jobmaster.models import JobEvent, JobState, JobSummary, QueueStats, WorkerInfo
from jobmaster.records import from_ms
from jobmaster.registry_view import RegistryView


class Queries:
    """The reads of :class:`jobmaster.Registry`'s inspection methods."""

    def __init__(self, registry: RegistryView) -> None:
        self.registry = registry

    def redis_errors(self, what: str) -> AbstractContextManager[None]:
        """:class:`RedisUnavailable` instead of the client's own connection errors."""
        return redis_errors(what, self.registry.settings.redis_url)

    async def known_queues(self) -> list[str]:
        """Every queue that has had a job in this namespace."""
        with self.redis_errors("listing queues"):
            return await self.registry.connection().store.inspection.queues()

    async def count_jobs(self, queue: str) -> dict[JobState, int]:
        """Jobs per state in a queue."""
        with self.redis_errors(f"counting jobs of {queue}"):
            return await self.registry.connection().store.inspection.counts(queue)

    async def workers(self) -> list[WorkerInfo]:
        """Live worker processes, from their heartbeats."""
        with self.redis_errors("listing workers"):
            return await self.registry.connection().store.workers.workers()

    async def find(self, job_id: str, queue: str | None) -> JobHandle[Any]:
        """A handle to a job, looked up by id across every queue (or in one)."""
        store = self.registry.connection().store
        with self.redis_errors(f"looking up job {job_id}"):
            queues = [queue] if queue is not None else await store.inspection.locate(job_id)
            if queue is not None and await store.inspection.state(queue, job_id) is None:
                queues = []
        if not queues:
            where = f" in queue {queue!r}" if queue is not None else ""
            raise JobNotFound(f"no job with id {job_id!r}{where}")
        if len(queues) > 1:
            raise JobmasterError(
                f"job id {job_id!r} exists in queues {', '.join(queues)}; pass queue= to choose"
            )
        return JobHandle(self.registry, job_id, queues[0])

    async def list_jobs(
        self,
        queue: str,
        state: JobState,
        *,
        offset: int,
        limit: int,
        name: str | None,
        tag: str | None,
        scan_limit: int,
    ) -> list[JobSummary]:
        """A page of a queue's jobs in one state (see :meth:`Registry.list_jobs`)."""
        if limit < 1 or offset < 0 or scan_limit < 1:
            raise ValueError("limit and scan_limit must be >= 1 and offset >= 0")
        with self.redis_errors(f"listing jobs of {queue}"):
            return await self.registry.connection().store.inspection.list_jobs(
                queue,
                JobState(state),
                offset=offset,
                limit=limit,
                name=name,
                tag=tag,
                scan_limit=scan_limit,
            )

    async def queue_stats(self, queue: str, buckets: int, bucket_seconds: int) -> QueueStats:
        """Counts per state, the oldest waiting job, and jobs finished per time bucket."""
        if not 1 <= buckets <= 1440 or bucket_seconds < 1:
            raise ValueError("buckets must be 1..1440 and bucket_seconds >= 1")
        bucket_ms = bucket_seconds * 1000
        with self.redis_errors(f"reading statistics of {queue}"):
            (
                counts,
                oldest_ms,
                now_ms,
                done,
                failed,
            ) = await self.registry.connection().store.inspection.stats(queue, buckets, bucket_ms)
        first = now_ms - buckets * bucket_ms
        return QueueStats(
            queue=queue,
            counts=counts,
            oldest_waiting_at=from_ms(oldest_ms) if oldest_ms is not None else None,
            bucket_seconds=bucket_seconds,
            bucket_starts=[from_ms(first + b * bucket_ms) for b in range(buckets)],
            succeeded=done,
            failed=failed,
        )

    async def events(
        self, queues: Sequence[str] | None, since: datetime | None
    ) -> AsyncIterator[JobEvent]:
        """The events feed (see :meth:`Registry.events`)."""
        store = self.registry.connection().store
        if since is None:
            with self.redis_errors("reading events"):
                start_ms = await abandoned_on_cancel(store.inspection.server_time_ms())
        else:
            if since.tzinfo is None:
                raise ValueError("since= must be timezone-aware")
            start_ms = int(since.timestamp() * 1000)
        feed = event_feed(
            store, queues, f"{start_ms}-0".encode(), lambda: self.redis_errors("reading events")
        )
        try:
            async for event in feed:
                yield event
        finally:
            await feed.aclose()
