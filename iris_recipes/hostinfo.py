"""Facts about the machine this process runs on."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask: a container's or `taskset`'s limit, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def env_flag(name: str) -> bool:
    """A boolean environment variable as Hugging Face's libraries read it (HF_HUB_OFFLINE=1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
