"""Axolotl keys that a recipe's `axolotl:` block may set only when the user passes --allow-unsafe-axolotl-keys.

A recipe is data: running it must not load code, reach the network with the user's credentials, or read or write
outside its run directory. These Axolotl 0.19 keys (from its config schema, axolotl/utils/schemas/) do one of
those. `NAME_*` covers every key with that prefix; `a.b` is key b inside the mapping a.
"""

from __future__ import annotations

from typing import Any

FLAG = "--allow-unsafe-axolotl-keys"

_REPLACES_DATA = "replaces the recipe's data: reads any file or Hub dataset; its `type` can import Python code"
_TRACKER = "sends metrics (some settings: checkpoints) to {} with the user's credentials"

UNSAFE_AXOLOTL_KEYS: dict[str, str] = {
    # code
    "plugins": "imports the named Python modules into every training process",
    "trust_remote_code": "runs Python code that comes with the model's Hub repository",
    "trainer_cls": "imports a trainer class from any Python module",
    "torchdistx_path": "puts a directory on Python's import path",
    "use_kernels": "downloads compiled kernels from the Hub and loads them",
    "model_kwargs": "goes to from_pretrained, where it can enable remote code or pass a token",
    "overrides_of_model_kwargs": "goes to from_pretrained, where it can enable remote code or pass a token",
    "processor_kwargs": "goes to the processor's from_pretrained, where it can enable remote code or pass a token",
    "do_causal_lm_eval": "loads `evaluate` metrics: scripts downloaded from the Hub and run",
    "eval_causal_lm_metrics": "names `evaluate` metrics: scripts downloaded from the Hub and run",
    "trl.reward_funcs": "imports reward functions from any Python module, or downloads a reward model",
    "trl.rollout_func": "imports a rollout function from any Python module",
    "trl.use_vllm": "talks to a vLLM server over the network",
    "trl.vllm_server_host": "talks to a vLLM server over the network",
    "vllm": "configures a vLLM server: a module it imports and a host it serves on",
    # data the recipe does not declare
    "datasets": _REPLACES_DATA,
    "test_datasets": _REPLACES_DATA,
    "pretraining_dataset": _REPLACES_DATA,
    "do_bench_eval": "downloads a benchmark dataset from the Hub",
    "bench_dataset": "downloads a benchmark dataset from the Hub",
    # the network, with the user's credentials
    "hub_model_id": "pushes checkpoints to the Hugging Face Hub with the user's token",
    "hub_strategy": "pushes checkpoints to the Hugging Face Hub with the user's token",
    "hub_revision": "pushes checkpoints to a Hub branch with the user's token",
    "push_to_hub": "pushes checkpoints to the Hugging Face Hub with the user's token",
    "push_dataset_to_hub": "uploads the prepared dataset to the Hub with the user's token",
    "hf_use_auth_token": "sends the user's Hugging Face token when loading datasets",
    "use_wandb": _TRACKER.format("Weights & Biases"),
    "wandb_*": _TRACKER.format("Weights & Biases"),
    "use_mlflow": _TRACKER.format("an MLflow server"),
    "mlflow_*": _TRACKER.format("an MLflow server"),
    "hf_mlflow_log_artifacts": _TRACKER.format("an MLflow server"),
    "use_comet": _TRACKER.format("Comet"),
    "comet_*": _TRACKER.format("Comet"),
    "use_trackio": _TRACKER.format("trackio or a Hub Space"),
    "trackio_*": _TRACKER.format("trackio or a Hub Space"),
    "use_otel_metrics": "serves metrics on a network port",
    "otel_metrics_*": "serves metrics on a network port",
    "use_ray": "starts or joins a Ray cluster",
    "ray_*": "starts or joins a Ray cluster",
    # another model than the recipe's
    "base_model": "replaces the recipe's base_model (set base_model: in the recipe instead)",
    "base_model_config": "loads the model config from another path or Hub repository",
    "tokenizer_config": "loads the tokenizer from another path or Hub repository",
    "lora_model_dir": "loads an adapter from any path",
    # files outside the run directory
    "output_dir": "writes checkpoints outside the run directory",
    "dataset_prepared_path": "writes the tokenized dataset outside the run directory",
    "resume_from_checkpoint": "reads a checkpoint from any path (iris-recipes run --resume finds the run's own)",
    "deepspeed": "reads a DeepSpeed JSON from any path (use iris-recipes run --deepspeed)",
    "chat_template_jinja": "may be a path: reads a template from any file",
    "dynamic_checkpoint": "watches and deletes a trigger file at any path",
    "iris_metrics_file": "moves the training metrics file, which iris-recipes keeps in the run directory",
}


def _reason(key: str, inside: str = "") -> str | None:
    name = f"{inside}.{key}" if inside else key
    if name in UNSAFE_AXOLOTL_KEYS:
        return UNSAFE_AXOLOTL_KEYS[name]
    for pattern, reason in UNSAFE_AXOLOTL_KEYS.items():
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return reason
    return None


def unsafe_axolotl_keys(block: Any) -> list[tuple[tuple, str]]:
    """(key path inside the axolotl block, reason) for every unsafe key `block` sets."""
    if not isinstance(block, dict):
        return []
    found = []
    for key, value in block.items():
        reason = _reason(str(key))
        if reason:
            found.append(((key,), reason))
        elif isinstance(value, dict):
            found += [((key, sub), r) for sub in value if (r := _reason(str(sub), str(key)))]
    return found


def advice(reason: str) -> str:
    """The message for one unsafe key."""
    return f"{reason}; a recipe may not do that by itself. Remove the key, or pass {FLAG} if you trust this recipe"


BEGIN, END = "<!-- unsafe-axolotl-keys:begin -->", "<!-- unsafe-axolotl-keys:end -->"


def render() -> str:
    """The README's table of these keys (scripts/gen_reference.py writes it; a test keeps it in sync)."""
    rows = [f"| `{key}` | {reason} |" for key, reason in UNSAFE_AXOLOTL_KEYS.items()]
    return "\n".join([BEGIN, "| key in `axolotl:` | why it needs the flag |", "|---|---|", *rows, END])
