"""What every benchmark shares: one case per fresh interpreter, its JSON result, the CPU's name.

Standard library only: `torch_device` runs on GPU machines that have torch and numpy and nothing else.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any


def run_isolated(command: Sequence[str], label: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one case in its own interpreter (its peak memory is its own); return the last JSON line it printed."""
    out = subprocess.run(list(command), capture_output=True, text=True, env=dict(env) if env else None, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"case {label} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    for line in reversed(out.stdout.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"case {label} printed no result:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")


def cpu_name() -> str:
    """The CPU model (Linux /proc/cpuinfo), else what the platform says."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or f"{os.cpu_count()} cores"


# ---- memory of this process (Linux /proc; graceful elsewhere) ----
# A child's ru_maxrss includes its parent's peak on Linux: each case measures itself, in its own interpreter.


def status_mib(field: str) -> float | None:
    """A /proc/self/status memory field (VmRSS, VmHWM) in MiB, or None where /proc is unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS since it started (getrusage; bytes on macOS, KiB on Linux)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (Linux >= 4.0), so that VmHWM measures from here on."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
