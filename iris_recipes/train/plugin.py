"""The Axolotl plugin every generated config lists: CPU multi-process training and the run's metrics file.

Loaded by Axolotl inside the training processes (`plugins: [iris_recipes.train.plugin.IrisPlugin]`), so it is
plain Axolotl extension code; it adds three config keys (`iris_cpu`, `iris_metrics_file`, `iris_progress`).

CPU: `accelerate launch --cpu` runs a single process, and Axolotl maps rank N to `cuda:N`. With `iris_cpu: true`
the plugin (1) sets ACCELERATE_USE_CPU before Axolotl builds its Accelerator, so torch.distributed uses gloo,
(2) gives the trainer `use_cpu=True`, (3) puts the model on the CPU whatever device map Axolotl derived from
the rank and (4) makes the trainer's device plain "cpu" (not "cpu:0") so a resumed run can load its optimizer. Together these make `--num-processes 2` real DistributedDataParallel on one CPU machine.

Metrics: a trainer callback appends one JSON object per log event to `iris_metrics_file` (rank 0 only) and, with
`iris_progress: true`, prints the same object on a line starting with `IRIS_METRICS ` for the progress display.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from axolotl.integrations.base import BasePlugin
from pydantic import BaseModel
from transformers import TrainerCallback

PROGRESS_PREFIX = "IRIS_METRICS "
PARENT_ENV = "IRIS_PARENT_PID"  # set by `iris-recipes run`: the process whose death ends training


class IrisArgs(BaseModel):
    """Config keys the plugin adds to Axolotl's schema."""

    iris_cpu: bool | None = None
    iris_metrics_file: str | None = None
    iris_progress: bool | None = None


def _get(cfg: Any, key: str) -> Any:
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)


def _watch_parent() -> None:
    """Stop training when the `iris-recipes run` that launched it is gone (killed with SIGKILL, say).

    The launcher runs in its own process group; without this its workers would keep training, unseen, into a run
    directory that `--resume` is about to reuse.
    """
    pid = int(os.environ.get(PARENT_ENV, "0") or 0)
    if pid <= 0 or getattr(_watch_parent, "started", False):
        return
    _watch_parent.started = True

    def watch():
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.killpg(os.getpgrp(), signal.SIGTERM)
                return
            except PermissionError:
                pass

    threading.Thread(target=watch, name="iris-parent-watch", daemon=True).start()


class IrisPlugin(BasePlugin):
    def get_input_args(self) -> str:
        return f"{IrisArgs.__module__}.{IrisArgs.__name__}"

    def register(self, cfg: dict) -> None:
        _watch_parent()
        # Must happen before Axolotl creates its Accelerator (right after config validation).
        if _get(cfg, "iris_cpu"):
            self._set_env = "ACCELERATE_USE_CPU" not in os.environ
            os.environ["ACCELERATE_USE_CPU"] = "true"

    def on_config_validation_error(self, cfg: dict) -> None:
        if getattr(self, "_set_env", False):
            os.environ.pop("ACCELERATE_USE_CPU", None)

    def load_datasets(self, cfg, preprocess: bool = False):
        # The first hook after Axolotl's normalize_config, which maps rank N to device N (CUDA). Returning None
        # keeps Axolotl's own dataset loading.
        if _get(cfg, "iris_cpu"):
            cfg.device_map = "cpu"
            cfg.device = "cpu"
        return None

    def pre_model_load(self, cfg) -> None:
        if _get(cfg, "iris_cpu"):
            cfg.device_map = "cpu"

    def pre_lora_load(self, cfg, model) -> None:
        # Axolotl seeds only when it builds the trainer, after the adapter exists: without this the adapter's
        # initial weights, and so the whole run, differ between two runs of one recipe with one `train.seed`.
        seed = _get(cfg, "seed")
        if seed is not None:
            from transformers import set_seed

            set_seed(int(seed))

    def post_trainer_create(self, cfg, trainer) -> None:
        # Multi-process CPU runs get the device "cpu:0", which torch.load cannot map a checkpoint's optimizer to on
        # --resume ("don't know how to restore data location ... cpu:0"); plain "cpu" is the same device.
        if _get(cfg, "iris_cpu") and trainer.args.device.type == "cpu" and trainer.args.device.index is not None:
            import torch

            trainer.args.__dict__["_setup_devices"] = torch.device("cpu")

    def get_training_args(self, cfg) -> dict | None:
        return {"use_cpu": True} if _get(cfg, "iris_cpu") else None

    def add_callbacks_post_trainer(self, cfg, trainer) -> list:
        path = _get(cfg, "iris_metrics_file")
        progress = bool(_get(cfg, "iris_progress"))
        if not path and not progress:
            return []
        return [MetricsCallback(path, progress=progress)]


class MetricsCallback(TrainerCallback):
    """One JSON line per trainer log event: step, loss, learning rate, grad norm, eval loss, tokens, world size."""

    def __init__(self, path: str | None, *, progress: bool):
        self.path = path
        self.progress = progress

    def _emit(self, record: dict) -> None:
        line = json.dumps(record, default=float)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())  # a killed run keeps every line it logged
        if self.progress:
            print(PROGRESS_PREFIX + line, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            import torch.distributed as dist

            backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
            self._emit(
                {
                    "event": "train_begin",
                    "time": time.time(),
                    "step": state.global_step,
                    "max_steps": state.max_steps,
                    "world_size": args.world_size,
                    "backend": backend,
                    "device": str(args.device),
                    "num_train_epochs": state.num_train_epochs,
                }
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {
            "event": "log",
            "time": time.time(),
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "world_size": args.world_size,
        }
        for key, value in logs.items():
            name = {
                "tokens/trainable": "tokens_trainable",
                "tokens/total": "tokens_total",
                "tokens/train_per_sec_per_gpu": "tokens_per_sec_per_process",
            }.get(key, key)
            if isinstance(value, (int, float)) and not key.startswith("memory/"):
                record[name] = value
        if "tokens_total" not in record and isinstance(logs.get("num_tokens"), (int, float)):
            record["tokens_total"] = logs["num_tokens"]  # TRL's preference trainers count tokens under this name
        if args.device.type == "cuda":  # Axolotl's figures from torch.cuda (on CPU they describe the host)
            for key, name in (
                ("memory/max_allocated (GiB)", "gpu_max_allocated_gib"),
                ("memory/device_reserved (GiB)", "gpu_reserved_gib"),
            ):
                if isinstance(logs.get(key), (int, float)):
                    record[name] = logs[key]
        self._emit(record)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._emit({"event": "save", "time": time.time(), "step": state.global_step})

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._emit(
                {
                    "event": "train_end",
                    "time": time.time(),
                    "step": state.global_step,
                    "max_steps": state.max_steps,
                    "world_size": args.world_size,
                }
            )
