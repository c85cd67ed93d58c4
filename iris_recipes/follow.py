"""Node R > 0 of a multi-node run (see nodes.py): it follows node 0's run directory instead of keeping its own
record, and SIGTERM (a scheduler's stop) ends a stage like Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from rich.console import Console

from iris_recipes import nodes
from iris_recipes.errors import IrisError
from iris_recipes.run_options import RunOptions
from iris_recipes.rundir import RunDir
from iris_recipes.stages import NAMES
from iris_recipes.train import config as axconfig
from iris_recipes.train import launch
from iris_recipes.train.checkpoints import latest_checkpoint
from iris_recipes.train.stage import run_training

# The stages after training, which node 0 alone runs.
_NODE0_ONLY = NAMES[NAMES.index("train") + 1 :]
_NODE0_RUNS = f"node 0 runs {', '.join(_NODE0_ONLY[:-1])} and {_NODE0_ONLY[-1]}"


def follow_node0(run: RunDir, spec: launch.LaunchSpec, opts: RunOptions, console: Console) -> RunDir:
    """Node R > 0 of a multi-node run (see nodes.py): node 0's data, node 0's checkpoint, this node's share of the
    training; nothing written to run.json, no post-training stage."""
    rank = spec.node_rank
    console.print(f"node {rank} of {spec.nnodes}: following node 0 in {run.path}")
    nodes.wait_for_stage(run, "data", rank)
    if run.stage_done("train"):
        console.print(f"node {rank}: training is done; {_NODE0_RUNS}")
        return run
    ckpt = latest_checkpoint(run.file(axconfig.CHECKPOINTS))
    resume_from = str(ckpt[0].relative_to(run.path)) if ckpt else None
    if not nodes.wait_for_launch(run, resume_from, rank):
        console.print(f"node {rank}: training is done; {_NODE0_RUNS}")
        return run
    cmd = launch.build_command(spec)
    env = launch.launch_env(spec)
    env["IRIS_PARENT_PID"] = str(os.getpid())
    log = f"train.node{rank}.log"
    console.print(
        f"train (node {rank}, from {resume_from or 'the start'}): {launch.shell_line(cmd, spec)}  "
        f"(log: {run.file(log)})"
    )
    with sigterm_as_interrupt():
        result = run_training(cmd, env, run, opts.verbose, console, log=log)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.returncode != 0:
        raise IrisError(
            f"node {rank}: training failed (exit code {result.returncode}); see {run.file(log)}. Start "
            f"every node again with --resume {run.path}",
            exit_code=1,
        )
    console.print(f"node {rank}: training done; {_NODE0_RUNS}")
    return run


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C: the current stage is recorded as interrupted, nothing half-written."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
