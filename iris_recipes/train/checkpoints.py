"""Trainer checkpoints in RUN/checkpoints/: which are complete (a kill can cut one short), the newest, and whether
it is the last step of its training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from iris_recipes import fsutil

WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
)


def checkpoint_complete(path: Path) -> bool:
    """A checkpoint a kill did not cut short: state, weights, optimizer and scheduler all written."""
    if not (path / "trainer_state.json").is_file() or not (path / "scheduler.pt").is_file():
        return False
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        return False
    has_optimizer = (path / "optimizer.pt").is_file() or any(path.glob("global_step*")) or any(path.glob("optimizer*"))
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return has_optimizer


def latest_checkpoint(output_dir: Path) -> tuple[Path, int] | None:
    found = []
    for p in output_dir.glob("checkpoint-*"):
        suffix = p.name.removeprefix("checkpoint-")
        if suffix.isdigit() and p.is_dir() and checkpoint_complete(p):
            found.append((int(suffix), p))
    if not found:
        return None
    step, path = max(found)
    return path, step


def training_finished(checkpoint: Path) -> bool:
    """The checkpoint is the last step of its training (global_step has reached max_steps)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return bool(state.get("max_steps")) and state.get("global_step", 0) >= state["max_steps"]


def publish_final_checkpoint(checkpoint: Path, output_dir: Path) -> None:
    """Put the checkpoint's model files (adapter or weights, config, tokenizer) where Axolotl saves its final model:
    `output_dir` itself. Optimizer, scheduler and trainer state stay in the checkpoint."""
    state_files = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "tokens_state.json"}
    for path in checkpoint.iterdir():
        if path.is_file() and path.name not in state_files and not path.name.startswith("rng_state"):
            with fsutil.atomic_path(output_dir / path.name) as tmp:
                shutil.copy2(path, tmp)
