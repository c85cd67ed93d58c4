"""GPU configs that start: precision per GPU (no TF32 or bf16 on a T4), Axolotl's own GPU capability checks before
launch, a deliberate attention kernel so sample packing keeps samples apart, and every shipped DeepSpeed JSON run
through DeepSpeed's parser and engine with the Trainer arguments the generated config implies.

GPUs are simulated the way the code meets them: an `nvidia-smi` on PATH that answers for a T4 or an A100."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iris_recipes import cli
from iris_recipes.train import config as axconfig
from iris_recipes.train import gpus
from iris_recipes.train.launch import make_spec
from tests.conftest_train import REPO

RECIPE = REPO / "recipes" / "llama1b-math.yaml"
SMI = {"t4": "Tesla T4, 7.5, 15360", "a100": "NVIDIA A100-SXM4-40GB, 8.0, 40960"}


@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    """Put an nvidia-smi answering for `kind` first on PATH."""

    def install(kind: str) -> None:
        bin_dir = tmp_path / "smi-bin"
        bin_dir.mkdir(exist_ok=True)
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\necho '{SMI[kind]}'\n")
        smi.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")

    return install


def dry_run_config(capsys, *args: str) -> tuple[int, dict | None, str, str]:
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    flags = [a for a in args if a not in overrides]
    code = cli.main(["run", str(RECIPE), *overrides, "--dry-run", *flags])
    captured = capsys.readouterr()
    cfg = None
    if code == 0:
        text = captured.out.split("# axolotl.yaml\n", 1)[1].split("# deepspeed.json", 1)[0]
        cfg = yaml.safe_load(text)
    return code, cfg, captured.out, captured.err


def test_detects_gpus_from_nvidia_smi(nvidia_smi):
    nvidia_smi("t4")
    (gpu,) = gpus.detect()
    assert (gpu.name, gpu.capability, gpu.memory_gib, gpu.key) == ("Tesla T4", (7, 5), 15.0, "t4")
    assert not gpu.bf16 and not gpu.tf32 and gpu.sm == "sm_75"
    assert gpus.parse_nvidia_smi(SMI["a100"])[0].key == "a100-40"


def test_precision_auto_on_a_t4_is_fp16_without_tf32(capsys, nvidia_smi, tmp_path):
    """The defect: `precision: auto` wrote `tf32: true`, which transformers rejects on a GPU without TF32 (a T4;
    this CPU machine has none either, so TrainingArguments reproduces the rejection here)."""
    from transformers import TrainingArguments

    nvidia_smi("t4")
    code, cfg, out, err = dry_run_config(capsys, "--gpus", "1")
    assert code == 0, err
    TrainingArguments(output_dir=str(tmp_path), tf32=cfg["tf32"], use_cpu=True, report_to=[])
    assert (cfg["bf16"], cfg["fp16"], cfg["tf32"]) == (False, True, False)
    assert "# GPU: Tesla T4 (sm_75, 15.0 GiB; found on this machine): fp16, TF32 off, attention sdpa" in out
    assert "# launch plan: LoRA r16, sft, micro batch 4 x 2048 tokens, 16-bit" in out  # the plan for the GPU found
    assert "#   on Tesla T4 (15.0 GiB): does not fit" in out


@pytest.mark.parametrize(
    "gpu, precision, flags",
    [
        ("t4", "auto", (False, True, False)),
        ("a100-40", "auto", (True, False, True)),
        ("h100", "auto", (True, False, True)),
        ("l4", "fp16", (False, True, True)),
        ("a10g", "fp32", (False, False, True)),
        (None, "auto", ("auto", False, False)),  # GPU not known here: Axolotl picks bf16 or fp16 on it at launch
        ("cpu", "auto", (False, False, False)),  # a CPU without native bf16 (below: one with it)
        ("cpu+bf16", "auto", (True, False, False)),
        ("cpu", "bf16", (True, False, False)),  # asked for: emulated there, but what the recipe says
        ("cpu+bf16", "fp16", (False, False, False)),  # fp16 on a CPU: fp32
        ("cpu+bf16", "fp32", (False, False, False)),
    ],
)
def test_precision_resolved_per_device(gpu, precision, flags, monkeypatch):
    monkeypatch.setattr(axconfig, "cpu_has_bf16", lambda: gpu == "cpu+bf16")
    data = yaml.safe_load(
        yaml.safe_dump({"chat_template": "llama3", "train": {"precision": precision, "micro_batch_size": 1}})
    )
    spec = make_spec(device="cpu") if gpu and gpu.startswith("cpu") else make_spec(gpus=1)
    cfg = axconfig.build_config(
        data, base_model="m", spec=spec, has_val=False, gpu=gpus.GPU_TYPES.get(gpu) if gpu else None
    )
    assert (cfg["bf16"], cfg["fp16"], cfg["tf32"]) == flags


def test_bf16_on_a_gpu_without_it_is_refused(capsys, nvidia_smi):
    nvidia_smi("t4")
    code, _, _, err = dry_run_config(capsys, "--gpus", "1", "train.precision=bf16")
    assert code == 2 and "train.precision: bf16 needs a GPU with bf16" in err and "Tesla T4 (sm_75)" in err


@pytest.mark.parametrize("how", ["found", "named"])
def test_axolotls_gpu_capability_checks_run(capsys, nvidia_smi, how):
    """The defect: Axolotl validated GPU configs without GPU capabilities (`validate(..., gpu=False)`), so what it
    rejects for a GPU (fp8 on a T4, say) passed the dry run and failed after launch."""
    args = ["--gpus", "1", "axolotl.fp8=true"]
    if how == "found":
        nvidia_smi("t4")
    else:
        args += ["--gpu-type", "t4"]
    code, _, _, err = dry_run_config(capsys, *args)
    assert code == 2 and "fp8 requested, but fp8 is not supported on this GPU" in err
    assert str(RECIPE) in err


def test_sample_packing_gets_an_attention_kernel_that_keeps_samples_apart():
    """The defect: GPU configs named no attention kernel, and Axolotl's packing then lets packed samples attend to
    each other (it only warns). Checked on Axolotl's own normalized config."""
    from iris_recipes.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    spec = make_spec(gpus=1)
    cfg = axconfig.build_config(
        recipe.data, base_model="unsloth/Llama-3.2-1B-Instruct", spec=spec, has_val=True, gpu=gpus.GPU_TYPES["a100-40"]
    )
    assert cfg["sample_packing"] is True and cfg["attn_implementation"] == "sdpa"  # flash-attn is not installed here
    normalized = axconfig.validate(
        cfg, recipe_data=recipe.data, recipe_file=RECIPE, gpu=gpus.GPU_TYPES["a100-40"].axolotl_capabilities(1, 1)
    )
    assert normalized["sample_packing"] is True and normalized["attn_decontaminates_packing"] is True


