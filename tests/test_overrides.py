"""Per-job overrides from pyproject.toml, jobmaster.toml and JOBMASTER_JOBS__* variables."""

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from jobmaster import ConfigError, JobHandler, Registry, Retry

VALID_CONFIG_OPTIONS = (
    "queue",
    "priority",
    "timeout",
    "result_ttl",
    "retry.max_attempts",
    "retry.backoff",
    "retry.max_backoff",
    "retry.jitter",
)

MakeRegistry = Callable[..., Registry]


@pytest.fixture
def make_registry(tmp_path: Path) -> MakeRegistry:
    """A registry reading configuration from ``tmp_path`` (or ``config_dir``) and ``environ``."""

    def make(environ: Mapping[str, str] | None = None, config_dir: Path | None = None) -> Registry:
        return Registry(
            "redis://127.0.0.1:1/0",  # never connected: configuration needs no Redis
            config_dir=config_dir or tmp_path,
            environ=dict(environ or {}),
        )

    return make


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def declare_add(registry: Registry, **options: Any) -> JobHandler[Any, Any]:
    @registry.job(**options)
    async def add(a: int, b: int) -> int:
        return a + b

    return add


# -- each source ------------------------------------------------------------------------------


def test_no_configuration_keeps_decorator_options(make_registry: MakeRegistry) -> None:
    add = declare_add(make_registry(), queue="math", timeout=5)
    assert add.definition.queue == "math"
    assert add.definition.timeout == 5
    assert add.definition.retry == Retry()


