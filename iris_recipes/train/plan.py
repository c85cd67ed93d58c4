"""The launch plan `run --dry-run` prints: memory per GPU (with and without gradient checkpointing), whether it fits
each GPU type, tokens per epoch and an estimated time, before any GPU hour is spent.

Time comes from one measured throughput (MEASURED) turned into a hardware efficiency (achieved / peak FLOPs), then
applied to the target GPU's datasheet peak (gpus.SOURCES) and the recipe's FLOPs per token. It is a rough guide
(+-50%): the measurement used torch.compile and a chunked loss, which Axolotl's default config does not.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from iris_recipes import objectives
from iris_recipes.recipe.view import view
from iris_recipes.train import gpus
from iris_recipes.train.memory import GIB, Setup, Shape, breakdown

CUDA_RESERVE_GIB = 1.0  # CUDA context, cuBLAS workspace and allocator slack beyond what tensors hold

# config.json of the recipes' base models (their hub repositories), for planning where the model is not at hand.
KNOWN_SHAPES = {
    "unsloth/Llama-3.2-1B-Instruct": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
        head_dim=64,
        model_type="llama",
    ),
    "unsloth/Llama-3.2-3B-Instruct": dict(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
        head_dim=128,
        model_type="llama",
    ),
    "microsoft/Phi-3.5-mini-instruct": dict(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
        tie_word_embeddings=False,
        model_type="phi3",
    ),
    "HuggingFaceTB/SmolLM2-135M-Instruct": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
        model_type="llama",
    ),
}

# Measured training throughput, each with where it comes from.
MEASURED = [
    {
        "gpu": "a100-80",
        "model": "unsloth/Llama-3.2-3B-Instruct",
        "method": "lora",
        "gradient_checkpointing": True,
        "tokens_per_second": 8210,
        "source": "torchtune README, 'Optimization flags' table, LoRA row: Llama 3.2 3B, 1x A100, bf16, batch 2, "
        "packed sequences of 4096, torch.compile, chunked cross-entropy, activation checkpointing",
    },
]


def flops_per_token(shape: Shape, method: str, checkpointing: bool, reference: bool = False) -> float:
    """Matmul FLOPs per trained token: forward 2N, input gradients 2N, weight gradients 2N (full fine-tuning only),
    the forward again under checkpointing, and the reference model's forward (DPO, KTO)."""
    n = shape.params()
    return 2 * n * (2 + (1 if method == "full" else 0) + (1 if checkpointing else 0) + (1 if reference else 0))


def efficiency() -> tuple[float, dict]:
    """Achieved fraction of peak FLOPs in the measurement MEASURED[0]."""
    m = MEASURED[0]
    shape = Shape.from_config(KNOWN_SHAPES[m["model"]])
    achieved = m["tokens_per_second"] * flops_per_token(shape, m["method"], m["gradient_checkpointing"])
    return achieved / (gpus.GPU_TYPES[m["gpu"]].peak_tflops * 1e12), m


def model_shape(base_model: str) -> tuple[Shape | None, str]:
    """The model's shape from its config.json (a local or cached model), else the recipes' known base models."""
    cfg_file = Path(base_model) / "config.json"
    if cfg_file.is_file():
        return Shape.from_config(json.loads(cfg_file.read_text())), f"{cfg_file}"
    if base_model in KNOWN_SHAPES:
        return Shape.from_config(KNOWN_SHAPES[base_model]), f"{base_model} (its config.json, kept in the package)"
    return None, f"{base_model}: config.json not available here"


def setup_for(recipe_data: dict, cfg: dict, *, device: str, sharding: str, world_size: int) -> Setup:
    settings = view(recipe_data)
    lora = settings.lora
    adapter = {}  # full fine-tuning has no adapter settings
    if lora is not None:
        targets = None if lora.target == "all-linear" else list(lora.target)
        adapter = {"lora_r": lora.r, "lora_targets": targets, "lora_dropout": lora.dropout}
    fp32 = not (cfg.get("bf16") or cfg.get("fp16"))
    objective = objectives.get(settings.objective.name)
    return Setup(
        method=settings.method,
        sequences_per_row=objective.sequences_per_row,
        reference_copy=settings.method == "full" and objective.full_copy,
        **adapter,
        micro_batch=cfg.get("micro_batch_size", 1),
        sequence_len=cfg.get("sequence_len", 2048),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing")),
        dtype_bytes=4 if fp32 else 2,
        sharding=sharding,
        world_size=world_size,
    )


def _gib(x: float) -> str:
    return f"{x / GIB:.1f}"


def fits(total: float, gpu: gpus.GPU) -> str:
    need = total / GIB + CUDA_RESERVE_GIB
    if need <= gpu.memory_gib * 0.9:
        return "fits"
    return "tight" if need <= gpu.memory_gib else "does not fit"


