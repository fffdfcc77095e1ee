"""Settings of a registry and its workers: keyword arguments, else JOBMASTER_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jobmaster.errors import ConfigError
from jobmaster.server_binaries import SERVER_ENV
from jobmaster.transport.address import ClusterSeeds, is_cluster
from jobmaster.transport.sentinel import SentinelURL, is_sentinel

ENV_PREFIX = "JOBMASTER_"
JOBS_ENV_PREFIX = "JOBMASTER_JOBS__"
"""Per-job overrides: JOBMASTER_JOBS__<NAME>__<OPTION> (see definition.py)."""
DASHBOARD_ENV_PREFIX = "JOBMASTER_DASHBOARD_"
"""The dashboard's own variables (its credentials): not registry settings, not errors."""

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
URL_OPTIONS = ("min_replicas_acked", "replicas_ack_timeout")
"""Settings that a Redis URL's query may carry."""
MAX_PAYLOAD = 2 * 1024 * 1024
"""Default of ``max_payload``: 2 MiB of arguments per job."""


class Settings(BaseModel):
    """Where the data lives and how long it is kept. Durations are in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str = Field(default_factory=lambda: DEFAULT_REDIS_URL)
    """Not in ``model_fields_set`` when neither an argument nor the variable gave it (the
    command line says so on stderr)."""
    namespace: str = Field(default="jobmaster", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    retention: float = Field(default=7 * 86400, gt=0)
    """How long finished jobs, their attempts and logs are kept."""
    lease: float = Field(default=30.0, gt=0)
    """How long a worker holds a job without renewing it."""
    heartbeat: float | None = Field(default=None, gt=0)
    """Seconds between a worker's lease renewals and heartbeats (default: lease / 3)."""
    scheduler_lease: float = Field(default=5.0, gt=0)
    """Seconds a worker's scheduler leads a queue's schedules between renewals; another
    takes over about this long after the leader dies."""
    max_lost: int = Field(default=3, ge=1, le=100)
    """Lost attempts (worker died or stalled) after which a job ends failed."""
    events_maxlen: int = Field(default=10_000, ge=100)
    """Entries kept in each queue's events stream (each lists one batch of changes)."""
    log_bytes: int = Field(default=256 * 1024, ge=1024)
    """Most bytes of log lines kept per attempt; later lines are dropped and marked."""
    max_payload: int = Field(default=MAX_PAYLOAD, ge=1024, le=512 * 1024 * 1024)
    """Most bytes a job's arguments may take (their msgpack); a larger enqueue raises
    InvalidArguments. Large data travels by reference (a path, a URL, a key)."""
    reply_spin: float = Field(default=0.0001, ge=0, le=0.01)
    """Seconds a synchronous enqueue polls for Redis's reply before it sleeps on the socket
    (0: it never polls); see transport.blocking.BlockingConnection."""
    min_replicas_acked: int = Field(default=0, ge=0, le=100)
    """Replicas that must acknowledge each enqueue and each record of attempt ends (a
    ``WAIT`` after them; 0: none) for the write to count as done; see store.replication.
    Also ``?min_replicas_acked=N`` on the Redis URL."""
    replicas_ack_timeout: float = Field(default=1.0, gt=0, le=60)
    """Seconds to wait for those acknowledgements before ``NotReplicated`` is raised."""

    @field_validator("redis_url")
    @classmethod
    def _sentinel_url_is_whole(cls, url: str) -> str:
        """A Sentinel URL names its sentinels and service (checked now, not at first use)."""
        if is_sentinel(url):
            SentinelURL.parse(url)
        return url

    @model_validator(mode="before")
    @classmethod
    def _options_of_the_url(cls, data: Any) -> Any:
        """``?min_replicas_acked=N&replicas_ack_timeout=S`` on the URL: taken off it, as
        settings (which an explicit value of the same setting overrides)."""
        if not isinstance(data, dict) or not isinstance(data.get("redis_url"), str):
            return data
        url, _, query = data["redis_url"].partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        ours = [(k, v) for k, v in pairs if k in URL_OPTIONS]
        if not ours:
            return data
        rest = urlencode([(k, v) for k, v in pairs if k not in URL_OPTIONS])
        return {**dict(ours), **data, "redis_url": f"{url}?{rest}" if rest else url}

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        """Explicit keyword arguments (not None) win over JOBMASTER_* variables."""
        env = os.environ if environ is None else environ
        valid = sorted(cls.model_fields)
        values: dict[str, Any] = {}
        for var, value in env.items():
            if not var.startswith(ENV_PREFIX) or var.startswith(
                (JOBS_ENV_PREFIX, DASHBOARD_ENV_PREFIX, SERVER_ENV)
            ):
                continue
            name = var[len(ENV_PREFIX) :].lower()
            if name not in cls.model_fields:
                raise ConfigError(
                    f"unknown setting {var}; valid: "
                    + ", ".join(ENV_PREFIX + v.upper() for v in valid)
                    + f" and {JOBS_ENV_PREFIX}<JOB>__<OPTION>"
                )
            values[name] = value
        for name, value in explicit.items():
            if name not in cls.model_fields:
                raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(valid)}")
            if value is not None:
                values[name] = value
        try:
            settings = cls(**values)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: {_explain(exc)}") from None
        if is_cluster(settings.redis_url):
            try:
                ClusterSeeds.parse(settings.redis_url)
            except ValueError as exc:
                raise ConfigError(f"invalid redis_url: {exc}") from None
        if settings.heartbeat is not None and settings.heartbeat >= settings.lease:
            raise ConfigError(
                f"heartbeat ({settings.heartbeat:g}s) must be shorter than the lease "
                f"({settings.lease:g}s), or leases expire between renewals"
            )
        return settings


def _explain(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
        for e in exc.errors()
    )
