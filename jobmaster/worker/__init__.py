"""The worker runtime: fetch loop, attempts, lease renewal, heartbeats and shutdown."""

from jobmaster.worker.runner import Worker

__all__ = ["Worker"]
