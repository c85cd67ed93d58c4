"""`iris-recipes run`: the stage table (stages.py: data -> train -> merge -> export -> eval -> card) walked on one run
directory; each stage is recorded in run.json.

A run never touches another run's files: a new run gets a fresh `runs/<recipe>/<run-id>/` (or `--output DIR`, which
must be new or empty). `--resume` continues the newest unfinished run of a recipe (or the one named): finished
stages are skipped and training restarts from its newest complete checkpoint, with the same total step count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from iris_recipes import fsutil, nodes, track
from iris_recipes.errors import IrisError
from iris_recipes.launch_plan import dry_run, resolve_base, slurm_job, write_slurm_job
from iris_recipes.locate import NEWEST_UNFINISHED, recipe_path, run_of_recipe
from iris_recipes.recipe.loader import dump_yaml
from iris_recipes.rundir import (
    RunDir,
    check_output_dir,
    claim,
    git_commit,
    new_run_path,
    now_iso,
    package_versions,
    portable_recipe,
)
from iris_recipes.stages import STAGES, StageContext, run_stage
from iris_recipes.train import config as axconfig
from iris_recipes.train import launch, slurm, validator
from iris_recipes.train.checkpoints import latest_checkpoint
from iris_recipes.train.stage import run_training, target_gpu, write_axolotl_config


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


# -- other nodes of a multi-node run -----------------------------------------------------------------------------
def follow_node0(run: RunDir, spec: launch.LaunchSpec, opts: RunOptions, console: Console) -> RunDir:
    """Node R > 0 of a multi-node run (see nodes.py): node 0's data, node 0's checkpoint, this node's share of the
    training; nothing written to run.json, no post-training stage."""
    rank = spec.node_rank
    console.print(f"node {rank} of {spec.nnodes}: following node 0 in {run.path}")
    nodes.wait_for_stage(run, "data", rank)
    if run.stage_done("train"):
        console.print(f"node {rank}: training is done; node 0 merges, exports, evaluates and writes the card")
        return run
    ckpt = latest_checkpoint(run.file(axconfig.CHECKPOINTS))
    resume_from = str(ckpt[0].relative_to(run.path)) if ckpt else None
    if not nodes.wait_for_launch(run, resume_from, rank):
        console.print(f"node {rank}: training is done; node 0 merges, exports, evaluates and writes the card")
        return run
    cmd = launch.build_command(spec)
    env = launch.launch_env(spec)
    env["IRIS_PARENT_PID"] = str(os.getpid())
    log = f"train.node{rank}.log"
    console.print(
        f"train (node {rank}, from {resume_from or 'the start'}): {launch.shell_line(cmd, spec)}  "
        f"(log: {run.file(log)})"
    )
    with _sigterm_as_interrupt():
        result = run_training(cmd, env, run, opts.verbose, console, log=log)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.returncode != 0:
        raise IrisError(
            f"node {rank}: training failed (exit code {result.returncode}); see {run.file(log)}. Start "
            f"every node again with --resume {run.path}",
            exit_code=1,
        )
    console.print(f"node {rank}: training done; node 0 merges, exports, evaluates and writes the card")
    return run


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C: the current stage is recorded as interrupted, nothing half-written."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# -- the command -------------------------------------------------------------------------------------------------
def run_recipe(recipe_arg: str | None, opts: RunOptions, console: Console | None = None) -> RunDir | None:
    from iris_recipes.recipe import load_recipe

    console = console or Console(highlight=False, soft_wrap=True)
    if opts.resume:
        if opts.overrides:
            raise IrisError(
                "--resume continues a run with the recipe it started with; overrides are not allowed. "
                "Start a new run to change keys."
            )
        if opts.output:
            raise IrisError("--resume and --output: give the run directory to --resume instead.")
        if opts.resume_dir and not recipe_arg and not Path(opts.resume_dir).is_dir():
            recipe_arg, opts.resume_dir = opts.resume_dir, None  # `--resume RECIPE`
        if opts.resume_dir:
            run = RunDir.open(opts.resume_dir)
        else:
            if not recipe_arg:
                raise IrisError("--resume needs a recipe (its newest unfinished run) or a run directory.")
            name = load_recipe(recipe_path(recipe_arg), allow_unsafe_axolotl_keys=opts.allow_unsafe_axolotl_keys).name
            run = run_of_recipe(name, NEWEST_UNFINISHED)
        meta = run.read()
        if opts.node_rank > 0 and not opts.dry_run:  # a follower: node 0 keeps the record
            return follow_node0(run, opts.spec(), opts, console)
        if meta.get("status") == "done":
            raise IrisError(f"{run.path}: this run finished already; nothing to resume.")
        recipe = run.recipe(allow_unsafe_axolotl_keys=opts.allow_unsafe_axolotl_keys or None)
        track.check(recipe.data, str(run.file("recipe.yaml")))
        if not opts.launch_flags_given and meta.get("launch_options"):
            for key, value in meta["launch_options"].items():
                setattr(opts, key, value)
        spec = opts.spec()
        if opts.dry_run:
            dry_run(recipe, opts, console, run)
            return None
        base_model = resolve_base(
            recipe.data, Path(recipe.path).parent, dry_run=False, prefer=meta.get("base_model_path")
        )
        fresh = keep_dir = False
        run.update(
            status="running",
            resumed=[*meta.get("resumed", []), now_iso()],
            launch=spec.to_dict(),
            base_model_path=str(base_model.path),
            base_model_hub_id=base_model.hub_id,
        )
        console.print(f"resuming {run.path}")
    else:
        if not recipe_arg:
            raise IrisError("run: give a recipe file or name, e.g. iris-recipes run recipes/smollm2-demo.yaml")
        recipe = load_recipe(
            recipe_path(recipe_arg), overrides=opts.overrides, allow_unsafe_axolotl_keys=opts.allow_unsafe_axolotl_keys
        )
        track.check(recipe.data, str(recipe.path))
        if opts.nnodes > 1 and not opts.slurm and not opts.output and not opts.dry_run:
            raise IrisError(
                "--nnodes > 1: give every node the same --output DIR, on a filesystem every node sees "
                "(one run directory: node 0 prepares the data and keeps the record, the others follow)."
            )
        spec = opts.spec()
        if spec.node_rank > 0 and not opts.dry_run:
            return follow_node0(nodes.join(opts.output, recipe.hash(), spec.node_rank), spec, opts, console)
        target = check_output_dir(opts.output) if opts.output else None
        if opts.dry_run:
            dry_run(recipe, opts, console)
            if opts.slurm:
                job = slurm_job(recipe, opts, target or new_run_path(recipe.name))
                print(
                    f"\n# {slurm.SBATCH_FILE} (written into the run directory without --dry-run)\n" + slurm.render(job),
                    end="",
                )
            return None
        data = portable_recipe(recipe)
        if opts.slurm:  # checked where it is submitted, not in the queue hours later; the nodes fetch the model
            base_model = resolve_base(data, Path(recipe.path).parent, dry_run=True)
            write_axolotl_config(
                recipe,
                data,
                str(base_model.path or base_model.spec),
                spec,
                data["dataset"].get("val_size", 0.05) > 0,
                None,
                validate=True,
                dest=None,
                target=target_gpu(spec, opts.gpu_type, dry_run=True),
            )
        else:
            # Preconditions before any directory exists: a model that cannot be found or downloaded leaves nothing.
            base_model = resolve_base(data, Path(recipe.path).parent, dry_run=False)
        path = target or new_run_path(recipe.name)
        keep_dir = target is not None and target.is_dir()  # an empty directory the user made stays theirs
        claim(path, must_be_new=target is None)
        run = RunDir(path)
        fresh = True
        fsutil.write_text(run.file("recipe.yaml"), dump_yaml(data))
        run.write(
            {
                "recipe": recipe.name,
                "run_id": path.name,
                "recipe_hash": recipe.hash(),
                "recipe_path": str(recipe.path),
                "overrides": list(opts.overrides),
                "created": now_iso(),
                "git_commit": git_commit(),
                "versions": package_versions(),
                "status": "running",
                "launch": spec.to_dict(),
                "base_model_path": str(base_model.path) if base_model.path else None,
                "base_model_hub_id": base_model.hub_id,
                "launch_options": {k: getattr(opts, k) for k in launch.LAUNCH_OPTIONS},
                "stages": {},
                "artifacts": {},
                **({"allow_unsafe_axolotl_keys": True} if opts.allow_unsafe_axolotl_keys else {}),
            }
        )
        console.print(f"run: {run.path}")
        if opts.slurm:
            return write_slurm_job(run, recipe, opts, console)

    recipe_data = recipe.data
    base = str(base_model.path)
    try:
        _run_stages(run, recipe, recipe_data, base, spec, opts, console)
    except BaseException:
        if fresh and not run.stage_info("train"):
            _discard(run, keep_dir=keep_dir)  # nothing worth resuming: leave no unfinished run behind
        raise
    if opts.until and run.read().get("status") == "stopped":
        return run
    console.print(f"done: {run.path}")
    return run


def _discard(run: RunDir, *, keep_dir: bool) -> None:
    """Remove a run that failed before training started (its directory too, unless the user named it)."""
    if keep_dir:
        for child in run.path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        shutil.rmtree(run.path, ignore_errors=True)
        with contextlib.suppress(OSError):  # the recipe's runs folder, if this was its only run
            run.path.parent.rmdir()


def _run_stages(
    run: RunDir, recipe, recipe_data: dict, base: str, spec: launch.LaunchSpec, opts: RunOptions, console: Console
) -> None:
    """The stage table in order, each stage not yet done; `--until` stops after the named one."""
    # Axolotl's validator starts now in its own process: its imports overlap the data stage.
    checker = None if run.stage_done("train") else validator.Validator()
    ctx = StageContext(
        run,
        say=console.print,
        console=console,
        recipe=recipe,
        recipe_data=recipe_data,
        base=base,
        spec=spec,
        verbose=opts.verbose,
        checker=checker,
        evaluate=opts.evaluate,
        eval_log=lambda message: console.print(f"eval: {message}"),
    )
    evaluated = None
    with _sigterm_as_interrupt(), checker or contextlib.nullcontext():
        for stage in STAGES:
            if not run.stage_done(stage.name) and stage.when(ctx):
                result = run_stage(stage.name, ctx)
                if stage.summary is not None:
                    console.print(stage.summary(ctx))
                if stage.name == "eval":
                    evaluated = result
            if opts.until == stage.name:
                run.update(status="stopped")
                console.print(
                    f"stopped after {stage.name}: {run.path} (continue with: iris-recipes run --resume {run.path})"
                )
                break
        else:
            run.update(status="done", finished=now_iso())
    if evaluated is not None:  # the tracked runs get the eval metrics and the card of this run
        from iris_recipes.evaluate.runner import log_tracking

        log_tracking(run, evaluated, ctx.eval_log)