def render(
    *,
    recipe_data: dict,
    cfg: dict,
    base_model: str,
    device: str,
    sharding: str,
    world_size: int,
    gpu: gpus.GPU | None,
    data_report: dict | None,
) -> str:
    """The plan as `# ` comment lines."""
    shape, where = model_shape(base_model)
    if shape is None:
        return f"# launch plan: not available ({where})\n"
    s = setup_for(recipe_data, cfg, device=device, sharding=sharding, world_size=world_size)
    on, off = (breakdown(shape, replace(s, gradient_checkpointing=v)) for v in (True, False))
    chosen = on if s.gradient_checkpointing else off
    method = f"LoRA r{s.lora_r}" if s.method == "lora" else f"QLoRA r{s.lora_r}" if s.method == "qlora" else "full"
    precision = {2: "16-bit", 4: "fp32"}[s.dtype_bytes]
    rows_of = "pairs (chosen + rejected)" if s.sequences_per_row == 2 else "rows"
    lines = [
        f"launch plan: {method}, {objectives.describe(recipe_data)}, micro batch {s.micro_batch} "
        f"{'pairs ' if s.sequences_per_row == 2 else ''}x {s.sequence_len} tokens, {precision}, "
        f"sharding {sharding}, {world_size} process(es)",
        f"  model: {shape.params() / 1e9:.2f}B parameters, {chosen['trainable_params'] / 1e6:.1f}M trained "
        f"(shape from {where})",
    ]
    lines += _objective_lines(recipe_data, s, rows_of)
    lines.append(
        f"  memory per GPU (GiB)      checkpointing on   off   "
        f"(the recipe: {'on' if s.gradient_checkpointing else 'off'})"
    )
    rows = [
        ("weights (+ adapter)", "weights"),
        ("reference model", "reference"),
        ("optimizer states", "optimizer_states"),
        ("gradients", "gradients"),
        ("activations kept", "activations"),
        ("one layer recomputed", "recompute"),
        ("loss over vocabulary", "logits"),
        ("peak", "total"),
    ]
    for label, key in rows:
        if key == "reference" and not s.reference_copy:
            continue
        lines.append(f"    {label:<24}{_gib(on[key]):>10}{_gib(off[key]):>9}")
    fit = ", ".join(f"{k} {fits(chosen['total'], g)}" for k, g in gpus.GPU_TYPES.items())
    lines.append(f"  fit (peak + {CUDA_RESERVE_GIB:.0f} GiB CUDA reserve; tight = over 90% of memory): {fit}")
    if gpu is not None:
        lines.append(f"  on {gpu.name} ({gpu.memory_gib} GiB): {fits(chosen['total'], gpu)}")
    lines += _time_lines(recipe_data, shape, s, gpu, world_size, data_report)
    return "".join(f"# {ln}\n" for ln in lines)


def _objective_lines(recipe_data: dict, s: Setup, rows_of: str) -> list[str]:
    objective = objectives.of(recipe_data)
    if not objective.preference:
        return []
    lines = [f"  objective: {objective.summary}; a micro batch runs {s.micro_batch} {rows_of}"]
    if objective.reference and s.method != "full":
        lines.append("  reference model: the base with the adapter switched off (no second copy of the weights)")
    elif s.reference_copy:
        why = "the reference" if objective.reference else "loaded by Axolotl 0.19 though the objective does not use it"
        lines.append(f"  reference model: a second, frozen copy of the weights ({why}), counted below")
    else:
        lines.append("  reference model: none")
    return lines


def _time_lines(
    recipe_data: dict, shape: Shape, s: Setup, gpu: gpus.GPU | None, world_size: int, data_report: dict | None
) -> list[str]:
    settings = view(recipe_data)
    epochs = settings.train.epochs or 1
    if data_report and data_report.get("train_tokens"):
        tokens = data_report["train_tokens"]
        where = f"from the prepared data ({data_report['train']} rows)"
    else:
        rows = settings.dataset.limit
        if not rows:
            return ["  tokens per epoch: known once the data stage has run (--until data, then --resume RUN --dry-run)"]
        tokens = rows * s.sequences_per_row * s.sequence_len
        where = (
            f"estimated: at most {rows} rows x {s.sequences_per_row * s.sequence_len} tokens; the data stage counts them "
            "(--until data, then --resume RUN --dry-run)"
        )
    lines = [f"  tokens per epoch: {tokens:,} ({where})"]
    max_steps = settings.train.max_steps
    if gpu is None or gpu.peak_tflops is None:
        return lines + ["  time: name the GPU (--gpu-type) for an estimate"]
    eff, m = efficiency()
    reference = objectives.get(settings.objective.name).reference
    rate = (
        eff
        * gpu.peak_tflops
        * 1e12
        * world_size
        / flops_per_token(shape, s.method, s.gradient_checkpointing, reference=reference)
    )
    total = tokens * epochs
    if max_steps:
        sequences = s.micro_batch * s.sequences_per_row * world_size * settings.train.gradient_accumulation
        total = min(total, max_steps * sequences * s.sequence_len)
    hours = total / rate / 3600
    took = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    lines.append(
        f"  time: ~{took} for {total:,} tokens at ~{rate:,.0f} tokens/s on {world_size} x {gpu.key or gpu.name} (+-50%)"
    )
    lines.append(
        f"    from {m['tokens_per_second']} tokens/s measured ({m['source']}): {eff:.0%} of the A100's peak "
        f"FLOPs, applied to {gpu.peak_tflops:g} TFLOPS ({gpus.SOURCES.get(gpu.key or '', 'datasheet')})"
    )
    return lines
