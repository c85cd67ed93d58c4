"""Facts about the machine this process runs on, and the environment its child processes get."""

from __future__ import annotations

import os
from pathlib import Path

from iris_recipes.errors import IrisError


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask: a container's or `taskset`'s limit, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_description() -> str:
    """This machine's CPU model and core count, as a model card names the machine that measured a speed."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or 'CPU'}, {os.cpu_count()} cores"


# Overrides what cpu_has_bf16 finds, so one machine can measure and test both CPU precision paths: 0 takes the
# fp32 path (as on a CPU without native bf16), 1 the bf16 path; unset or empty: detected.
CPU_BF16_ENV = "IRIS_CPU_BF16"


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX-BF16, Arm BF16): there bf16 training runs
    ~1.7x faster than fp32; elsewhere PyTorch emulates it, slower than fp32. Linux only (/proc/cpuinfo).
    IRIS_CPU_BF16=0 or 1 decides instead when this machine is asked (`cpuinfo` not given)."""
    if cpuinfo is None:
        forced = os.environ.get(CPU_BF16_ENV, "").strip()
        if forced:
            if forced not in ("0", "1"):
                raise IrisError(f"{CPU_BF16_ENV}={forced!r}: give 0 (fp32 on CPU) or 1 (bf16 on CPU), or unset it")
            return forced == "1"
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return False


# The folder holding the iris_recipes package: a child process put it first on its path imports this very copy.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


def env_flag(name: str, env: dict[str, str] | None = None) -> bool:
    """A boolean environment variable as Hugging Face's libraries read it (HF_HUB_OFFLINE=1, true, yes, on)."""
    return (os.environ if env is None else env).get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline(env: dict[str, str] | None = None, *, datasets: bool = False) -> bool:
    """Whether Hugging Face's offline mode is on (HF_HUB_OFFLINE; with `datasets`, HF_DATASETS_OFFLINE too)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    return any(env_flag(name, env) for name in names)


def prepend_pythonpath(env: dict[str, str], *paths: str) -> dict[str, str]:
    """`env` (changed in place) with `paths` first on PYTHONPATH, before what it had."""
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    return env


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this environment) for a Python child that must import this same iris_recipes,
    installed or not."""
    return prepend_pythonpath(dict(os.environ if base is None else base), PACKAGE_ROOT)
