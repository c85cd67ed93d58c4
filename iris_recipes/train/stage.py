"""The train stage: the Axolotl config for the target device (checked by Axolotl's own validator), the launch
(accelerate or torchrun, streamed progress, train.log), resume from a checkpoint, and the adapter it leaves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from iris_recipes import fsutil, track
from iris_recipes.errors import IrisError
from iris_recipes.recipe.view import view
from iris_recipes.rundir import RunDir, now_iso
from iris_recipes.train import config as axconfig
from iris_recipes.train import gpus, launch, validator
from iris_recipes.train import metrics as trainmetrics
from iris_recipes.train.checkpoints import latest_checkpoint, publish_final_checkpoint, training_finished

LOG_FILE = "train.log"


def target_gpu(spec: launch.LaunchSpec, gpu_type: str | None, *, dry_run: bool) -> tuple[gpus.GPU | None, dict | None]:
    """The GPU a launch's config is built for, and what Axolotl's validator checks it against.

    A dry run with --gpu-type plans for that type; otherwise this machine's GPU (Axolotl probes it itself), else
    the named type, else none known (the config then leaves bf16 to Axolotl and checks no GPU capability)."""
    if spec.device != "gpu":
        return None, None
    named = gpus.GPU_TYPES[gpu_type] if gpu_type else None
    found = [] if (named and dry_run) else gpus.detect()
    if found:
        return found[0], {"probe": True, "n_gpu": spec.world_size, "n_node": spec.nnodes}
    if named:
        return named, named.axolotl_capabilities(spec.world_size, spec.nnodes)
    return None, None


def device_facts(spec: launch.LaunchSpec, gpu: gpus.GPU | None, cfg: dict) -> dict:
    """What the run was built for, as run.json records it: the GPU, the precision and the attention kernel."""
    precision = (
        "bf16"
        if cfg.get("bf16") is True
        else "fp16"
        if cfg.get("fp16")
        else "bf16 or fp16 (Axolotl decides on the GPU)"
        if cfg.get("bf16") == "auto"
        else "fp32"
    )
    facts = {"precision": precision, "tf32": bool(cfg.get("tf32")), "attention": cfg.get("attn_implementation")}
    if gpu is not None:
        facts["gpu"] = {"name": gpu.name, "compute_capability": gpu.sm, "memory_gib": gpu.memory_gib}
    return facts


def write_axolotl_config(
    recipe,
    recipe_data: dict,
    base: str,
    spec: launch.LaunchSpec,
    has_val: bool,
    resume_from: str | None,
    *,
    validate: bool,
    dest: Path | None,
    checker: validator.Validator | None = None,
    target: tuple[gpus.GPU | None, dict | None] = (None, None),
    run_name: str = "dry-run",
    log: Path | None = None,
) -> tuple[dict, str, list[str]]:
    """Build (and check with Axolotl's validator: `checker`, or a new one) the config for the `target` GPU and the
    run `run_name` (its id); write it to `dest` unless None. The validator's output goes to `log`."""
    gpu, gpu_check = target
    cfg = axconfig.build_config(
        recipe_data,
        base_model=base,
        spec=spec,
        has_val=has_val,
        resume_from=resume_from,
        recipe_file=str(recipe.path),
        gpu=gpu,
        run_name=run_name,
        allow_unsafe_axolotl_keys=recipe.allow_unsafe_axolotl_keys,
    )
    if validate:
        check = dict(cfg)
        if spec.deepspeed:  # validate against the shipped JSON; the run directory gets its own copy
            check["deepspeed"] = str(deepspeed_json(spec.deepspeed))
        (checker or validator.Validator()).check(
            check, recipe_data=recipe_data, recipe_file=recipe.path, gpu=gpu_check, log=log
        )
    cmd = launch.build_command(spec)
    text = axconfig.render(
        cfg, recipe_path=recipe.path, recipe_hash=recipe.hash(), command=launch.shell_line(cmd, spec)
    )
    if dest is not None:
        if spec.deepspeed:
            shutil.copyfile(deepspeed_json(spec.deepspeed), dest.parent / axconfig.DEEPSPEED_FILE)
        fsutil.write_text(dest, text)
    return cfg, text, cmd


def deepspeed_json(stage: str) -> Path:
    return Path(__file__).resolve().parent.parent / "deepspeed" / f"{stage}.json"


def train_stage(ctx, info: dict) -> None:
    """The train stage (stages.STAGES): resume from the newest complete checkpoint or start, launch Axolotl, collect
    the adapter. `ctx` is a stages.StageContext; `info` the stage's facts in run.json."""
    run, recipe_data, spec, console = ctx.run, ctx.recipe_data, ctx.spec, ctx.console
    has_val = run.file("data", "val.jsonl").is_file() and run.file("data", "val.jsonl").stat().st_size > 0
    ckpt = latest_checkpoint(run.file(axconfig.CHECKPOINTS))
    resume_from = None
    if ckpt is not None:
        resume_from = str(ckpt[0].relative_to(run.path))
        dropped = trainmetrics.truncate_after(run.file(axconfig.METRICS_FILE), ckpt[1])
        info.update(resumed_from=resume_from, resumed_step=ckpt[1])
        console.print(f"train: resuming from {resume_from} (step {ckpt[1]}; {dropped} later metrics dropped)")
    if ckpt is not None and training_finished(ckpt[0]):
        # Stopped after its last checkpoint but before recording the end: relaunching would train a step past
        # max_steps, so the final checkpoint becomes the result.
        publish_final_checkpoint(ckpt[0], run.file(axconfig.CHECKPOINTS))
        info.update(finished_from_checkpoint=True)
        console.print(f"train: {resume_from} is the last step; nothing left to train")
    else:
        _launch_training(
            run,
            ctx.recipe,
            recipe_data,
            ctx.base,
            spec,
            has_val,
            resume_from,
            info,
            verbose=ctx.verbose,
            console=console,
            checker=ctx.checker,
        )
    summary = trainmetrics.summarize(trainmetrics.read_metrics(run.file(axconfig.METRICS_FILE)))
    info.update(metrics=summary)
    if view(recipe_data).method != "full":
        files = _collect_adapter(run)
        info.update(adapter=files)
        run.set_artifact("adapter", {"dir": "adapter", "files": files})
    ctx.result = summary


def summary_line(summary: dict) -> str:
    loss = summary.get("final_loss")
    if loss is None:  # it stopped before its first logging step (train.logging_steps)
        said = "no loss logged (the run ended before its first logging step; see train.logging_steps)"
    else:
        said = f"final loss {loss:.4f}"
    return f"train: done, {summary.get('steps')} steps, {said}, world size {summary.get('world_size')}"


def _launch_training(
    run: RunDir,
    recipe,
    recipe_data: dict,
    base: str,
    spec: launch.LaunchSpec,
    has_val: bool,
    resume_from: str | None,
    info: dict,
    *,
    verbose: bool,
    console: Console,
    checker: validator.Validator | None,
) -> None:
    target = target_gpu(spec, None, dry_run=False)
    cfg, _, cmd = write_axolotl_config(
        recipe,
        recipe_data,
        base,
        spec,
        has_val,
        resume_from,
        validate=True,
        dest=run.file("axolotl.yaml"),
        checker=checker,
        target=target,
        run_name=run.path.name,
        log=run.file(LOG_FILE),
    )
    info.update(device_facts(spec, target[0], cfg))
    if spec.nnodes > 1:  # the other nodes launch once they see this (nodes.wait_for_launch)
        run.set_stage("train", launch={"resume_from": resume_from, "nodes": spec.nnodes, "at": now_iso()})
    env = launch.launch_env(spec)
    env["IRIS_PARENT_PID"] = str(os.getpid())
    if track.trackers(recipe_data):
        track.start(run, recipe_data)  # once per run: a resumed launch logs into the same tracked run
        env.update(track.launch_env(run, recipe_data))
    info.update(command=launch.shell_line(cmd, spec), world_size=spec.world_size, device=spec.device, log=LOG_FILE)
    console.print(f"train: {launch.shell_line(cmd, spec)}  (log: {run.file(LOG_FILE)})")
    result = run_training(cmd, env, run, verbose, console)
    info.update(
        launcher_seconds=round(result.seconds, 3),
        returncode=result.returncode,
        metrics=trainmetrics.summarize(trainmetrics.read_metrics(run.file(axconfig.METRICS_FILE))),
    )
    if result.interrupted:
        raise KeyboardInterrupt
    if result.returncode != 0:
        tail = "\n".join(f"  | {line}" for line in list(result.state.tail)[-25:])
        raise IrisError(
            f"training failed (exit code {result.returncode}). Last lines of {run.file(LOG_FILE)}:\n"
            f"{tail}\nFix the cause, then continue with: iris-recipes run --resume {run.path}",
            exit_code=1,
        )


def run_training(cmd, env, run: RunDir, verbose: bool, console: Console, log: str = LOG_FILE):
    from iris_recipes.train.progress import run_streaming

    return run_streaming(
        launch.executable_argv(cmd), env=env, cwd=run.path, log_path=run.file(log), verbose=verbose, console=console
    )


def _collect_adapter(run: RunDir) -> list[str]:
    from iris_recipes.lora_merge import collect_adapter

    return collect_adapter(run.file(axconfig.CHECKPOINTS), run.file("adapter"))