def test_flash_attention_when_installed_on_ampere(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real(name, *a)
    )
    assert gpus.attention(gpus.GPU_TYPES["a100-80"]) == "flash_attention_2"
    assert gpus.attention(gpus.GPU_TYPES["t4"]) == "sdpa"  # flash-attn 2 needs Ampere
    assert gpus.attention(None) == "sdpa"


def test_device_facts_for_run_json():
    from iris_recipes.train.stage import device_facts

    spec = make_spec(gpus=1)
    facts = device_facts(
        spec, gpus.GPU_TYPES["t4"], {"bf16": False, "fp16": True, "tf32": False, "attn_implementation": "sdpa"}
    )
    assert facts == {
        "precision": "fp16",
        "tf32": False,
        "attention": "sdpa",
        "gpu": {"name": "Tesla T4", "compute_capability": "sm_75", "memory_gib": 15.0},
    }


# -- DeepSpeed: its own parser and engine on every shipped JSON ---------------------------------------------------
DEEPSPEED_JSONS = sorted((REPO / "iris_recipes" / "deepspeed").glob("*.json"), key=lambda p: (len(p.stem), p.stem))


@pytest.mark.slow
def test_every_deepspeed_json_parses_and_steps_with_the_trainer_arguments(capsys, tmp_path):
    """Each shipped JSON, its "auto" values filled from the Trainer arguments of the generated llama1b-math config
    (HfTrainerDeepSpeedConfig), parsed by DeepSpeedConfig for bf16 (A100) and fp16 (T4), and run for one step by a
    real DeepSpeed engine on CPU with the recipe's optimizer (torch's fused AdamW). The defect: zero3-offload
    offloads the optimizer while the Trainer hands DeepSpeed a torch optimizer, which DeepSpeed refuses."""
    assert [p.stem for p in DEEPSPEED_JSONS] == ["zero1", "zero2", "zero3", "zero3-offload"]
    configs = {}
    for gpu in ("a100-40", "t4"):
        code, cfg, _, err = dry_run_config(capsys, "--gpus", "2", "--gpu-type", gpu, "--deepspeed", "zero2")
        assert code == 0, err
        configs[gpu] = tmp_path / f"{gpu}.yaml"
        configs[gpu].write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "ds_engine_check.py"),
            f"{configs['a100-40']}:step",
            str(configs["t4"]),
            "--",
            *map(str, DEEPSPEED_JSONS),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    results = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert len(results) == 8
    for r in results:
        bf16 = r["config"].endswith("a100-40.yaml")
        assert (r["bf16"], r["fp16"]) == (bf16, not bf16)
        assert (r["micro_batch"], r["gradient_accumulation"], r["train_batch_size"]) == (4, 4, 16)
        assert r["gradient_clipping"] == 1.0 and r["auto_left"] == []
        assert r["stage"] == {"zero1": 1, "zero2": 2, "zero3": 3, "zero3-offload": 3}[Path(r["json"]).stem]
        if r["offload_optimizer"]:  # the optimizer-offload rule: a client optimizer needs this set to false
            assert r["force_ds_cpu_optimizer"] is False
        if bf16:
            assert r["optimizer"] == "AdamW(fused=True)" and r["step_loss"] > 0
    assert [r["offload_optimizer"] for r in results[:4]] == [False, False, False, True]
