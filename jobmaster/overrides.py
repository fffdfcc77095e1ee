"""Job options from configuration, so that defaults change without touching code.

Sources, the later winning: the decorator's arguments, ``[tool.jobmaster.jobs.NAME]`` in
pyproject.toml, ``[jobs.NAME]`` in jobmaster.toml, then ``JOBMASTER_JOBS__NAME__OPTION``
variables (``JOBMASTER_JOBS__NAME__RETRY__MAX_ATTEMPTS`` for retry fields; NAME upper-cased
with every character other than a letter or digit as ``_``). The files are looked up in
the working directory and its parents; the first directory holding either is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobmaster.definition import OPTIONS, RETRY_OPTIONS, JobDefinition, Retry
from jobmaster.errors import ConfigError
from jobmaster.settings import JOBS_ENV_PREFIX

VALID = (*OPTIONS, *(f"retry.{o}" for o in RETRY_OPTIONS))


def env_name(job_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", job_name).upper()


@dataclass
class JobConfig:
    """Per-job option tables found in files and variables, by job name (or env name)."""

    tables: list[tuple[str, dict[str, dict[str, Any]]]] = field(default_factory=list)
    """(source description, {job name: options}) in increasing precedence."""
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def discover(
        cls, start: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> JobConfig:
        config = cls(environ=os.environ if environ is None else environ)
        directory = (start or Path.cwd()).resolve()
        for folder in (directory, *directory.parents):
            pyproject, own = folder / "pyproject.toml", folder / "jobmaster.toml"
            if pyproject.is_file() or own.is_file():
                if pyproject.is_file():
                    table = _read(pyproject).get("tool", {}).get("jobmaster", {})
                    config.tables.append((str(pyproject), _jobs_table(table, pyproject)))
                if own.is_file():
                    config.tables.append((str(own), _jobs_table(_read(own), own)))
                break
        return config

    def configured_names(self) -> set[str]:
        """Job names that the files configure (to catch a misspelt table)."""
        return {name for _, jobs in self.tables for name in jobs}

    def configured_env_names(self) -> set[str]:
        """The NAME part of every JOBMASTER_JOBS__NAME__OPTION variable."""
        return {
            var[len(JOBS_ENV_PREFIX) :].split("__", 1)[0]
            for var in self.environ
            if var.startswith(JOBS_ENV_PREFIX)
        }

    def apply(self, definition: JobDefinition) -> JobDefinition:
        """The definition with every configured override for its name applied."""
        merged: dict[str, Any] = {}
        retry: dict[str, Any] = {}
        for source, jobs in self.tables:
            _merge(jobs.get(definition.name, {}), merged, retry, source, definition.name)
        _merge(self._from_env(definition.name), merged, retry, "environment", definition.name)
        if not merged and not retry:
            return definition
        data = definition.model_dump(exclude={"retry"})
        data.update(merged)
        try:
            data["retry"] = (
                Retry(**{**_retry_values(definition.retry), **retry}) if retry else definition.retry
            )
            return JobDefinition.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"invalid configured options for job {definition.name!r}: {exc}"
            ) from None

    def _from_env(self, job_name: str) -> dict[str, Any]:
        prefix = f"{JOBS_ENV_PREFIX}{env_name(job_name)}__"
        table: dict[str, Any] = {}
        for var, value in self.environ.items():
            if not var.startswith(prefix):
                continue
            path = var[len(prefix) :].lower().split("__")
            if len(path) == 2 and path[0] == "retry":
                table.setdefault("retry", {})[path[1]] = value
            elif len(path) == 1:
                table[path[0]] = value
            else:
                table[var] = value  # reported as unknown below
        return table


def _retry_values(retry: Retry) -> dict[str, Any]:
    return {name: getattr(retry, name) for name in Retry.model_fields}


def _merge(
    table: Mapping[str, Any], merged: dict[str, Any], retry: dict[str, Any], source: str, job: str
) -> None:
    for key, value in table.items():
        if key == "retry" and isinstance(value, Mapping):
            for rkey, rvalue in value.items():
                if rkey not in RETRY_OPTIONS:
                    raise _unknown(f"retry.{rkey}", source, job)
                retry[rkey] = rvalue
        elif key in OPTIONS:
            merged[key] = value
        else:
            raise _unknown(key, source, job)


def _unknown(key: str, source: str, job: str) -> ConfigError:
    return ConfigError(
        f"unknown option {key!r} for job {job!r} in {source}; valid options: {', '.join(VALID)}"
    )


def _read(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read

    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _jobs_table(table: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    jobs = table.get("jobs", {})
    if not isinstance(jobs, dict) or not all(isinstance(v, dict) for v in jobs.values()):
        raise ConfigError(f"{path}: 'jobs' must hold one table per job name")
    return jobs
