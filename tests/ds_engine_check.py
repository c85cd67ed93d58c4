"""DeepSpeed's own checks of a shipped ZeRO JSON with the Trainer arguments a generated Axolotl config implies.

    python tests/ds_engine_check.py AXOLOTL_YAML[:step] ... -- DEEPSPEED_JSON ...

For each config and each JSON: fills the JSON's "auto" values the way transformers' Trainer does
(HfTrainerDeepSpeedConfig), parses the result with DeepSpeedConfig and, for a config marked `:step`, builds a real
DeepSpeed engine on the CPU accelerator (one process, gloo) with the optimizer the Trainer would create for the
config's `optimizer:` and trains one step of a tiny Llama. That engine is where DeepSpeed refuses ZeRO-Offload with a
client optimizer unless the JSON allows it. Prints one `RESULT {...}` line per pair; an error ends the process.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.update(MASTER_ADDR="127.0.0.1", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
os.environ.setdefault("MASTER_PORT", "29631")

import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments  # noqa: E402
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig  # noqa: E402


def trainer_args(cfg: dict, out: str) -> TrainingArguments:
    """The TrainingArguments fields that DeepSpeed's "auto" values come from, as Axolotl sets them."""
    return TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=cfg["micro_batch_size"],
        gradient_accumulation_steps=cfg.get("gradient_accumulation_steps", 1),
        max_grad_norm=cfg.get("max_grad_norm") or 1.0,
        learning_rate=cfg["learning_rate"],
        weight_decay=cfg.get("weight_decay") or 0.0,
        optim=cfg.get("optimizer", "adamw_torch"),
        bf16=cfg.get("bf16") is True,
        fp16=cfg.get("fp16") is True,
        use_cpu=True,
        report_to=[],
    )


def leftover_auto(node, path="") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leftover_auto(v, f"{path}.{k}" if path else k)]
    return [path] if node == "auto" else []


def check(config_path: str, json_path: str, step: bool) -> dict:
    import deepspeed
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = yaml.safe_load(open(config_path))
    ds = json.load(open(json_path))
    args = trainer_args(cfg, "/tmp/iris-ds-check")
    model = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=256,
        )
    )
    hf = HfTrainerDeepSpeedConfig(ds)
    hf.trainer_config_process(args)
    hf.trainer_config_finalize(args, model, num_training_steps=10)
    parsed = DeepSpeedConfig(hf.config)
    offload = parsed.zero_config.offload_optimizer
    result = {
        "config": config_path,
        "json": os.path.basename(json_path),
        "stage": parsed.zero_optimization_stage,
        "bf16": parsed.bfloat16_config.enabled,
        "fp16": parsed.float16_config.enabled,
        "train_batch_size": parsed.train_batch_size,
        "micro_batch": parsed.train_micro_batch_size_per_gpu,
        "gradient_accumulation": parsed.gradient_accumulation_steps,
        "gradient_clipping": parsed.gradient_clipping,
        "offload_optimizer": offload is not None and str(offload.device).endswith("cpu"),
        "force_ds_cpu_optimizer": parsed.zero_force_ds_cpu_optimizer,
        "auto_left": leftover_auto(hf.config),
    }
    if step:
        opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
        optimizer = opt_cls(model.parameters(), **opt_kwargs)
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=hf.config)
        ids = torch.randint(0, 256, (cfg["micro_batch_size"], 16))
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        result.update(
            optimizer=f"{type(optimizer).__name__}(fused={opt_kwargs.get('fused', False)})", step_loss=float(loss)
        )
    return result


def main(argv: list[str]) -> int:
    split = argv.index("--")
    for spec in argv[:split]:
        config_path, _, mode = spec.partition(":")
        for json_path in argv[split + 1 :]:
            print("RESULT " + json.dumps(check(config_path, json_path, mode == "step")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