def test_pyproject_tool_table_overrides_decorator(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[project]
name = "app"

[tool.jobmaster.jobs.add]
queue = "math"
priority = 4
timeout = 60
result_ttl = 120
retry = { max_attempts = 5, backoff = 2.0, max_backoff = 30, jitter = false }
""",
    )
    add = declare_add(make_registry(), queue="default", timeout=5)
    d = add.definition
    assert (d.queue, d.priority, d.timeout, d.result_ttl) == ("math", 4, 60, 120)
    assert d.retry.max_attempts == 5
    assert d.retry.backoff == 2.0
    assert d.retry.max_backoff == 30
    assert d.retry.jitter is False


def test_pyproject_configures_only_the_named_job(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeout = 60\n")
    registry = make_registry()
    add = declare_add(registry)

    @registry.job(timeout=3)
    def other() -> None: ...

    assert add.definition.timeout == 60
    assert other.definition.timeout == 3


def test_jobmaster_toml_jobs_table_overrides_decorator(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(
        tmp_path / "jobmaster.toml",
        """
[jobs.add]
queue = "fast"
priority = 9

[jobs.add.retry]
max_attempts = 1
""",
    )
    add = declare_add(make_registry(), priority=1)
    assert add.definition.queue == "fast"
    assert add.definition.priority == 9
    assert add.definition.retry.max_attempts == 1


def test_environment_variables_override_decorator(make_registry: MakeRegistry) -> None:
    registry = make_registry(
        {
            "JOBMASTER_JOBS__ADD__TIMEOUT": "42.5",
            "JOBMASTER_JOBS__ADD__QUEUE": "env-queue",
            "JOBMASTER_JOBS__ADD__PRIORITY": "3",
            "JOBMASTER_JOBS__ADD__RESULT_TTL": "10",
            "JOBMASTER_JOBS__ADD__RETRY__MAX_ATTEMPTS": "7",
            "JOBMASTER_JOBS__ADD__RETRY__BACKOFF": "0.5",
            "JOBMASTER_JOBS__ADD__RETRY__MAX_BACKOFF": "9",
            "JOBMASTER_JOBS__ADD__RETRY__JITTER": "false",
        }
    )
    d = declare_add(registry, timeout=1).definition
    assert (d.timeout, d.queue, d.priority, d.result_ttl) == (42.5, "env-queue", 3, 10)
    assert (d.retry.max_attempts, d.retry.backoff, d.retry.max_backoff) == (7, 0.5, 9)
    assert d.retry.jitter is False


def test_environment_name_is_upper_cased_with_other_characters_as_underscores(
    make_registry: MakeRegistry,
) -> None:
    registry = make_registry({"JOBMASTER_JOBS__SEND_EMAIL_V2__TIMEOUT": "8"})

    @registry.job(name="send.email-v2")
    def send() -> None: ...

    assert send.definition.timeout == 8


def test_environment_variables_of_other_jobs_are_ignored(make_registry: MakeRegistry) -> None:
    registry = make_registry(
        {"JOBMASTER_JOBS__MUL__TIMEOUT": "99", "JOBMASTER_JOBS__ADDX__TIMEOUT": "98"}
    )
    assert declare_add(registry, timeout=2).definition.timeout == 2


def test_retry_override_keeps_unconfigured_retry_fields_of_the_decorator(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "jobmaster.toml", "[jobs.add]\nretry = { max_attempts = 8 }\n")
    retry = Retry(max_attempts=2, backoff=0.25, retry_on=(KeyError,), dont_retry_on=(ValueError,))
    d = declare_add(make_registry(), retry=retry).definition
    assert d.retry.max_attempts == 8
    assert d.retry.backoff == 0.25
    assert d.retry.retry_on == (KeyError,)
    assert d.retry.dont_retry_on == (ValueError,)


def test_override_applies_to_the_name_given_by_the_decorator(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "jobmaster.toml", "[jobs.sum]\npriority = 6\n")
    add = declare_add(make_registry(), name="sum")
    assert add.definition.priority == 6


# -- precedence -----------------------------------------------------------------------------------


def test_precedence_env_over_jobmaster_toml_over_pyproject_over_decorator(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[tool.jobmaster.jobs.add]
queue = "from-pyproject"
priority = 1
timeout = 10
retry = { max_attempts = 2, backoff = 2.0, max_backoff = 20 }
""",
    )
    write(
        tmp_path / "jobmaster.toml",
        """
[jobs.add]
priority = 2
timeout = 20
retry = { backoff = 3.0, max_backoff = 30 }
""",
    )
    registry = make_registry(
        {"JOBMASTER_JOBS__ADD__TIMEOUT": "30", "JOBMASTER_JOBS__ADD__RETRY__MAX_BACKOFF": "40"}
    )
    d = declare_add(
        registry,
        queue="from-decorator",
        priority=0,
        timeout=1,
        result_ttl=5,
        retry=Retry(max_attempts=9, backoff=9.0, max_backoff=90, jitter=False),
    ).definition
    assert d.result_ttl == 5  # decorator only
    assert d.queue == "from-pyproject"  # pyproject over decorator
    assert d.priority == 2  # jobmaster.toml over pyproject
    assert d.timeout == 30  # environment over both files
    assert d.retry.jitter is False  # decorator only
    assert d.retry.max_attempts == 2  # pyproject
    assert d.retry.backoff == 3.0  # jobmaster.toml
    assert d.retry.max_backoff == 40  # environment


# -- discovery ------------------------------------------------------------------------------------


