"""Multi-node runs: one run directory on a filesystem every node sees; node 0 keeps its record, the others follow.

Node 0 (global rank 0) creates the run, prepares the data, records the training stage and alone merges, exports,
evaluates and writes the card. A node of rank R > 0 writes nothing into run.json: it joins the run node 0 created
(refusing one made from another recipe or other overrides), waits for node 0's data stage, resumes from the same
checkpoint node 0 resumes from (both read the same checkpoints/), trains its share, and stops.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.rundir import RunDir

POLL_SECONDS = 1.0


def wait_seconds() -> float:
    """How long a node waits for node 0 (IRIS_NODE_WAIT_SECONDS; default one hour: node 0's data stage can be long)."""
    return float(os.environ.get("IRIS_NODE_WAIT_SECONDS", "3600"))


def _wait(what: str, check, node_rank: int) -> object:
    deadline = time.monotonic() + wait_seconds()
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise IrisError(
                f"node {node_rank}: waited {wait_seconds():.0f} s for node 0 {what}; start node 0 with the "
                "same --output (on a filesystem every node sees), or raise IRIS_NODE_WAIT_SECONDS."
            )
        time.sleep(POLL_SECONDS)


def join(path: str | Path, recipe_hash: str, node_rank: int) -> RunDir:
    """The run node 0 creates at `path`, once it exists; refused if it was made from another recipe."""
    run = RunDir(path)
    _wait(f"to create the run in {run.path}", lambda: True if run.exists() else None, node_rank)
    check_same_recipe(run, recipe_hash, node_rank)
    return run


def check_same_recipe(run: RunDir, recipe_hash: str, node_rank: int) -> None:
    theirs = run.read().get("recipe_hash")
    if theirs != recipe_hash:
        raise IrisError(
            f"node {node_rank}: this node's recipe (sha256 {recipe_hash[:12]}) is not the one node 0 "
            f"started {run.path} with (sha256 {str(theirs)[:12]}); start every node with the same recipe "
            "file and overrides."
        )


def wait_for_stage(run: RunDir, stage: str, node_rank: int) -> None:
    """Until node 0 has finished `stage`; its failure ends this node too."""

    def check():
        info = run.stage_info(stage)
        if info.get("status") == "failed":
            raise IrisError(
                f"node {node_rank}: node 0's {stage} stage failed ({info.get('error')}); fix it and start "
                "every node again with --resume.",
                exit_code=1,
            )
        return True if info.get("status") == "done" else None

    _wait(f"to finish its {stage} stage", check, node_rank)


def wait_for_launch(run: RunDir, resume_from: str | None, node_rank: int) -> bool:
    """Until node 0 launches training from the same checkpoint this node chose (both read the same checkpoints/):
    True; False when node 0 finished training without a launch (its last checkpoint was the final step)."""

    def check():
        info = run.stage_info("train")
        launch = info.get("launch") or {}
        if info.get("status") == "done":
            return False
        if info.get("status") == "running" and launch.get("resume_from", "-") == resume_from:
            return True
        return None

    return _wait(f"to launch training from {resume_from or 'the start'}", check, node_rank)
