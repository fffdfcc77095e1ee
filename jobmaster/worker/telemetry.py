"""Telemetry: the worker process's and its host's figures, sampled by the heartbeat (once per
heartbeat interval, never per job) from psutil, and GPUs from NVML when ``nvidia-ml-py`` is
installed (``pip install jobmaster[gpu]``).

psutil is imported by the first sampler made, not with this module: it takes a good part of
a worker's start, and a process that imports the worker without running one never needs it."""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from jobmaster.models import GpuTelemetry, WorkerTelemetry


class TelemetrySampler:
    """Samples :class:`WorkerTelemetry`; rates and CPU use are averaged since the last sample
    (the first sample's since the sampler was made)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call of each only starts the count
        psutil.cpu_percent(None)
        self._at = time.monotonic()
        self._disk = _disk_bytes()
        self._net = _net_bytes()
        self._nvml = _open_nvml()

    def sample(self) -> WorkerTelemetry:
        """The figures now (a few reads of /proc; NVML calls when it has GPUs)."""
        import psutil

        now = time.monotonic()
        elapsed = max(now - self._at, 1e-3)
        disk, net = _disk_bytes(), _net_bytes()
        figures = WorkerTelemetry(
            cpu_percent=self._process.cpu_percent(None),
            rss_bytes=self._process.memory_info().rss,
            host_cpu_percent=psutil.cpu_percent(None),
            host_memory_percent=psutil.virtual_memory().percent,
            load_avg=os.getloadavg(),
            disk_read_bytes_per_second=max(disk[0] - self._disk[0], 0) / elapsed,
            disk_write_bytes_per_second=max(disk[1] - self._disk[1], 0) / elapsed,
            net_sent_bytes_per_second=max(net[0] - self._net[0], 0) / elapsed,
            net_recv_bytes_per_second=max(net[1] - self._net[1], 0) / elapsed,
            gpus=_gpus(self._nvml) if self._nvml is not None else [],
        )
        self._at, self._disk, self._net = now, disk, net
        return figures


def _disk_bytes() -> tuple[int, int]:
    import psutil

    counters = psutil.disk_io_counters()
    return (0, 0) if counters is None else (counters.read_bytes, counters.write_bytes)


def _net_bytes() -> tuple[int, int]:
    import psutil

    counters = psutil.net_io_counters()
    return (0, 0) if counters is None else (counters.bytes_sent, counters.bytes_recv)


def _open_nvml() -> Any:
    """The NVML module, initialised, when ``nvidia-ml-py`` is installed and a driver
    answers; else None (no GPUs are listed)."""
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # not installed, no driver, no GPU: nothing to list
        return None
    return nvml


def _gpus(nvml: Any) -> list[GpuTelemetry]:
    """Each GPU's utilisation and memory (none if NVML stops answering)."""
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            device = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(device)
            memory = nvml.nvmlDeviceGetMemoryInfo(device)
            gpus.append(
                GpuTelemetry(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    utilization_percent=float(nvml.nvmlDeviceGetUtilizationRates(device).gpu),
                    memory_used_bytes=int(memory.used),
                    memory_total_bytes=int(memory.total),
                )
            )
        return gpus
    except Exception:
        return []
