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
