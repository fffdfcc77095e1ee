"""The shape of the store and of the transport: one encoder of commands, small parts."""

from __future__ import annotations

import ast
from pathlib import Path

from redis.asyncio import Redis

import jobmaster
from jobmaster.store import Store

PACKAGE = Path(jobmaster.__file__).parent


def _modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_only_the_transport_formats_redis_commands() -> None:
    transport = PACKAGE / "transport"
    formatting = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in _modules(PACKAGE)
        if transport not in path.parents
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str | bytes)
        and ("\r\n" in node.value if isinstance(node.value, str) else b"\r\n" in node.value)
    ]
    assert formatting == []


def test_the_store_and_the_transport_are_made_of_small_parts() -> None:
    too_long = []
    for folder in (PACKAGE / "store", PACKAGE / "transport"):
        for path in _modules(folder):
            tree = ast.parse(path.read_text())
            lines = len(path.read_text().splitlines())
            if lines > 450:
                too_long.append(f"{path.name}: {lines} lines")
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    if size > 300:
                        too_long.append(f"{path.name}: class {node.name} of {size} lines")
    assert too_long == []


PARTS = {
    "jobs": "enqueue enqueue_batches ensure_groups claim finish promote prune wait_for_entries "
    "wait_for_timers forget_consumer forget_idle_consumers record",
    "leases": "renew requeue reclaim record_overrun record_output",
    "control": "cancel reschedule update retry delete read_control newest_control_ids",
    "schedules": "save_schedule schedule_queues locate_schedule schedules due_schedules "
    "delete_schedule fire_schedules scheduler_lease scheduler_leader wait_for_schedule_changes",
    "inspection": "job state position_and_state result count counts list_jobs stats locate "
    "queues job_states server_time_ms read_events read_event_batch",
    "workers": "heartbeat remove_worker workers",
    "sessions": "open_session use_session close_session",
    "access": "refused_commands",
    "limits": "pause_queue paused_queues enqueue limit_states held_for_resources",
}


async def test_the_store_is_a_holder_of_parts_each_with_its_methods() -> None:
    store = Store(Redis())  # no connection is opened before a call
    try:
        for part, names in PARTS.items():
            for name in names.split():
                assert callable(getattr(getattr(store, part), name)), f"store.{part}.{name}"
        public = {n for n in dir(store) if not n.startswith("_") and callable(getattr(store, n))}
        assert public == {"close"}  # every operation is a part's
    finally:
        await store.close()
