"""`iris-recipes run`: the stage table (stages.STAGES) walked in order on one run directory; each stage is recorded
in run.json.

A run never touches another run's files: a new run gets a fresh `runs/<recipe>/<run-id>/` (or `--output DIR`, which
must be new or empty). `--resume` continues the newest unfinished run of a recipe (or the one named): finished
stages are skipped, stale ones run again, and training restarts from its newest complete checkpoint, with the same
total step count.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from rich.console import Console

from iris_recipes import fsutil, nodes, track
from iris_recipes.errors import IrisError
from iris_recipes.follow import follow_node0, sigterm_as_interrupt
from iris_recipes.launch_plan import dry_run, resolve_base, slurm_job, write_slurm_job
from iris_recipes.locate import NEWEST_UNFINISHED, recipe_path, run_of_recipe
from iris_recipes.recipe.loader import dump_yaml
from iris_recipes.recipe.view import view
from iris_recipes.run_options import RunOptions
from iris_recipes.rundir import (
    RunDir,
    check_output_dir,
    claim,
    first_record,
    new_run_path,
    now_iso,
    portable_recipe,
)
from iris_recipes.stages import STAGES, StageContext, run_stage, stale
from iris_recipes.train import launch, slurm, validator
from iris_recipes.train.stage import target_gpu, write_axolotl_config


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
        if meta.get("status") == "done" and not stale(run):
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
                view(data).dataset.val_size > 0,
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
            first_record(
                recipe,
                path,
                overrides=opts.overrides,
                launch=spec.to_dict(),
                base_model=base_model,
                launch_options={k: getattr(opts, k) for k in launch.LAUNCH_OPTIONS},
                allow_unsafe_axolotl_keys=opts.allow_unsafe_axolotl_keys,
            )
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
    """The stage table in order, each stage not yet done (or stale); `--until` stops after the named one."""
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
    with sigterm_as_interrupt(), checker or contextlib.nullcontext():
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
