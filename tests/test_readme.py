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


def test_the_first_example_runs_against_a_worker(redis_url: str, tmp_path: Path) -> None:
    example = python_blocks()[0]
    assert "@registry.job" in example
    (tmp_path / "app.py").write_text(example)
    env = {**os.environ, "JOBMASTER_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobmaster.cli", "worker", "app:registry"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        done = subprocess.run(
            [sys.executable, "app.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "3"
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out


def test_the_readme_names_the_commands_that_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme
    assert "scripts/demo" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
