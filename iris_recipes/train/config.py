"""Recipe -> Axolotl config: the one place that decides what Axolotl is asked to do.

The generated config uses paths relative to the run directory (Axolotl is launched with the run directory as its
working directory), so a run directory can be moved or copied and still be resumed or re-run by hand.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from iris_recipes import chat_families, objectives
from iris_recipes.errors import IrisError, closest
from iris_recipes.hostinfo import cpu_has_bf16
from iris_recipes.recipe.merge import deep_merge
from iris_recipes.recipe.unsafe import advice, unsafe_axolotl_keys
from iris_recipes.recipe.view import view
from iris_recipes.train import gpus
from iris_recipes.train.launch import LaunchSpec

PLUGIN = "iris_recipes.train.plugin.IrisPlugin"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
PREPARED = "prepared"
TRAIN_FILE = "data/train.jsonl"
VAL_FILE = "data/val.jsonl"
DEEPSPEED_FILE = "deepspeed.json"
SAVE_TOTAL_LIMIT = 3  # checkpoints kept (resume points); the recipe's axolotl: block may change it

# recipe train.* key -> Axolotl key, copied when present
TRAIN_KEYS = {
    "epochs": "num_epochs",
    "max_steps": "max_steps",
    "learning_rate": "learning_rate",
    "scheduler": "lr_scheduler",
    "warmup_ratio": "warmup_ratio",
    "warmup_steps": "warmup_steps",
    "micro_batch_size": "micro_batch_size",
    "gradient_accumulation": "gradient_accumulation_steps",
    "sequence_len": "sequence_len",
    "sample_packing": "sample_packing",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "gradient_checkpointing": "gradient_checkpointing",
    "save_steps": "save_steps",
    "eval_steps": "eval_steps",
    "logging_steps": "logging_steps",
    "early_stopping_patience": "early_stopping_patience",
    "seed": "seed",
}
CUDA_ONLY_OPTIMIZERS = {"adamw_8bit", "paged_adamw_8bit"}


def _dataset_entry(path: str, objective: objectives.Objective) -> dict:
    entry = {"path": path, "ds_type": "json", "split": "train"}
    if objective.preference:
        # No `type`: the rows are already TRL's conversational preference rows (data/rows.py), which TRL renders
        # with the chat template Axolotl installs on the tokenizer. Axolotl's text strategies
        # (chat_template.default) have TRL tokenize the rendered prompt again with the tokenizer's own BOS, which
        # doubles a BOS the template writes itself, as Llama 3's does (tests/integration/test_masking_pairs.py).
        return entry
    return {
        **entry,
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    }


def tracking_keys(recipe_data: dict, run_name: str) -> dict:
    """Axolotl's MLflow / W&B keys for the recipe's `track:` block (none when tracking is off).

    They switch on the trainer's own logging callbacks; the tracked run itself (its id, tags, the resume) is set up
    by `iris_recipes.track`, which also decides where the data goes.
    """
    from iris_recipes import track

    names = track.trackers(recipe_data)
    keys: dict[str, Any] = {}
    if "mlflow" in names:
        keys.update(
            mlflow_tracking_uri=track.mlflow_uri(),
            mlflow_experiment_name=track.experiment(recipe_data),
            mlflow_run_name=run_name,
            hf_mlflow_log_artifacts=False,
        )  # checkpoints stay in the run dir
    if "wandb" in names:
        w = recipe_data["track"]["wandb"] or {}
        keys.update(
            wandb_project=track.wandb_project(recipe_data),
            wandb_name=run_name,
            wandb_run_id=track.wandb_id(recipe_data["name"], run_name),
            wandb_mode=track.wandb_mode(),
        )
        if w.get("entity"):
            keys["wandb_entity"] = w["entity"]
    return keys


def build_config(
    recipe_data: dict,
    *,
    base_model: str,
    spec: LaunchSpec,
    has_val: bool,
    resume_from: str | None = None,
    recipe_file: str = "the recipe",
    gpu: gpus.GPU | None = None,
    run_name: str = "dry-run",
    allow_unsafe_axolotl_keys: bool = False,
) -> dict:
    """The Axolotl config (a plain dict) for a resolved recipe launched as `spec` on `gpu` (GPU launches: the GPU
    it will run on, None when not known here); `run_name` is the run id (experiment trackers).

    The recipe's axolotl: block is merged last; its unsafe keys (recipe/unsafe.py) only with
    `allow_unsafe_axolotl_keys`, which comes from the user's --allow-unsafe-axolotl-keys.
    """
    train = recipe_data["train"]
    settings = view(recipe_data)
    method = settings.method
    cpu = spec.device == "cpu"
    problems = []
    if not allow_unsafe_axolotl_keys:
        problems += [
            f"axolotl.{'.'.join(map(str, key))}: {advice(reason)}"
            for key, reason in unsafe_axolotl_keys(recipe_data.get("axolotl"))
        ]
    if cpu and method == "qlora":
        problems.append("method: qlora needs a CUDA GPU (4-bit bitsandbytes); use method: lora on CPU")
    if cpu and train.get("optimizer") in CUDA_ONLY_OPTIMIZERS:
        problems.append(f"train.optimizer: {train['optimizer']} needs a CUDA GPU; use adamw_torch on CPU")
    if cpu and (spec.deepspeed or spec.fsdp):
        problems.append("--deepspeed/--fsdp need CUDA GPUs (Axolotl runs them over NCCL); pass --gpus N")
    if gpu is not None and not gpu.bf16 and settings.train.precision == "bf16":
        problems.append(
            f"train.precision: bf16 needs a GPU with bf16 (Ampere or newer: A10G, L4, A100, H100); "
            f"{gpu.name} ({gpu.sm}) has none. Use precision: auto (fp16 there) or fp16"
        )
    if problems:
        raise IrisError("\n".join(f"{recipe_file}: {p}" for p in problems))

    objective = objectives.get(settings.objective.name)
    cfg: dict[str, Any] = {
        "base_model": base_model,
        "chat_template": recipe_data["chat_template"],
        "datasets": [_dataset_entry(TRAIN_FILE, objective)],
        "dataset_prepared_path": PREPARED,
        "output_dir": CHECKPOINTS,
    }
    if objective.preference:
        cfg.update(objective.axolotl_keys(settings.objective.settings))
        # Axolotl's own length filter tokenizes the prompt as text and cannot read conversational rows; the data
        # stage has already dropped rows longer than sequence_len (a pair by its longer answer).
        cfg["skip_prepare_dataset"] = True
        cfg["remove_unused_columns"] = False  # TRL's preference trainers read columns the model does not take
    # the family's end of turn is trained (train_on_eos: turn) so the model stops; tokenizer_default: Axolotl's own
    if eot := chat_families.end_of_turn(recipe_data["chat_template"]):
        cfg["eot_tokens"] = eot

    if settings.lora is not None:
        lora = settings.lora
        cfg["adapter"] = method
        cfg["lora_r"] = lora.r
        cfg["lora_alpha"] = lora.alpha
        cfg["lora_dropout"] = lora.dropout
        if lora.target == "all-linear":
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = list(lora.target)
        if lora.rslora:
            cfg["peft_use_rslora"] = True
        if method == "qlora":
            cfg["load_in_4bit"] = True

    for key, ax_key in TRAIN_KEYS.items():
        if train.get(key) is not None:
            cfg[ax_key] = train[key]
    max_steps = settings.train.max_steps
    if max_steps is None and settings.train.epochs is None:
        cfg["num_epochs"] = 1

    # Resume points: every save_steps, or four per run when the recipe does not say.
    if train.get("save_steps") is None:
        if max_steps:
            cfg["save_steps"] = max(1, math.ceil(max_steps / 4))
        else:
            cfg["saves_per_epoch"] = 4
    cfg["save_strategy"] = "steps"
    cfg["save_total_limit"] = SAVE_TOTAL_LIMIT

    # eval_steps 0: no validation during training; the eval stage still measures base and fine-tuned validation loss.
    if has_val and train.get("eval_steps") != 0:
        cfg["test_datasets"] = [_dataset_entry(VAL_FILE, objective)]
        cfg["val_set_size"] = 0.0
        cfg["eval_sample_packing"] = False  # a small validation set cannot fill packed batches
        if train.get("eval_steps") is None:
            if max_steps:
                cfg["eval_steps"] = max_steps  # one evaluation, at the end
            else:
                cfg["evals_per_epoch"] = 1
    else:
        cfg["val_set_size"] = 0.0
        cfg["eval_strategy"] = "no"
        cfg.pop("eval_steps", None)

    precision = settings.train.precision
    if cpu:
        # Axolotl's bf16: auto becomes fp16 on CPU, so precision is decided here: bf16 where the CPU computes it
        # natively (auto) or where the recipe asks for it, fp32 otherwise (fp16 on CPU is emulated and slow).
        # Triton LoRA kernels need CUDA; pinned memory needs a GPU.
        bf16 = precision == "bf16" or (precision == "auto" and cpu_has_bf16())
        cfg.update(
            {
                "bf16": bf16,
                "fp16": False,
                "tf32": False,
                "attn_implementation": "sdpa",
                "lora_mlp_kernel": False,
                "lora_qkv_kernel": False,
                "lora_o_kernel": False,
                "dataloader_pin_memory": False,
                "dataset_num_proc": max(1, spec.cpu_threads),
            }
        )
    else:
        cfg.update(gpus.precision_flags(precision, gpu))
        cfg["attn_implementation"] = gpus.attention(gpu)
        if spec.deepspeed:
            cfg["deepspeed"] = DEEPSPEED_FILE
        if spec.fsdp:
            cfg["fsdp_version"] = 2
            # No layer class: accelerate wraps the model's own _no_split_modules (its decoder layers).
            cfg["fsdp_config"] = {
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "state_dict_type": "FULL_STATE_DICT",
                "offload_params": False,
                "reshard_after_forward": True,
                "cpu_ram_efficient_loading": True,
            }

    cfg["plugins"] = [PLUGIN]
    cfg["iris_cpu"] = cpu
    cfg["iris_metrics_file"] = METRICS_FILE
    cfg["iris_progress"] = True
    if resume_from:
        cfg["resume_from_checkpoint"] = resume_from
    cfg.update(tracking_keys(recipe_data, run_name))

    extra = dict(recipe_data.get("axolotl") or {})
    if "plugins" in extra:  # the recipe's plugins come beside the one iris-recipes needs, not instead of it
        cfg["plugins"] += [p for p in extra.pop("plugins") or [] if p != PLUGIN]
    return deep_merge(cfg, extra)


def config_origins(recipe_data: dict) -> dict[str, str]:
    """Axolotl key -> the recipe key it came from (for error messages)."""
    origins = {ax: f"train.{key}" for key, ax in TRAIN_KEYS.items()}
    origins.update(
        {
            "lora_r": "lora.r",
            "lora_alpha": "lora.alpha",
            "lora_dropout": "lora.dropout",
            "lora_target_linear": "lora.target",
            "lora_target_modules": "lora.target",
            "peft_use_rslora": "lora.rslora",
            "adapter": "method",
            "load_in_4bit": "method",
            "base_model": "base_model",
            "chat_template": "chat_template",
        }
    )
    objective = objectives.of(recipe_data)
    if objective.preference:
        origins["rl"] = "objective"
        origins.update({ax: f"{objective.name}.{key}" for key, ax in objective.settings.items()})
    for key in recipe_data.get("axolotl") or {}:
        origins[key] = f"axolotl.{key}"
    return origins


def render(cfg: dict, *, recipe_path: str | Path, recipe_hash: str, command: str | None = None) -> str:
    """The YAML text of `axolotl.yaml`, with a header naming the recipe that produced it."""
    header = [
        f"# Generated by iris-recipes from {recipe_path}",
        f"# recipe sha256: {recipe_hash}",
        "# Do not edit: change the recipe (or its axolotl: block) and run it again.",
        "# Paths are relative to this run directory; launch from here:",
    ]
    if command:
        header.append(f"#   {command}")
    return "\n".join(header) + "\n" + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=100)


def tokenization_config(recipe_data: dict, model_dir: str | Path) -> dict:
    """The validated Axolotl config that tokenizes a run's rows as its training did (eval's validation loss reads
    it): the recipe's generated config, its axolotl: block included as the run accepted it. The launch does not
    change how rows are tokenized; a GPU launch is planned where only a GPU trains the recipe (qlora, 8-bit optimizers)."""
    cuda_only = view(recipe_data).method == "qlora" or recipe_data["train"].get("optimizer") in CUDA_ONLY_OPTIMIZERS
    spec = LaunchSpec(device="gpu" if cuda_only else "cpu")
    cfg = build_config(recipe_data, base_model=str(model_dir), spec=spec, has_val=False, allow_unsafe_axolotl_keys=True)
    return validate(cfg, recipe_data=recipe_data, recipe_file="recipe.yaml")


# -- Axolotl's own validation ------------------------------------------------------------------------------------
def _known_keys(model_cls) -> set[str]:
    keys = set()
    for name, field in model_cls.model_fields.items():
        keys.add(name)
        alias = field.validation_alias
        if isinstance(alias, str):
            keys.add(alias)
        elif alias is not None and hasattr(alias, "choices"):
            keys.update(c for c in alias.choices if isinstance(c, str))
        if field.alias:
            keys.add(field.alias)
    return keys


def validate(cfg: dict, *, recipe_data: dict, recipe_file: str | Path, gpu: dict | None = None) -> dict:
    """Check `cfg` with Axolotl's validator (plus unknown keys in the axolotl: block, which Axolotl ignores).

    `gpu`: None checks no GPU capability; {"probe": True, "n_gpu": N, "n_node": M} asks this machine's GPU
    (Axolotl's own gpu_capabilities()); any other dict is the capabilities of a named GPU type
    (`GPU.axolotl_capabilities`), for planning on a machine without it.
    Returns Axolotl's normalized config; raises IrisError naming the recipe key behind each problem.
    """
    # Axolotl logs to stdout, which belongs to the command's own output (a dry run prints the config there).
    with contextlib.redirect_stdout(sys.stderr):
        return _validate(cfg, recipe_data=recipe_data, recipe_file=recipe_file, gpu=gpu)


def _validate(cfg: dict, *, recipe_data: dict, recipe_file: str | Path, gpu: dict | None) -> dict:
    import pydantic
    from axolotl.cli.config import prepare_plugins
    from axolotl.integrations.config import merge_input_args
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    origins = config_origins(recipe_data)
    saved_env = dict(os.environ)  # plugin registration touches the environment; keep this process clean
    ax_log = logging.getLogger("axolotl")
    saved_level = ax_log.level
    ax_log.setLevel(logging.WARNING)  # its INFO lines describe defaults it fills in; the run's log has them
    try:
        work = DictDefault(copy.deepcopy(cfg))
        prepare_plugins(work)
        _, input_cls = merge_input_args()
        known = _known_keys(input_cls)
        unknown = [k for k in (recipe_data.get("axolotl") or {}) if k not in known]
        if unknown:
            lines = []
            for key in unknown:
                close = closest(key, sorted(known))
                hint = f" (did you mean {close}?)" if close else ""
                lines.append(
                    f"{recipe_file}: axolotl.{key}: not an Axolotl 0.19 config key{hint}; "
                    "Axolotl would silently ignore it. Fix or remove it."
                )
            raise IrisError("\n".join(lines))
        capabilities = env_capabilities = None
        if gpu and gpu.get("probe"):
            from axolotl.cli.config import gpu_capabilities

            capabilities, env_capabilities = gpu_capabilities()
            capabilities.update(n_gpu=gpu["n_gpu"], n_node=gpu["n_node"])
        elif gpu:
            import torch

            capabilities = dict(gpu)
            env_capabilities = {"torch_version": str(torch.__version__).split("+", maxsplit=1)[0]}
        try:
            return validate_config(work, capabilities=capabilities, env_capabilities=env_capabilities)
        except pydantic.ValidationError as exc:
            lines = []
            for err in exc.errors():
                loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith("function-")]
                key = loc[0] if loc else ""
                where = origins.get(key, f"generated key {key}" if key else "the generated config")
                msg = err.get("msg", "invalid").removeprefix("Value error, ")
                lines.append(f"{recipe_file}: {where}: Axolotl rejects {'.'.join(loc) or 'the config'}: {msg}")
            raise IrisError("\n".join(lines)) from None
        except (ValueError, TypeError) as exc:
            raise IrisError(
                f"{recipe_file}: Axolotl rejects the generated config: {exc}. Check the train/lora "
                "keys and the axolotl: block."
            ) from None
    finally:
        ax_log.setLevel(saved_level)
        os.environ.clear()
        os.environ.update(saved_env)
