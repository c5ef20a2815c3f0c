"""The machine and its roof: the achievable memory bandwidth, measured in the same run on the same device.

A norm is memory-bound, so its speed is stated as a fraction of what a plain copy reaches on the
same device. The roof is a STREAM-like *copy* (``dst[:] = src``) of arrays several times the
last-level cache, counted as STREAM counts it: ``2 · nbytes`` per copy (one read of ``src``, one
write of ``dst``). On the CPU it is measured with ``numpy.copyto`` and, when torch is installed,
``torch.Tensor.copy_``; on CUDA with a device-to-device ``torch.Tensor.copy_`` (or a jitted JAX
copy without torch). The roof is the best of them: what this machine demonstrably reaches. Each copy
is its adapter's (:attr:`BenchNatives.copy <normcheck.adapters.base.BenchNatives>`), as is the CUDA
device's name and L2 size (torch's ``BenchNatives.gpu``).

The last-level cache size is read, never assumed: ``/sys/devices/system/cpu/cpu0/cache/index*/``
(the highest level holding data), else ``lscpu``, else ``sysconf``; on CUDA the device's L2 size.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from normcheck.bench.timer import measure, no_sync

__all__ = ["cpu_name", "cpus", "llc", "machine", "measure_roof", "roof_array_bytes"]

SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def _size(text: str) -> int | None:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]?)(?:i?B)?\s*", text.strip(), re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _llc_sysfs(root: Path = SYS_CACHE) -> tuple[int, str] | None:
    best: tuple[int, int] | None = None
    for d in sorted(root.glob("index*")):
        try:
            level = int((d / "level").read_text())
            kind = (d / "type").read_text().strip()
            size = _size((d / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not size:
            continue
        if best is None or level > best[0]:
            best = (level, size)
    return (best[1], f"{root}/index* (L{best[0]})") if best else None


def _llc_lscpu() -> tuple[int, str] | None:
    try:
        out = subprocess.run(["lscpu", "-B"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for level in ("L3", "L2"):
        m = re.search(rf"^{level} cache:\s*([0-9]+)", out, re.MULTILINE)
        if m:
            return int(m.group(1)), f"lscpu ({level})"
    return None


def _llc_sysconf() -> tuple[int, str] | None:
    for level in ("LEVEL3", "LEVEL2"):
        try:
            v = os.sysconf(f"SC_{level}_CACHE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
        if v and v > 0:
            return int(v), f"sysconf ({level})"
    return None


def llc(device: str = "cpu") -> tuple[int, str]:
    """(last-level cache size in bytes, where it was read) for ``device``."""
    if device.startswith("cuda"):
        gpu = _gpu(device)
        if gpu["l2_bytes"]:
            return gpu["l2_bytes"], gpu["l2_source"]
        return 50 * 2**20, "unknown GPU L2: 50 MiB assumed"
    for how in (_llc_sysfs, _llc_lscpu, _llc_sysconf):
        got = how()
        if got:
            return got
    raise RuntimeError("could not read the last-level cache size (no sysfs cache info, lscpu or sysconf)")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _load() -> float | None:
    """The 1-minute load average at the start (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the numbers came from: CPU, cores, cache, memory, OS, Python, and the GPU if used."""
    size, source = llc(device)
    out: dict[str, Any] = {
        "device": device,
        "cpu": cpu_name(),
        "cores": cpus(),
        "llc_bytes": size,
        "llc_source": source,
        "memory_bytes": _memory_bytes(),
        "load_1min": _load(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if device.startswith("cuda"):
        out["gpu"] = _gpu(device)["name"]
    return out


def describe(m: dict[str, Any]) -> str:
    """One line: ``Intel(R) Xeon(R) Processor, 2 cores, LLC 260 MiB, 23 GiB RAM (Linux-...)``."""
    text = f"{m['cpu']}, {m['cores']} cores, LLC {m['llc_bytes'] / 2**20:.0f} MiB"
    if m.get("memory_bytes"):
        text += f", {m['memory_bytes'] / 2**30:.0f} GiB RAM"
    if m.get("gpu"):
        text = f"{m['gpu']} (L2 {m['llc_bytes'] / 2**20:.0f} MiB) on {m['cpu']}"
    return f"{text}; {m['platform']}"


def roof_array_bytes(llc_bytes: int, factor: float = 4.0, minimum: int = 64 * 2**20) -> int:
    """Size of each copied array: ``factor`` times the last-level cache (at least ``minimum``),
    a multiple of 4 KiB."""
    n = max(int(factor * llc_bytes), minimum)
    return -(-n // 4096) * 4096


def _natives(framework: str):
    from normcheck import adapters

    return adapters.get(framework).bench_natives()


def _gpu(device: str) -> dict[str, Any]:
    """The CUDA device described by the first installed framework whose bench can (torch's)."""
    from normcheck import adapters

    for a in adapters.installed():
        natives = a.bench_natives()
        if natives is not None and natives.gpu is not None:
            return natives.gpu(device)
    raise RuntimeError(f"no installed framework describes {device}")


def _copy(framework: str, nbytes: int, device: str, **timer):
    """(api, timing) of the framework's copy of ``nbytes`` (its adapter's ``BenchNatives.copy``)."""
    api, fn, sync = _natives(framework).copy(nbytes, device)
    return api, measure(fn, sync=sync or no_sync, **timer)


def measure_roof(device: str = "cpu", *, factor: float = 4.0, frameworks=None, quick: bool = False) -> dict[str, Any]:
    """Measure the copy roof on ``device``; returns ``{"device", "gbps", "api", "array_bytes",
    "copies": [{api, bytes, median_s, iqr_s, gbps}, ...]}`` (``gbps`` is the best copy's); on the CPU
    the copies of ``frameworks`` (default: all) besides NumPy's."""
    size, _ = llc(device)
    # at least 4x the last-level cache in every mode (a copy that fits in cache measures the cache,
    # not memory, and would make --quick's fractions incomparable); --quick only repeats less
    nbytes = roof_array_bytes(size, factor=max(factor, 4.0))
    timer = {"min_reps": 3 if quick else 10, "min_time": 0.05 if quick else 0.5, "warmup": 1}
    copies = []
    for fw in _copiers(device, frameworks):
        api, t = _copy(fw, nbytes, device, **timer)
        moved = 2 * nbytes
        copies.append(
            {
                "api": api,
                "bytes": moved,
                "median_s": t.median_s,
                "iqr_s": t.iqr_s,
                "reps": t.reps,
                "gbps": moved / t.median_s / 1e9,
            }
        )
    if not copies:
        raise RuntimeError(f"no way to measure a copy on {device}")
    best = max(copies, key=lambda c: c["gbps"])
    return {
        "device": device,
        "gbps": best["gbps"],
        "api": best["api"],
        "array_bytes": nbytes,
        "bytes_model": "2 · array bytes per copy (read src, write dst), as STREAM counts",
        "copies": copies,
    }


def _copiers(device: str, frameworks) -> list[str]:
    """The frameworks whose copy measures the roof (:attr:`~normcheck.adapters.Adapter.roof_devices`):
    on the CPU the first (NumPy's, always) and those of ``frameworks`` (None: all) that are installed; on a
    GPU the first installed."""
    from normcheck import adapters

    where = "cpu" if device == "cpu" else "cuda"
    able = [a.name for a in map(adapters.get, adapters.FRAMEWORKS) if where in a.roof_devices]
    if where == "cpu":
        chosen = [fw for fw in able[1:] if (frameworks is None or fw in frameworks) and adapters.get(fw).available()]
        return able[:1] + chosen
    return [fw for fw in able if adapters.get(fw).available()][:1]
