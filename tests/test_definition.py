"""Declaring jobs with ``@registry.job(...)``: definitions, signatures and bad declarations."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jobmaster import ConfigError, Context, JobDefinition, JobHandler, Registry, Retry

VALID_OPTIONS = ("name", "queue", "priority", "timeout", "result_ttl", "retry")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """A registry that never connects (declaring jobs needs no Redis) and reads no config."""
    return Registry("redis://127.0.0.1:1/0", config_dir=tmp_path, environ={})


class Point(BaseModel):
    x: int
    y: int


# -- async and sync handlers -----------------------------------------------------------------


async def test_async_handler_is_registered_with_defaults(reg: Registry) -> None:
    @reg.job()
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(add, JobHandler)
    assert add.is_async
    assert add.name == "add"
    assert reg.jobs == {"add": add}
    assert reg.get("add") is add
    assert add.definition == JobDefinition(name="add")
    assert add.definition.queue == "default"
    assert add.definition.priority == 0
    assert add.definition.timeout is None
    assert add.definition.result_ttl is None
    assert add.definition.retry == Retry()
    assert add.__doc__ == "Add two numbers."
    assert add.__name__ == "add"
    # calling the handler object calls the function in-process
    assert await add(2, 3) == 5


def test_sync_handler_is_registered(reg: Registry) -> None:
    @reg.job(queue="images")
    def resize(path: str, width: int = 100) -> str:
        return f"{path}@{width}"

    assert not resize.is_async
    assert resize.definition.name == "resize"
    assert resize.definition.queue == "images"
    assert resize("a.png", width=3) == "a.png@3"
    assert reg.queues() == ["images"]


def test_every_decorator_option_lands_in_the_definition(reg: Registry) -> None:
    retry = Retry(max_attempts=5, backoff=2.0, max_backoff=60, jitter=False, retry_on=KeyError)

    @reg.job(name="sum-up", queue="math", priority=7, timeout=12.5, retry=retry, result_ttl=60)
    async def add(a: int, b: int) -> int:
        return a + b

    definition = add.definition
    assert definition.name == "sum-up"
    assert add.name == "sum-up"
    assert definition.queue == "math"
    assert definition.priority == 7
    assert definition.timeout == 12.5
    assert definition.result_ttl == 60
    assert definition.retry is retry
    assert definition.retry.retry_on == (KeyError,)
    # registered under the given name, not the function's
    assert list(reg.jobs) == ["sum-up"]
    assert reg.get("sum-up") is add


def test_queues_lists_each_queue_once_sorted(reg: Registry) -> None:
    @reg.job(queue="b")
    def one() -> None: ...

    @reg.job(queue="a")
    def two() -> None: ...

    @reg.job(queue="b")
    def three() -> None: ...

    assert reg.queues() == ["a", "b"]


def test_none_options_mean_the_defaults(reg: Registry) -> None:
    @reg.job(queue=None, priority=None, timeout=None, retry=None, result_ttl=None)
    def noop() -> None: ...

    assert noop.definition == JobDefinition(name="noop")


# -- the Context parameter -------------------------------------------------------------------


def test_context_first_parameter_is_detected_and_not_an_argument(reg: Registry) -> None:
    @reg.job()
    def resize(ctx: Context, path: str, width: int = 10) -> str:
        return path

    assert resize.signature.takes_context
    assert resize.signature.names == ("path", "width")
    schema = resize.signature.model.model_json_schema()
    assert set(schema["properties"]) == {"path", "width"}
    assert schema["required"] == ["path"]
    # the first positional argument of a call is the first parameter after ctx
    assert resize.signature.encode_call(("a.png",), {}) == {"path": "a.png", "width": 10}
    assert resize.signature.encode_call((), {"path": "b.png", "width": 3}) == {
        "path": "b.png",
        "width": 3,
    }


async def test_context_detected_on_async_handler_with_string_annotation(reg: Registry) -> None:
    @reg.job()
    async def work(ctx: "Context", n: int) -> int:
        return n

    assert work.is_async
    assert work.signature.takes_context
    assert work.signature.names == ("n",)


def test_handler_without_context_takes_every_parameter(reg: Registry) -> None:
    @reg.job()
    def plain(ctx: str, n: int) -> None:  # named ctx but not a Context
        ...

    assert not plain.signature.takes_context
    assert plain.signature.names == ("ctx", "n")
    assert plain.signature.encode_call(("c", 1), {}) == {"ctx": "c", "n": 1}


def test_context_not_first_is_rejected(reg: Registry) -> None:
    with pytest.raises(TypeError, match="Context parameter must come first"):

        @reg.job()
        def bad(path: str, ctx: Context) -> None: ...

    assert "bad" not in reg.jobs


def test_pydantic_model_parameter_is_part_of_the_arguments_model(reg: Registry) -> None:
    @reg.job()
    def draw(ctx: Context, p: Point, label: str = "") -> None: ...

    assert draw.signature.names == ("p", "label")
    assert draw.signature.encode_call(({"x": 1, "y": 2},), {}) == {
        "p": {"x": 1, "y": 2},
        "label": "",
    }


# -- bad declarations --------------------------------------------------------------------------


def test_unknown_option_raises_config_error_naming_valid_options(reg: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        reg.job(queue="q", retries=3)
    message = str(info.value)
    assert "'retries'" in message
    for option in VALID_OPTIONS:
        assert option in message
    assert reg.jobs == {}


def test_several_unknown_options_are_all_named(reg: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        reg.job(colour="red", retries=3)
    assert "'colour'" in str(info.value)
    assert "'retries'" in str(info.value)


def test_duplicate_job_name_is_rejected(reg: Registry) -> None:
    @reg.job()
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ConfigError, match="'add' is already registered"):

        @reg.job()
        def add(a: int, b: int) -> int:
            return a - b

    # the first one is still the registered one
    assert reg.get("add").fn(3, 1) == 4


def test_duplicate_name_given_by_name_option_is_rejected(reg: Registry) -> None:
    @reg.job()
    def add() -> None: ...

    with pytest.raises(ConfigError, match="already registered"):

        @reg.job(name="add")
        def something_else() -> None: ...

    assert list(reg.jobs) == ["add"]


def test_same_function_name_under_another_name_is_fine(reg: Registry) -> None:
    @reg.job()
    def add() -> None: ...

    @reg.job(name="add_again")
    def add() -> None:  # noqa: F811
        ...

    assert sorted(reg.jobs) == ["add", "add_again"]


def test_bare_decorator_without_parentheses_is_a_clear_type_error(reg: Registry) -> None:
    with pytest.raises(TypeError, match=r"@registry\.job\(\) with parentheses"):

        @reg.job  # type: ignore[arg-type]
        def add(a: int, b: int) -> int:
            return a + b

    assert reg.jobs == {}


def test_decorating_something_not_callable_is_a_type_error(reg: Registry) -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        reg.job()(42)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "handler_source",
    [
        "def handler(*args: int) -> None: ...",
        "def handler(a: int, **kwargs: int) -> None: ...",
        "async def handler(ctx: Context, *items: str) -> None: ...",
    ],
)
def test_var_args_handlers_are_rejected(reg: Registry, handler_source: str) -> None:
    namespace: dict[str, Any] = {"Context": Context}
    exec(handler_source, namespace)
    with pytest.raises(TypeError, match=r"named parameters only"):
        reg.job()(namespace["handler"])
    assert "handler" not in reg.jobs


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": 10}, "priority"),
        ({"priority": -1}, "priority"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"result_ttl": -5}, "result_ttl"),
        ({"queue": "bad queue"}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": "q" * 65}, "queue"),
        ({"name": "bad name"}, "name"),
        ({"name": "9starts-with-digit"}, "name"),
        ({"priority": "high"}, "priority"),
    ],
)
def test_bad_option_values_raise_config_error(
    reg: Registry, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:

        @reg.job(**options)
        def job() -> None: ...

    assert field in str(info.value)
    assert reg.jobs == {}


def test_retry_must_be_a_retry_object(reg: Registry) -> None:
    with pytest.raises(ConfigError, match=r"retry= takes a jobmaster\.Retry"):

        @reg.job(retry=3)
        def job() -> None: ...

    assert reg.jobs == {}


def test_function_name_that_is_not_a_valid_job_name_is_rejected(reg: Registry) -> None:
    with pytest.raises(ConfigError, match="<lambda>"):
        reg.job()(lambda: None)
    assert reg.jobs == {}