def test_files_are_found_from_a_parent_directory(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeout = 60\n")
    write(tmp_path / "jobmaster.toml", "[jobs.add]\npriority = 5\n")
    nested = tmp_path / "src" / "app" / "jobs"
    nested.mkdir(parents=True)
    d = declare_add(make_registry(config_dir=nested)).definition
    assert d.timeout == 60
    assert d.priority == 5


def test_only_the_nearest_directory_with_a_file_is_used(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeout = 60\n")
    child = tmp_path / "service"
    write(child / "jobmaster.toml", "[jobs.add]\npriority = 5\n")
    d = declare_add(make_registry(config_dir=child)).definition
    assert d.priority == 5
    assert d.timeout is None  # the parent's pyproject.toml is not read


def test_pyproject_without_jobmaster_table_configures_nothing(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "app"\n[tool.ruff]\nline-length = 99\n')
    registry = make_registry()
    assert declare_add(registry, timeout=4).definition.timeout == 4
    registry.check_config()


# -- unknown options --------------------------------------------------------------------------


def assert_names_valid_options(message: str) -> None:
    for option in VALID_CONFIG_OPTIONS:
        assert option in message, f"{option!r} missing from: {message}"


@pytest.mark.parametrize(
    ("filename", "text", "bad"),
    [
        ("pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeuot = 5\n", "timeuot"),
        ("pyproject.toml", "[tool.jobmaster.jobs.add]\nretry = { attempts = 5 }\n", "attempts"),
        ("jobmaster.toml", "[jobs.add]\nname = 'other'\n", "name"),
        ("jobmaster.toml", "[jobs.add.retry]\nretry_on = ['KeyError']\n", "retry_on"),
    ],
)
def test_unknown_option_in_a_file_is_a_config_error(
    make_registry: MakeRegistry, tmp_path: Path, filename: str, text: str, bad: str
) -> None:
    path = write(tmp_path / filename, text)
    registry = make_registry()
    with pytest.raises(ConfigError) as info:
        declare_add(registry)
    message = str(info.value)
    assert bad in message
    assert "'add'" in message
    assert str(path) in message  # says which file
    assert_names_valid_options(message)
    assert registry.jobs == {}


@pytest.mark.parametrize(
    ("var", "bad"),
    [
        ("JOBMASTER_JOBS__ADD__TIMEUOT", "timeuot"),
        ("JOBMASTER_JOBS__ADD__RETRY__ATTEMPTS", "attempts"),
        (
            "JOBMASTER_JOBS__ADD__RETRY__MAX_ATTEMPTS__X",
            "JOBMASTER_JOBS__ADD__RETRY__MAX_ATTEMPTS__X",
        ),
    ],
)
def test_unknown_option_in_environment_is_a_config_error(
    make_registry: MakeRegistry, var: str, bad: str
) -> None:
    registry = make_registry({var: "5"})
    with pytest.raises(ConfigError) as info:
        declare_add(registry)
    message = str(info.value)
    assert bad in message
    assert "environment" in message
    assert_names_valid_options(message)


# -- invalid values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("pyproject.toml", "[tool.jobmaster.jobs.add]\npriority = 10\n"),
        ("pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeout = -1\n"),
        ("pyproject.toml", "[tool.jobmaster.jobs.add]\nqueue = 'no spaces'\n"),
        ("jobmaster.toml", "[jobs.add]\nretry = { max_attempts = 0 }\n"),
        ("jobmaster.toml", "[jobs.add]\nretry = { backoff = -1.0 }\n"),
        ("jobmaster.toml", "[jobs.add]\nresult_ttl = 'soon'\n"),
    ],
)
def test_invalid_value_in_a_file_is_a_config_error(
    make_registry: MakeRegistry, tmp_path: Path, filename: str, text: str
) -> None:
    write(tmp_path / filename, text)
    registry = make_registry()
    with pytest.raises(ConfigError, match="'add'"):
        declare_add(registry)
    assert registry.jobs == {}


@pytest.mark.parametrize(
    "environ",
    [
        {"JOBMASTER_JOBS__ADD__TIMEOUT": "soon"},
        {"JOBMASTER_JOBS__ADD__PRIORITY": "11"},
        {"JOBMASTER_JOBS__ADD__RETRY__MAX_ATTEMPTS": "many"},
        {"JOBMASTER_JOBS__ADD__RETRY__JITTER": "perhaps"},
    ],
)
def test_invalid_value_in_environment_is_a_config_error(
    make_registry: MakeRegistry, environ: dict[str, str]
) -> None:
    registry = make_registry(environ)
    with pytest.raises(ConfigError, match="'add'"):
        declare_add(registry)
    assert registry.jobs == {}


def test_invalid_toml_is_a_config_error(make_registry: MakeRegistry, tmp_path: Path) -> None:
    path = write(tmp_path / "jobmaster.toml", "[jobs.add\ntimeout = 5\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        make_registry()
    assert str(path) in str(info.value)


def test_jobs_entry_that_is_not_a_table_is_a_config_error(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "jobmaster.toml", "[jobs]\nadd = 5\n")
    with pytest.raises(ConfigError, match="one table per job"):
        make_registry()


# -- settings variables ---------------------------------------------------------------------------


def test_unknown_setting_variable_is_a_config_error_listing_valid_ones(
    make_registry: MakeRegistry,
) -> None:
    with pytest.raises(ConfigError) as info:
        make_registry({"JOBMASTER_REDIS_ULR": "redis://x"})
    message = str(info.value)
    assert "JOBMASTER_REDIS_ULR" in message
    for valid in (
        "JOBMASTER_REDIS_URL",
        "JOBMASTER_NAMESPACE",
        "JOBMASTER_RETENTION",
        "JOBMASTER_LEASE",
        "JOBMASTER_EVENTS_MAXLEN",
        "JOBMASTER_LOG_BYTES",
    ):
        assert valid in message


def test_misspelt_jobs_prefix_is_an_unknown_setting(make_registry: MakeRegistry) -> None:
    with pytest.raises(ConfigError, match="JOBMASTER_JOBS_ADD_TIMEOUT"):
        make_registry({"JOBMASTER_JOBS_ADD_TIMEOUT": "5"})


def test_dashboard_variables_are_not_registry_settings(make_registry: MakeRegistry) -> None:
    registry = make_registry(
        {"JOBMASTER_DASHBOARD_TOKEN": "secret", "JOBMASTER_DASHBOARD_USER": "admin"}
    )
    assert registry.settings.namespace == "jobmaster"


def test_setting_variables_are_read(tmp_path: Path) -> None:
    registry = Registry(
        config_dir=tmp_path,
        environ={
            "JOBMASTER_REDIS_URL": "redis://example:6380/2",
            "JOBMASTER_NAMESPACE": "app1",
            "JOBMASTER_RETENTION": "3600",
            "JOBMASTER_LEASE": "12",
            "PATH": "/usr/bin",  # not ours: ignored
        },
    )
    s = registry.settings
    assert (s.redis_url, s.namespace, s.retention, s.lease) == (
        "redis://example:6380/2",
        "app1",
        3600,
        12,
    )


def test_keyword_arguments_win_over_setting_variables(tmp_path: Path) -> None:
    registry = Registry(
        "redis://kw:1/0",
        namespace="kw",
        config_dir=tmp_path,
        environ={"JOBMASTER_REDIS_URL": "redis://env:1/0", "JOBMASTER_NAMESPACE": "env"},
    )
    assert registry.settings.redis_url == "redis://kw:1/0"
    assert registry.settings.namespace == "kw"


@pytest.mark.parametrize(
    "environ",
    [{"JOBMASTER_LEASE": "-1"}, {"JOBMASTER_NAMESPACE": "has space"}, {"JOBMASTER_RETENTION": "x"}],
)
def test_invalid_setting_value_is_a_config_error(
    make_registry: MakeRegistry, environ: dict[str, str]
) -> None:
    (name,) = environ
    with pytest.raises(ConfigError, match=name.removeprefix("JOBMASTER_").lower()):
        make_registry(environ)


# -- check_config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "table"), [("pyproject.toml", "tool.jobmaster.jobs"), ("jobmaster.toml", "jobs")]
)
def test_check_config_fails_for_a_configured_job_that_is_not_defined(
    make_registry: MakeRegistry, tmp_path: Path, filename: str, table: str
) -> None:
    write(tmp_path / filename, f"[{table}.add]\ntimeout = 5\n[{table}.ad]\ntimeout = 6\n")
    registry = make_registry()
    declare_add(registry)
    with pytest.raises(ConfigError) as info:
        registry.check_config()
    message = str(info.value)
    assert re.search(r"\bad\b", message)  # the misspelt table is named
    assert "does not define" in message
    assert "defined: add" in message


def test_check_config_passes_when_every_configured_job_is_defined(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.jobmaster.jobs.add]\ntimeout = 5\n")
    write(tmp_path / "jobmaster.toml", "[jobs.add]\npriority = 5\n")
    registry = make_registry()
    declare_add(registry)
    registry.check_config()  # does not raise


def test_check_config_with_no_jobs_defined_names_the_configured_one(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    write(tmp_path / "jobmaster.toml", "[jobs.resize]\ntimeout = 5\n")
    with pytest.raises(ConfigError, match=r"resize.*\(none\)"):
        make_registry().check_config()


def test_check_config_catches_a_variable_for_an_undefined_job(tmp_path: Path) -> None:
    registry = Registry(config_dir=tmp_path, environ={"JOBMASTER_JOBS__ADDD__TIMEOUT": "5"})

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ConfigError, match="JOBMASTER_JOBS__ADDD__"):
        registry.check_config()
