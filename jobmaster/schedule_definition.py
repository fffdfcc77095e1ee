"""What a schedule is: its definition, validated against the registry's job, and the state
the scripts keep beside it (the operations on schedules are in :mod:`jobmaster.schedules`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobmaster.codec import DecodeError, pack, unpack
from jobmaster.cron import (
    CATCH_UP_POLICIES,
    CatchUp,
    TickRule,
    check_cron,
    check_interval,
    check_timezone,
    rule_for,
)
from jobmaster.definition import QUEUE_PATTERN
from jobmaster.errors import ConfigError, InvalidArguments
from jobmaster.models import JobState, Schedule
from jobmaster.payload import pack_arguments
from jobmaster.record_codec import SCHEDULE_STATE
from jobmaster.records import from_ms, job_record
from jobmaster.store import ScheduleRecord

if TYPE_CHECKING:
    from jobmaster.handler import JobHandler
    from jobmaster.registry_view import DefinedJob, RegistryView

SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
"""Schedule names: no ``@``, which separates the name from the tick in job ids."""
_NAME_RE = re.compile(SCHEDULE_NAME_PATTERN)
_QUEUE_RE = re.compile(QUEUE_PATTERN)


class ScheduleDefinition(BaseModel):
    """What a schedule is (its state, such as the next due time, is kept apart)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=SCHEDULE_NAME_PATTERN)
    job: str
    queue: str = Field(pattern=QUEUE_PATTERN)
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    args: dict[str, Any] = {}
    catch_up: CatchUp = "latest"
    catch_up_limit: int = Field(default=100, ge=1, le=1000)
    priority: int = Field(default=0, ge=0, le=9)
    source: Literal["code", "api"] = "api"

    @property
    def rule(self) -> TickRule:
        return rule_for(self.cron, self.every, self.tz)

    @property
    def timing(self) -> tuple[str | None, float | None, str]:
        return (self.cron, self.every, self.tz)

    def encode(self) -> bytes:
        return pack(self.model_dump(mode="json"))

    @classmethod
    def decode(cls, raw: bytes) -> ScheduleDefinition:
        try:
            return cls.model_validate(unpack(raw))
        except ValidationError as exc:
            raise DecodeError(f"invalid schedule definition: {exc}") from None

    def job_record(self, created_ms: int) -> bytes:
        """The record of one of this schedule's jobs (as enqueue writes it)."""
        return pack(job_record(self.job, pack(self.args), self.priority, created_ms))


@dataclass(frozen=True)
class ScheduleState:
    """The part of a schedule the scripts edit (see keys.py)."""

    revision: int
    due: int | None
    paused: bool
    last_tick: int | None
    last_job_id: str | None

    @classmethod
    def decode(cls, raw: bytes) -> ScheduleState:
        st = SCHEDULE_STATE.decode(raw)
        return cls(
            revision=int(st["r"]),
            due=int(st["d"]) if "d" in st else None,
            paused=bool(st.get("p")),
            last_tick=int(st["l"]) if "l" in st else None,
            last_job_id=st.get("j"),
        )


def define(
    registry: RegistryView,
    name: str,
    job: str | JobHandler[Any, Any],
    *,
    cron: str | None = None,
    every: float | timedelta | None = None,
    args: Mapping[str, Any] | Sequence[Any] | None = None,
    tz: str = "UTC",
    catch_up: str = "latest",
    catch_up_limit: int = 100,
    queue: str | None = None,
    source: Literal["code", "api"] = "api",
) -> ScheduleDefinition:
    """Validate a schedule against the registry's job; clear errors for every mistake.

    Raises:
        ConfigError: a bad name, cron expression, timezone, interval or policy.
        UnknownJob: the registry has no such job.
        InvalidArguments: ``args`` do not fit the job's signature.
    """
    handler: DefinedJob = job if not isinstance(job, str) else registry.get(job)
    return build_definition(
        name,
        handler.definition.name,
        queue if queue is not None else handler.definition.queue,
        cron=cron,
        every=every,
        tz=tz,
        arguments=encode_arguments(handler, args, registry.settings.max_payload),
        catch_up=catch_up,
        catch_up_limit=catch_up_limit,
        priority=handler.definition.priority,
        source=source,
    )


def build_definition(
    name: str,
    job: str,
    queue: str,
    *,
    cron: str | None,
    every: float | timedelta | None,
    tz: str,
    arguments: dict[str, Any],
    catch_up: str,
    catch_up_limit: int,
    priority: int,
    source: Literal["code", "api"],
) -> ScheduleDefinition:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"schedule name must be 1-100 characters of letters, digits and _.:-, got {name!r}"
        )
    if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
        raise ConfigError(
            f"queue must be 1-64 characters of letters, digits and _.-, got {queue!r}"
        )
    if (cron is None) == (every is None):
        raise ConfigError(f"schedule {name!r}: give cron= or every= (one of them)")
    if catch_up not in CATCH_UP_POLICIES:
        raise ConfigError(
            f"schedule {name!r}: catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, "
            f"got {catch_up!r}"
        )
    if isinstance(catch_up_limit, bool) or not isinstance(catch_up_limit, int):
        raise ConfigError(f"schedule {name!r}: catch_up_limit must be an integer")
    if not 1 <= catch_up_limit <= 1000:
        raise ConfigError(
            f"schedule {name!r}: catch_up_limit must be from 1 to 1000, got {catch_up_limit}"
        )
    tz = check_timezone(tz)
    return ScheduleDefinition(
        name=name,
        job=job,
        queue=queue,
        cron=check_cron(cron, tz) if cron is not None else None,
        every=check_interval(every) if every is not None else None,
        tz=tz,
        args=arguments,
        catch_up=catch_up,
        catch_up_limit=catch_up_limit,
        priority=priority,
        source=source,
    )


def encode_arguments(
    handler: DefinedJob, args: Mapping[str, Any] | Sequence[Any] | None, max_payload: int
) -> dict[str, Any]:
    """A schedule's fixed arguments, validated against the job's signature (and checked as
    a job's arguments are at enqueue: storable, finite, within ``max_payload``)."""
    signature = handler.signature
    if args is None:
        dumped = signature.encode_call((), {})
    elif isinstance(args, Mapping):
        dumped = signature.encode_call((), args)
    elif isinstance(args, Sequence) and not isinstance(args, str | bytes):
        dumped = signature.encode_call(args, {})
    else:
        raise InvalidArguments(
            f"args must be a mapping (keywords) or a list (positional), got {args!r}"
        )
    pack_arguments(signature, dumped, max_payload)
    return dumped


def to_model(record: ScheduleRecord, last_job_state: JobState | None = None) -> Schedule:
    definition = ScheduleDefinition.decode(record.definition)
    state = ScheduleState.decode(record.state)
    return Schedule(
        **definition.model_dump(),
        paused=state.paused,
        next_run_at=from_ms(state.due) if state.due is not None and not state.paused else None,
        last_run_at=from_ms(state.last_tick) if state.last_tick is not None else None,
        last_job_id=state.last_job_id,
        last_job_state=last_job_state,
    )
