"""The telemetry sampler alone: GPUs listed from NVML when `nvidia-ml-py` answers, none
when it is absent or fails (pure logic: NVML is replaced by a stand-in module)."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest

from jobmaster.worker.telemetry import TelemetrySampler


def _nvml(count: int, fail_init: bool = False) -> ModuleType:
    module = ModuleType("pynvml")

    def init() -> None:
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda d: b"Tesla T4"  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda d: SimpleNamespace(  # type: ignore[attr-defined]
        used=(d + 1) * 2**30, total=16 * 2**30
    )
    module.nvmlDeviceGetUtilizationRates = lambda d: SimpleNamespace(  # type: ignore[attr-defined]
        gpu=40 + d
    )
    return module


def test_gpus_are_listed_when_nvml_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _nvml(2))
    gpus = TelemetrySampler().sample().gpus
    assert [(g.index, g.name, g.utilization_percent) for g in gpus] == [
        (0, "Tesla T4", 40.0),
        (1, "Tesla T4", 41.0),
    ]
    assert [g.memory_used_bytes for g in gpus] == [2**30, 2 * 2**30]
    assert {g.memory_total_bytes for g in gpus} == {16 * 2**30}


def test_no_gpus_without_nvml_or_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: the import fails
    assert TelemetrySampler().sample().gpus == []
    monkeypatch.setitem(sys.modules, "pynvml", _nvml(1, fail_init=True))
    assert TelemetrySampler().sample().gpus == []
