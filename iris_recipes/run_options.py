"""The options of one `iris-recipes run` (what the command line gives besides the recipe and its overrides) and the
launch they describe."""

from __future__ import annotations

from dataclasses import dataclass, field

from iris_recipes.errors import IrisError
from iris_recipes.train import launch, slurm


@dataclass
class RunOptions:
    overrides: tuple[str, ...] = ()
    device: str = "auto"  # auto | cpu | gpu
    num_processes: int | None = None
    gpus: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    launcher: str = "accelerate"
    deepspeed: str | None = None
    fsdp: bool = False
    dry_run: bool = False
    resume: bool = False
    resume_dir: str | None = None
    output: str | None = None
    verbose: bool = False
    until: str | None = None  # stop after this stage (resume later)
    evaluate: bool = True  # the eval stage: base vs fine-tuned evidence for the card
    allow_unsafe_axolotl_keys: bool = False  # the user's --allow-unsafe-axolotl-keys (recipe/unsafe.py)
    gpu_type: str | None = None  # plan for this GPU (gpus.GPU_TYPES) where it is not the one at hand
    slurm: bool = False  # write RUN/launch.sbatch instead of running
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    cuda_available: bool | None = None  # None: ask torch (tests pin it)
    launch_flags_given: bool = field(default=False)

    def spec(self) -> launch.LaunchSpec:
        if self.slurm:
            problems = [] if self.gpus else ["--slurm needs --gpus G (GPUs per node)"]
            if self.main_process_ip or self.node_rank:
                problems.append(
                    "--slurm: the job finds the head node and each node's rank itself; drop "
                    "--main-process-ip/--node-rank"
                )
            if self.time and slurm.check_time(self.time):
                problems.append(slurm.check_time(self.time))
            if problems:
                raise IrisError("\n".join(problems))
        elif self.partition or self.time or self.account:
            raise IrisError("--partition, --time and --account go with --slurm")
        return launch.make_spec(
            num_processes=self.num_processes,
            gpus=self.gpus,
            nnodes=self.nnodes,
            node_rank=self.node_rank,
            main_process_ip=self.main_process_ip or ("$HEAD_NODE" if self.slurm else None),
            main_process_port=self.main_process_port,
            launcher=self.launcher,
            deepspeed=self.deepspeed,
            fsdp=self.fsdp,
            device=self.device,
            cuda_available=self.cuda_available,
        )
