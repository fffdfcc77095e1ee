"""jobmaster: a distributed job queue on Redis Streams that records every attempt."""

from jobmaster.context import Context
from jobmaster.definition import JobDefinition, Retry
from jobmaster.errors import (
    ConfigError,
    InvalidArguments,
    InvalidState,
    JobCancelled,
    JobFailed,
    JobmasterError,
    JobNotFound,
    NotReplicated,
    RateLimited,
    RedisAccessDenied,
    RedisFull,
    RedisUnavailable,
    ResultExpired,
    ResultTimeout,
    RetryLater,
    ScheduleExists,
    ScheduleNotFound,
    UnknownJob,
)
from jobmaster.flow import Call, Flow, FlowCycle
from jobmaster.groups import GroupFailed, GroupHandle, GroupInfo, GroupState, Quorum
from jobmaster.handle import JobHandle
from jobmaster.handler import JobHandler, JobOptions
from jobmaster.job_relations import JobLink, JobRelations
from jobmaster.models import (
    Attempt,
    AttemptOutcome,
    CancelOutcome,
    ErrorInfo,
    Job,
    JobEvent,
    JobLogLine,
    JobState,
    JobSummary,
    LogLine,
    Notification,
    QueueStats,
    Schedule,
)
from jobmaster.ops.middleware import AttemptEnd, AttemptInfo, EnqueueRequest, Middleware
from jobmaster.ops.webhooks import Webhook
from jobmaster.registry import Registry
from jobmaster.settings import Settings

__all__ = [
    "Attempt",
    "AttemptEnd",
    "AttemptInfo",
    "AttemptOutcome",
    "Call",
    "CancelOutcome",
    "ConfigError",
    "Context",
    "EnqueueRequest",
    "ErrorInfo",
    "Flow",
    "FlowCycle",
    "GroupFailed",
    "GroupHandle",
    "GroupInfo",
    "GroupState",
    "InvalidArguments",
    "InvalidState",
    "Job",
    "JobCancelled",
    "JobDefinition",
    "JobEvent",
    "JobFailed",
    "JobHandle",
    "JobHandler",
    "JobLink",
    "JobLogLine",
    "JobNotFound",
    "JobOptions",
    "JobRelations",
    "JobState",
    "JobSummary",
    "JobmasterError",
    "LogLine",
    "Middleware",
    "NotReplicated",
    "Notification",
    "QueueStats",
    "Quorum",
    "RateLimited",
    "RedisAccessDenied",
    "RedisFull",
    "RedisUnavailable",
    "Registry",
    "ResultExpired",
    "ResultTimeout",
    "Retry",
    "RetryLater",
    "Schedule",
    "ScheduleExists",
    "ScheduleNotFound",
    "Settings",
    "UnknownJob",
    "Webhook",
]
__version__ = "0.1.0"
