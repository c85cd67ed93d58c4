"""What `run --dry-run` and `run --slurm` show or write without training: the launch command, the launch plan and
the Axolotl config (checked by Axolotl's validator), and the Slurm batch script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from iris_recipes import fsutil
from iris_recipes.recipe.view import view
from iris_recipes.rundir import RunDir, portable_recipe
from iris_recipes.train import gpus, launch, slurm
from iris_recipes.train import plan as trainplan
from iris_recipes.train.stage import deepspeed_json, device_facts, target_gpu, write_axolotl_config

if TYPE_CHECKING:
    from iris_recipes.run_options import RunOptions


def resolve_base(recipe_data: dict, base_dir: Path, *, dry_run: bool, prefer: str | None = None):
    """The run's base model through the one resolver (a dry run builds and downloads nothing)."""
    from iris_recipes.models import resolve_base_model

    return resolve_base_model(recipe_data["base_model"], base_dir, fetch=not dry_run, prefer=prefer)


def slurm_job(recipe, opts: RunOptions, path: Path) -> slurm.SlurmJob:
    flags = [f"--deepspeed={opts.deepspeed}"] if opts.deepspeed else ["--fsdp"] if opts.fsdp else []
    if opts.launcher != "accelerate":
        flags.append(f"--launcher={opts.launcher}")
    return slurm.SlurmJob(
        run_dir=path,
        job_name=slurm.job_name(recipe.name),
        nnodes=opts.nnodes,
        gpus=opts.gpus,
        partition=opts.partition,
        time=opts.time,
        account=opts.account,
        launch_flags=tuple(flags),
    )


def write_slurm_job(run: RunDir, recipe, opts: RunOptions, console: Console) -> RunDir:
    job = slurm_job(recipe, opts, run.path)
    sbatch = run.file(slurm.SBATCH_FILE)
    fsutil.write_text(sbatch, slurm.render(job))
    sbatch.chmod(0o755)
    run.update(status="created", slurm={"script": slurm.SBATCH_FILE, "nodes": job.nnodes, "gpus_per_node": job.gpus})
    console.print(
        f"Slurm job: {sbatch} ({job.nnodes} node(s) x {job.gpus} GPU(s)); every node must see {run.path} "
        "and this installation at the same paths.\nSubmit it with:\n  sbatch " + str(sbatch)
    )
    return run


def _describe_device(spec: launch.LaunchSpec, gpu: gpus.GPU | None, cfg: dict, gpu_type: str | None) -> str:
    facts = device_facts(spec, gpu, cfg)
    kernels = f"{facts['precision']}, TF32 {'on' if facts['tf32'] else 'off'}, attention {facts['attention']}"
    if spec.device == "cpu":
        return f"# device: CPU ({kernels})\n"
    if gpu is None:
        return (
            f"# GPU: none here and no --gpu-type ({kernels}); at launch the GPU found decides, "
            "--gpu-type t4|l4|a10g|a100-40|a100-80|h100 shows it for one\n"
        )
    how = f"--gpu-type {gpu_type}" if gpu_type and gpu.key == gpu_type else "found on this machine"
    return f"# GPU: {gpu.name} ({gpu.sm}, {gpu.memory_gib} GiB; {how}): {kernels}\n"


def dry_run(recipe, opts: RunOptions, console: Console, run: RunDir | None = None) -> str:
    """The exact launch command, the launch plan and the generated Axolotl config; nothing is written or run."""
    spec = opts.spec()
    data = portable_recipe(recipe)
    resolved = resolve_base(data, Path(recipe.path).parent, dry_run=True)
    base = str(resolved.path or resolved.spec)  # a hub model not downloaded yet: Axolotl is shown its id
    has_val = view(data).dataset.val_size > 0
    target = target_gpu(spec, opts.gpu_type, dry_run=True)
    cfg, text, cmd = write_axolotl_config(
        recipe, data, base, spec, has_val, None, validate=True, dest=None, target=target
    )
    report = run.file("data", "report.json") if run is not None else None
    plan = trainplan.render(
        recipe_data=data,
        cfg=cfg,
        base_model=base,
        device=spec.device,
        sharding=spec.deepspeed or ("fsdp" if spec.fsdp else "none"),
        world_size=spec.world_size,
        gpu=target[0],
        data_report=json.loads(report.read_text()) if report and report.is_file() else None,
    )
    out = (
        f"# launch command (run from the run directory; {spec.world_size} process(es), device {spec.device})\n"
        f"{launch.shell_line(cmd, spec)}\n{_describe_device(spec, target[0], cfg, opts.gpu_type)}{plan}\n"
        f"# axolotl.yaml\n{text}"
    )
    print(out, end="")
    if spec.deepspeed:
        print(f"\n# deepspeed.json (copied from {deepspeed_json(spec.deepspeed)})")
        print(deepspeed_json(spec.deepspeed).read_text(), end="")
    return out
