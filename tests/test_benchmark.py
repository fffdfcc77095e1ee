"""The benchmark's own command still runs: jobmaster's part, small, on its private Redis.

The figures themselves are not checked here (they depend on the machine): this guards the
command the README documents against breaking unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_the_benchmark_command_runs_and_writes_its_figures(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--skip-peers", "--quick"]
    command += ["--jobs", "300", "--runs", "1", "--samples", "100", "--json", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert set(report) == {"core"}
    medians = report["core"]["medians"]
    assert report["core"]["jobs"] == 300
    for figure in ("enqueue_bulk", "process", "scale_1", "scale_4", "redis_mb_per_100k"):
        assert medians[figure] > 0, figure
    assert 0 < medians["round_trips_per_job"] < 1  # claims and completions are batched
    assert "processing, 1 process" in result.stdout
