"""The launch plan: the memory estimator against memory measured on CPU for tiny models, the plan's figures for the
recipes' base models, tokens per epoch from the prepared data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from iris_recipes.data import prepare
from iris_recipes.train import gpus, plan
from iris_recipes.train.memory import Setup, Shape, breakdown
from tests.conftest_train import REPO

TOLERANCE = 0.15  # measured peak within 15% of the estimate (measured: 2-6% on these shapes)
LOGITS_HEAVY = {
    "hidden": 256,
    "intermediate": 704,
    "layers": 4,
    "heads": 8,
    "kv_heads": 2,
    "vocab": 8192,
    "tied": False,
    "head_dim": 32,
}
LAYERS_HEAVY = {**LOGITS_HEAVY, "layers": 8, "vocab": 512, "tied": True}


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape, setup",
    [
        (LOGITS_HEAVY, {"method": "lora", "gradient_checkpointing": True}),
        (LAYERS_HEAVY, {"method": "lora", "gradient_checkpointing": False, "lora_dropout": 0.05}),
        (LAYERS_HEAVY, {"method": "full", "gradient_checkpointing": False}),
    ],
    ids=["lora-checkpointing", "lora-dropout", "full"],
)
def test_estimate_matches_memory_measured_on_cpu(shape, setup):
    """One LoRA/full training step (PEFT, SDPA, AdamW; fp32 on CPU) of a tiny Llama: peak resident memory above the
    process's before the model, against the estimator for the same shape and setup."""
    spec = {"shape": shape, "setup": {**setup, "lora_r": 8, "micro_batch": 2, "sequence_len": 1024, "dtype_bytes": 4}}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "memory_probe.py"), json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("MEASURED ", 1)[1])
    estimate, measured = result["estimate"]["total"], result["peak"]
    assert abs(measured - estimate) <= TOLERANCE * estimate, (measured / 2**20, estimate / 2**20)


def test_parameter_counts_match_the_real_models():
    # Llama-3.2-1B: 1.24B parameters (tied embeddings); Phi-3.5-mini: 3.82B; SmolLM2-135M: 134.5M
    counts = {k: Shape.from_config(v).params() for k, v in plan.KNOWN_SHAPES.items()}
    assert round(counts["unsloth/Llama-3.2-1B-Instruct"] / 1e9, 2) == 1.24
    assert round(counts["unsloth/Llama-3.2-3B-Instruct"] / 1e9, 2) == 3.21
    assert round(counts["microsoft/Phi-3.5-mini-instruct"] / 1e9, 2) == 3.82
    assert round(counts["HuggingFaceTB/SmolLM2-135M-Instruct"] / 1e6, 1) == 134.5


def test_sharding_divides_what_it_shards():
    shape = Shape.from_config(plan.KNOWN_SHAPES["unsloth/Llama-3.2-3B-Instruct"])
    full = Setup(method="full", micro_batch=1, sequence_len=1024)
    one = breakdown(shape, full)
    z1, z2, z3 = (
        breakdown(shape, Setup(**{**full.__dict__, "sharding": z, "world_size": 8}))
        for z in ("zero1", "zero2", "zero3")
    )
    assert z1["weights"] == one["weights"] and z1["gradients"] == one["gradients"]
    assert z2["gradients"] == one["gradients"] / 8 and z3["weights"] == one["weights"] / 8
    assert (
        breakdown(shape, Setup(**{**full.__dict__, "sharding": "zero3-offload", "world_size": 8}))["optimizer_states"]
        == 0
    )
    lora = breakdown(shape, Setup(micro_batch=1, sequence_len=1024))
    assert lora["trainable_params"] == 24_313_856  # r16 on every projection of 28 layers
    assert lora["total"] < one["total"]


def test_plan_for_llama1b_math(tmp_path):
    from iris_recipes.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "llama1b-math.yaml")
    cfg = {"micro_batch_size": 4, "sequence_len": 2048, "gradient_checkpointing": True, "bf16": True}
    text = plan.render(
        recipe_data=recipe.data,
        cfg=cfg,
        base_model="unsloth/Llama-3.2-1B-Instruct",
        device="gpu",
        sharding="none",
        world_size=1,
        gpu=gpus.GPU_TYPES["a100-40"],
        data_report=None,
    )
    assert text.startswith("# launch plan: LoRA r16, sft, micro batch 4 x 2048 tokens, 16-bit")
    assert "on NVIDIA A100-SXM4-40GB (40.0 GiB): fits" in text and "t4 does not fit" in text
    assert "estimated: at most 20000 rows x 2048 tokens" in text and "time: ~" in text
    with_data = plan.render(
        recipe_data=recipe.data,
        cfg=cfg,
        base_model="unsloth/Llama-3.2-1B-Instruct",
        device="gpu",
        sharding="none",
        world_size=1,
        gpu=gpus.GPU_TYPES["t4"],
        data_report={"train": 19600, "train_tokens": 5_880_000},
    )
    assert "tokens per epoch: 5,880,000 (from the prepared data (19600 rows))" in with_data


def test_data_stage_counts_the_tokens_it_keeps(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "q" * n}, {"role": "assistant", "content": "a"}]} for n in (3, 5, 900)
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = types.SimpleNamespace(
        data={
            "name": "t",
            "dataset": {"path": "d.jsonl", "format": "messages", "val_size": 0.0},
            "train": {"sequence_len": 512},
        },
        path=tmp_path / "r.yaml",
    )
    report = prepare(recipe, tmp_path / "out", count_tokens=lambda msgs: sum(len(m["content"]) for m in msgs))
    assert report["train"] == 2 and report["train_tokens"] == (3 + 1) + (5 + 1)  # the 901-token row is too long
