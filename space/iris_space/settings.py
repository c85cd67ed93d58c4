"""The Space's settings, read once from the environment (Space variables on a hosted Space)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    try:
        return max(minimum, int(os.environ.get(name, default)))
    except ValueError:
        return default


def available_cpus(cgroup_root: str | os.PathLike = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (a container's limit).

    `os.cpu_count()` is the host's count; a Space container sees the host's cores but may run on two.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    root = Path(cgroup_root)
    quota = None
    try:  # cgroup v2: "max 100000" or "200000 100000"
        q, period = (root / "cpu.max").read_text().split()[:2]
        if q != "max":
            quota = int(q) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            if q > 0 and period > 0:
                quota = q / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


THREADS = _env_int("IRIS_SPACE_THREADS", available_cpus())
N_CTX = _env_int("IRIS_SPACE_N_CTX", 4096)
MAX_CHARS = _env_int("IRIS_SPACE_MAX_CHARS", 8000)  # one message
MAX_TURNS = _env_int("IRIS_SPACE_MAX_TURNS", 50)  # earlier turns (a user message and its reply) in one request
MAX_HISTORY_CHARS = _env_int("IRIS_SPACE_MAX_HISTORY_CHARS", 64000)  # all earlier messages together
MAX_NEW_TOKENS = _env_int("IRIS_SPACE_MAX_NEW_TOKENS", 4096)  # the longest reply a request may ask for
QUEUE_SIZE = _env_int("IRIS_SPACE_QUEUE_SIZE", 16)
CONCURRENCY = _env_int("IRIS_SPACE_CONCURRENCY", 2)
# Models in memory at once. Comparing with the base model needs two.
MAX_MODELS = _env_int("IRIS_SPACE_MAX_MODELS", 2)
# How long a request waits for a model slot while every loaded model is answering someone else.
LOAD_WAIT_S = _env_int("IRIS_SPACE_LOAD_WAIT_S", 120, minimum=0)
# Saved KV states of conversations (all models together), least recently used dropped first; 0 turns it off.
KV_CACHE_MB = _env_int("IRIS_SPACE_KV_CACHE_MB", 1024, minimum=0)
# At most this many UI updates a second per reply: a per-token update costs the server (diffing, SSE) and the
# browser CPU time that the model decodes on, and nobody reads faster than ~20 updates a second.
UPDATES_PER_S = _env_int("IRIS_SPACE_UPDATES_PER_S", 20)
# How often Gradio's queue looks for new requests and (Gradio < 6.11) an event stream for its next update (ms); it
# polls even when idle, on the cores the models decode on.
QUEUE_POLL_S = _env_int("IRIS_SPACE_QUEUE_POLL_MS", 10) / 1000
# Speech recognizer: "pocketsphinx" (offline, its model ships in the package) or "whisper" (faster-whisper, model
# downloaded from the Hub; pocketsphinx is the fallback when it cannot load).
ASR = os.environ.get("IRIS_SPACE_ASR", "pocketsphinx").strip().lower()
WHISPER_MODEL = os.environ.get("IRIS_SPACE_WHISPER_MODEL", "base.en")
MAX_AUDIO_S = _env_int("IRIS_SPACE_MAX_AUDIO_S", 60)
MAX_AUDIO_MB = _env_int("IRIS_SPACE_MAX_AUDIO_MB", 20)
# The OpenAI-compatible API (/v1): the bearer token it requires (none: open to whoever reaches the port) and the
# largest request body it reads.
API_KEY = os.environ.get("IRIS_SPACE_API_KEY") or None
MAX_REQUEST_KB = _env_int("IRIS_SPACE_MAX_REQUEST_KB", 1024)
