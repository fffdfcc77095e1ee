"""Queues as a whole: pause and resume them, and see what their limits hold back.

:class:`QueueControl` holds the public methods :class:`jobmaster.Registry` offers. A paused
queue takes enqueues, but no worker claims from it until it is resumed; attempts running
when it was paused go on. The state lives in Redis, so it outlives worker restarts, and
workers learn of a resumption at once (through the queue's control stream).
"""

from __future__ import annotations

from jobmaster.errors import redis_errors
from jobmaster.flow_control import parse_resources
from jobmaster.options import check_queue
from jobmaster.registry_view import RegistryView
from jobmaster.store.types import HeldForResources, LimitState


class QueueControl:
    """Pausing queues and reading their limits; a part of :class:`jobmaster.Registry`.

    Raises:
        InvalidArguments: a queue name that is not valid.
        RedisUnavailable: Redis could not be reached.
    """

    async def pause_queue(self: RegistryView, queue: str) -> bool:
        """Stop workers from claiming jobs of ``queue`` (enqueues still write); whether it
        was running before."""
        check_queue(queue)
        with redis_errors("pausing the queue failed", self.settings.redis_url):
            return await self.connection().store.limits.pause_queue(queue, True)

    async def resume_queue(self: RegistryView, queue: str) -> bool:
        """Let workers claim jobs of ``queue`` again; whether it was paused."""
        check_queue(queue)
        with redis_errors("resuming the queue failed", self.settings.redis_url):
            return await self.connection().store.limits.pause_queue(queue, False)

    async def paused_queues(self: RegistryView) -> list[str]:
        """The queues that are paused now, among those that ever had a job."""
        with redis_errors("reading the queues failed", self.settings.redis_url):
            store = self.connection().store
            known = sorted(set(await store.inspection.queues()) | set(self.queues()))
            return await store.limits.paused_queues(known)

    async def queue_limits(self: RegistryView, queue: str) -> list[LimitState]:
        """The limit keys of ``queue``'s jobs (a job's name, or ``<name>:<limit_key
        value>``): their max_running and rate, the attempts running and the jobs held
        back now."""
        check_queue(queue)
        with redis_errors("reading the limits failed", self.settings.redis_url):
            return await self.connection().store.limits.limit_states(queue)

    async def held_for_resources(self: RegistryView, queue: str) -> list[HeldForResources]:
        """The jobs of ``queue`` waiting for a worker with enough free resources, each with
        whether a live worker offers that much at all (a worker without ``--resources``
        offers everything)."""
        check_queue(queue)
        with redis_errors("reading the held jobs failed", self.settings.redis_url):
            store = self.connection().store
            held = await store.limits.held_for_resources(queue)
            workers = await store.workers.workers() if held else []
        offers = [w.resources for w in workers if queue in w.queues]
        jobs = []
        for job_id, text in held:
            needs = parse_resources(text) if text else {}
            fits = any(
                offer is None or all(offer.get(n, 0.0) >= a for n, a in needs.items())
                for offer in offers
            )
            jobs.append(HeldForResources(job_id, needs, fits))
        return jobs
