"""How training is launched: the accelerate (or torchrun) command line and its environment.

`--num-processes` / `--gpus` count processes per node (like torchrun's --nproc_per_node); accelerate's own
`--num_processes` is the total over all nodes, so the command carries num_processes x nnodes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.hostinfo import PACKAGE_ROOT, cpu_count, hub_offline, prepend_pythonpath

# The `run` options that choose how training is launched (recorded in run.json; a resume must not change them).
LAUNCH_OPTIONS = (
    "device",
    "num_processes",
    "gpus",
    "nnodes",
    "node_rank",
    "main_process_ip",
    "main_process_port",
    "launcher",
    "deepspeed",
    "fsdp",
)

DEEPSPEED_STAGES = ("zero1", "zero2", "zero3", "zero3-offload")
LAUNCHERS = ("accelerate", "torchrun")
TRAIN_MODULE = "axolotl.cli.train"
DEFAULT_PORT = 29500

# Every launch: no hub or dataset downloads when offline, no telemetry, no experiment trackers.
QUIET_ENV = {
    "WANDB_MODE": "disabled",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Training on CPU: glibc's malloc keeps freed memory instead of handing large blocks (logits, MLP activations: over
# its 32 MiB mmap limit) back to the kernel at every free and faulting them in again at the next step. The same
# adapter with fewer page faults: smollm2-demo's 40 steps in 112 s against 125 s on 2 cores (benchmarks/RESULTS.md).
CPU_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


@dataclass(frozen=True)
class LaunchSpec:
    device: str = "cpu"  # "cpu" or "gpu"
    num_processes: int = 1  # per node
    nnodes: int = 1
    node_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int = DEFAULT_PORT
    launcher: str = "accelerate"
    deepspeed: str | None = None  # one of DEEPSPEED_STAGES
    fsdp: bool = False
    cpu_threads: int = 1  # OMP threads per process

    @property
    def world_size(self) -> int:
        return self.num_processes * self.nnodes

    def to_dict(self) -> dict:
        return asdict(self)


def make_spec(
    *,
    num_processes: int | None = None,
    gpus: int | None = None,
    nnodes: int = 1,
    node_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    launcher: str = "accelerate",
    deepspeed: str | None = None,
    fsdp: bool = False,
    device: str = "auto",
    cuda_available: bool | None = None,
) -> LaunchSpec:
    """A checked LaunchSpec from the command-line flags; every mistake is an IrisError (exit 2)."""
    problems = []
    if num_processes is not None and gpus is not None and num_processes != gpus:
        problems.append(f"--num-processes {num_processes} and --gpus {gpus} disagree; give one of them")
    for flag, value in (("--num-processes", num_processes), ("--gpus", gpus), ("--nnodes", nnodes)):
        if value is not None and value < 1:
            problems.append(f"{flag} must be at least 1 (got {value})")
    if nnodes and not (0 <= node_rank < max(nnodes, 1)):
        problems.append(f"--node-rank {node_rank} must be between 0 and --nnodes - 1 ({nnodes - 1})")
    if nnodes > 1 and not main_process_ip:
        problems.append("--nnodes > 1 needs --main-process-ip (the address of node 0, reachable from every node)")
    if deepspeed is not None and deepspeed not in DEEPSPEED_STAGES:
        problems.append(f"--deepspeed {deepspeed!r}: choose one of {', '.join(DEEPSPEED_STAGES)}")
    if deepspeed and fsdp:
        problems.append("--deepspeed and --fsdp are alternatives; choose one")
    if launcher not in LAUNCHERS:
        problems.append(f"--launcher {launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if main_process_port is not None and not (1 <= main_process_port <= 65535):
        problems.append(f"--main-process-port {main_process_port} is not a TCP port")
    if device == "cpu" and (gpus is not None or deepspeed or fsdp):
        problems.append("--device cpu cannot be combined with --gpus, --deepspeed or --fsdp (CUDA only)")
    if device not in ("auto", "cpu", "gpu"):
        problems.append(f"--device {device!r}: choose auto, cpu or gpu")
    if problems:
        raise IrisError("\n".join(problems))

    if device == "auto":
        if gpus is not None or deepspeed or fsdp:
            device = "gpu"
        else:
            device = "gpu" if (_cuda_available() if cuda_available is None else cuda_available) else "cpu"
    procs = gpus or num_processes or 1
    threads = max(1, cpu_count() // procs) if device == "cpu" else max(1, min(8, cpu_count() // procs))
    return LaunchSpec(
        device=device,
        num_processes=procs,
        nnodes=nnodes,
        node_rank=node_rank,
        main_process_ip=main_process_ip,
        main_process_port=main_process_port or DEFAULT_PORT,
        launcher=launcher,
        deepspeed=deepspeed,
        fsdp=fsdp,
        cpu_threads=threads,
    )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_command(spec: LaunchSpec, config_file: str = "axolotl.yaml") -> list[str]:
    """The launch command as it is shown and run (its first word is resolved by `executable_argv`)."""
    if spec.launcher == "torchrun":
        cmd = ["torchrun", "--nproc_per_node", str(spec.num_processes), "--nnodes", str(spec.nnodes)]
        if spec.nnodes > 1:
            cmd += [
                "--node_rank",
                str(spec.node_rank),
                "--master_addr",
                str(spec.main_process_ip),
                "--master_port",
                str(spec.main_process_port),
            ]
        elif spec.main_process_port != DEFAULT_PORT:
            cmd += ["--master_port", str(spec.main_process_port)]
        return cmd + ["-m", TRAIN_MODULE, config_file]

    cmd = ["accelerate", "launch"]
    if spec.device == "cpu" and spec.world_size == 1:
        cmd += ["--cpu"]  # accelerate's CPU mode runs one process; more use the multi-process launcher + plugin
    elif spec.world_size > 1:
        cmd += ["--multi_gpu"]
    cmd += ["--num_processes", str(spec.world_size), "--num_machines", str(spec.nnodes)]
    if spec.nnodes > 1:
        cmd += [
            "--machine_rank",
            str(spec.node_rank),
            "--main_process_ip",
            str(spec.main_process_ip),
            "--main_process_port",
            str(spec.main_process_port),
        ]
    elif spec.main_process_port != DEFAULT_PORT:
        cmd += ["--main_process_port", str(spec.main_process_port)]
    if spec.device == "cpu":
        cmd += ["--num_cpu_threads_per_process", str(spec.cpu_threads)]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # precision comes from the Axolotl config
    return cmd + ["-m", TRAIN_MODULE, config_file]


def executable_argv(cmd: list[str]) -> list[str]:
    """`cmd` with its program taken from this Python's environment (the venv's accelerate/torchrun)."""
    local = Path(sys.executable).parent / cmd[0]
    if local.is_file():
        return [str(local), *cmd[1:]]
    found = shutil.which(cmd[0])
    if found:
        return [found, *cmd[1:]]
    module = {"accelerate": "accelerate.commands.launch", "torchrun": "torch.distributed.run"}[cmd[0]]
    rest = cmd[2:] if cmd[:2] == ["accelerate", "launch"] else cmd[1:]
    return [sys.executable, "-m", module, *rest]


def launch_env(spec: LaunchSpec, *, offline: bool | None = None, base: dict | None = None) -> dict[str, str]:
    """Environment of the training processes."""
    env = dict(os.environ if base is None else base)
    env.update(QUIET_ENV)
    if offline is None:
        offline = hub_offline(env)
    if offline:
        env.update(OFFLINE_ENV)
    if spec.device == "cpu":
        env["OMP_NUM_THREADS"] = str(spec.cpu_threads)
        env["MKL_NUM_THREADS"] = str(spec.cpu_threads)
        env["CUDA_VISIBLE_DEVICES"] = ""
        for key, value in CPU_MALLOC_ENV.items():
            env.setdefault(key, value)
    else:
        env.setdefault("OMP_NUM_THREADS", str(spec.cpu_threads))
    env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive as they are printed
    # The plugin lives in this package: make sure the training processes import this very copy of it.
    return prepend_pythonpath(env, PACKAGE_ROOT)


def shell_line(cmd: list[str], spec: LaunchSpec | None = None) -> str:
    """The command as one shell line, prefixed with the thread setting that matters on CPU."""
    prefix = f"OMP_NUM_THREADS={spec.cpu_threads} " if spec is not None and spec.device == "cpu" else ""
    return prefix + shlex.join(cmd)
