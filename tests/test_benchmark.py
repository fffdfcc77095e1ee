"""The benchmark's own command still runs: jobmaster's part, small, on its private Redis.

The figures themselves are not checked here (they depend on the machine): this guards the
command the README documents against breaking unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


@pytest.mark.timeout(120)
def test_the_side_by_side_part_reports_idle_and_back_to_back_latency(tmp_path: Path) -> None:
    # jobmaster and the bare-streams loop need nothing beyond jobmaster's own dependencies
    output = tmp_path / "peers.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_peers.py")]
    command += ["--only", "jobmaster,streams", "--jobs", "200", "--runs", "1"]
    command += ["--samples", "100", "--idle-samples", "20", "--idle-gap", "20,60"]
    command += ["--seed", "7", "--json", str(output)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=110, cwd=ROOT)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert (report["latency_samples"], report["idle_samples"]) == (100, 20)
    assert report["idle_gap_ms"] == [20, 60]
    assert report["seed"] == 7
    gaps = report["idle_gaps_ms"]
    assert len(gaps) == 20
    assert all(20 <= gap <= 60 for gap in gaps)
    assert len(set(gaps)) > 1  # random, not one fixed pause
    assert elapsed > 2 * sum(gaps) / 1000  # each library's worker was really left idle
    assert set(report["medians"]) == {"jobmaster", "streams"}
    for name, medians in report["medians"].items():
        for mode in ("idle", "b2b"):
            p50, p99 = medians[f"latency_{mode}_p50"], medians[f"latency_{mode}_p99"]
            assert 0 < p50 <= p99 < 1000, (name, mode, p50, p99)
    assert "latency idle" in result.stdout
    assert "back to back" in result.stdout
