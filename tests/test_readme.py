"""The README's example runs as written: a worker process and the script itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_against_a_worker(example: str, module: str, redis_url: str, tmp_path: Path) -> str:
    """Save an example as ``module``.py, run ``jobmaster worker module:registry`` and then
    the example as a script, as the README tells; the script's output."""
    (tmp_path / f"{module}.py").write_text(example)
    env = {**os.environ, "JOBMASTER_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobmaster.cli", "worker", f"{module}:registry"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        done = subprocess.run(
            [sys.executable, f"{module}.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    return done.stdout


def test_the_first_example_runs_against_a_worker(redis_url: str, tmp_path: Path) -> None:
    example = python_blocks()[0]
    assert "@registry.job" in example
    assert run_against_a_worker(example, "app", redis_url, tmp_path).strip() == "3"


def test_the_relations_example_runs_against_a_worker(redis_url: str, tmp_path: Path) -> None:
    (example,) = [block for block in python_blocks() if "enqueue_group" in block]
    assert "python pipeline.py" in (ROOT / "README.md").read_text()
    printed = run_against_a_worker(example, "pipeline", redis_url, tmp_path).splitlines()
    # each print is followed by a comment that says what it prints
    said = re.findall(r"print\(.*\)  # (.*)", example)
    assert printed == said == ["a.csv is in", "[10, 10, 10]", "30", "b.csv is in"]


def test_the_readme_names_the_commands_that_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme
    assert "scripts/demo" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
