"""What this machine lets the course use."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its affinity, which `taskset` or a container's cpuset
    narrows below the machine's count (a CPU quota such as `docker --cpus` is not seen here)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
