"""Facts about the machine this process runs on."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask: a container's or `taskset`'s limit, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
