"""`iris-recipes run RECIPE [KEY=VALUE ...]`: train, merge, export and document one variant."""

from __future__ import annotations

import argparse
from pathlib import Path

from iris_recipes.commands.common import add_command, add_overrides, add_unsafe_flag, check_output, is_override
from iris_recipes.stages import NAMES as STAGE_NAMES
from iris_recipes.train.gpus import GPU_TYPES
from iris_recipes.train.launch import LAUNCH_OPTIONS


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "run",
        help="train a recipe through Axolotl, merge the adapter, export GGUF and write the model card",
        example="iris-recipes run recipes/smollm2-demo.yaml train.max_steps=20",
        description=(
            "Train a recipe through Axolotl (launched with accelerate or torchrun), merge the LoRA adapter into "
            "merged/, then export GGUF and write the model card. Everything goes to runs/<recipe>/<run-id>/."
        ),
    )
    p.add_argument("recipe", nargs="?", help="recipe file or name in recipes/ (optional with --resume RUN_DIR)")
    add_overrides(p)
    g = p.add_argument_group("processes and nodes")
    g.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        help="training processes per node (CPU: DistributedDataParallel over gloo; GPU: one per GPU)",
    )
    g.add_argument("--gpus", type=int, metavar="N", help="GPUs per node (implies GPU training)")
    g.add_argument("--nnodes", type=int, default=1, metavar="N", help="number of machines (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's rank, 0..nnodes-1")
    g.add_argument("--main-process-ip", metavar="IP", help="address of node 0 (multi-node)")
    g.add_argument("--main-process-port", type=int, metavar="PORT", help="rendezvous port on node 0 (default 29500)")
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="train on CPU or CUDA GPUs (auto: GPUs when torch sees CUDA, or with --gpus/--deepspeed/--fsdp)",
    )
    g.add_argument(
        "--launcher",
        choices=("accelerate", "torchrun"),
        default="accelerate",
        help="launch with accelerate (default) or torchrun",
    )
    g.add_argument(
        "--deepspeed",
        choices=("zero1", "zero2", "zero3", "zero3-offload"),
        help="DeepSpeed ZeRO stage (GPUs; the JSON ships with iris-recipes)",
    )
    g.add_argument("--fsdp", action="store_true", help="FSDP2 sharding (GPUs)")
    g.add_argument(
        "--gpu-type",
        choices=tuple(GPU_TYPES),
        metavar="TYPE",
        help=f"plan for this GPU ({', '.join(GPU_TYPES)}): precision, Axolotl's capability checks "
        "and the launch plan's memory fit, when it is not the GPU at hand",
    )
    s = p.add_argument_group("Slurm (writes RUN/launch.sbatch; submit it with sbatch)")
    s.add_argument(
        "--slurm",
        action="store_true",
        help="write a batch job for --nnodes N x --gpus G instead of running: one task per node, head "
        "node and ranks from Slurm, --requeue with automatic --resume. The run directory (--output "
        "or the runs directory) must be on a filesystem every node sees",
    )
    s.add_argument("--partition", metavar="P", help="Slurm partition")
    s.add_argument("--time", metavar="T", help="Slurm time limit (e.g. 12:00:00 or 2-00:00:00)")
    s.add_argument("--account", metavar="A", help="Slurm account")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact launch command and the generated Axolotl config; run nothing",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="RUN_DIR",
        help="continue the newest unfinished run of RECIPE (or RUN_DIR) from its last checkpoint; a finished "
        "RUN_DIR with stale stages (run.json) runs them again",
    )
    p.add_argument("--output", metavar="DIR", help="run directory to create (must be new or empty)")
    p.add_argument(
        "--no-eval",
        dest="evaluate",
        action="store_false",
        help="skip the eval stage (base vs fine-tuned on held-out rows; run it later with iris-recipes eval)",
    )
    p.add_argument(
        "--until",
        choices=STAGE_NAMES,
        help="stop after this stage (continue later with --resume)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="show Axolotl's own output, not just progress")
    add_unsafe_flag(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from iris_recipes.pipeline import run_recipe
    from iris_recipes.run_options import RunOptions

    defaults = {"nnodes": 1, "node_rank": 0, "fsdp": False, "launcher": "accelerate", "device": "auto"}
    given = any(getattr(args, k) not in (None, defaults.get(k)) for k in LAUNCH_OPTIONS)
    # `run --resume RUN KEY=V` puts the override in RECIPE's place, `run R --resume KEY=V` in RUN_DIR's: both are
    # overrides, which --resume then refuses rather than ignores
    if args.recipe and is_override(args.recipe):
        args.overrides.insert(0, args.recipe)
        args.recipe = None
    if args.resume and is_override(args.resume) and not Path(args.resume).exists():
        args.overrides.insert(0, args.resume)
        args.resume = ""
    if args.output is not None:
        check_output("--output", args.output, folder=True)  # `--output ''` would mean the default runs directory
    opts = RunOptions(
        overrides=tuple(args.overrides),
        num_processes=args.num_processes,
        gpus=args.gpus,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        main_process_ip=args.main_process_ip,
        main_process_port=args.main_process_port,
        device=args.device,
        launcher=args.launcher,
        deepspeed=args.deepspeed,
        fsdp=args.fsdp,
        dry_run=args.dry_run,
        resume=args.resume is not None,
        resume_dir=args.resume or None,
        output=args.output,
        verbose=args.verbose,
        until=args.until,
        gpu_type=args.gpu_type,
        slurm=args.slurm,
        partition=args.partition,
        time=args.time,
        account=args.account,
        evaluate=args.evaluate,
        allow_unsafe_axolotl_keys=args.allow_unsafe_axolotl_keys,
        launch_flags_given=given,
    )
    run_recipe(args.recipe, opts)
    return 0
