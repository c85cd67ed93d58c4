"""GPUs: the named types a launch is planned for (`--gpu-type`), the ones this machine has, and what each supports.

What a GPU supports decides the generated config: bf16 and TF32 need compute capability 8.0 (Ampere) or newer, so
a T4 (7.5) or V100 (7.0) trains in fp16 without TF32; flash-attention 2 needs Ampere too. Detection asks
`nvidia-smi` (no torch import, ~50 ms), falling back to torch in a child process where nvidia-smi is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass

# Peak dense 16-bit tensor-core throughput (no sparsity) from each vendor datasheet; memory as nvidia-smi reports
# memory.total (a little under the advertised GB).
SOURCES = {
    "t4": "NVIDIA T4 datasheet: mixed precision (FP16/FP32) 65 TFLOPS; 16 GB GDDR6",
    "l4": "NVIDIA L4 datasheet: FP16/BF16 tensor 242 TFLOPS with sparsity, 121 dense; 24 GB GDDR6",
    "a10g": "NVIDIA A10 datasheet (the A10G is AWS's A10 variant, no datasheet of its own): BF16 tensor 125 TFLOPS "
    "dense; 24 GB GDDR6",
    "a100-40": "NVIDIA A100 datasheet: BF16 tensor 312 TFLOPS dense; 40 GB HBM2",
    "a100-80": "NVIDIA A100 datasheet: BF16 tensor 312 TFLOPS dense; 80 GB HBM2e",
    "h100": "NVIDIA H100 datasheet (SXM5): BF16 tensor 1,979 TFLOPS with sparsity, 989 dense; 80 GB HBM3",
}


@dataclass(frozen=True)
class GPU:
    name: str
    capability: tuple[int, int]
    memory_gib: float
    peak_tflops: float | None = None  # dense 16-bit tensor throughput; None when unknown
    key: str | None = None  # the --gpu-type name, when it is one of GPU_TYPES

    @property
    def bf16(self) -> bool:
        return self.capability >= (8, 0)

    @property
    def tf32(self) -> bool:
        return self.capability >= (8, 0)

    @property
    def flash_attention(self) -> bool:
        """flash-attn 2 runs on Ampere and newer."""
        return self.capability >= (8, 0)

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def axolotl_capabilities(self, n_gpu: int, n_node: int) -> dict:
        """The `capabilities` dict Axolotl's validate_config takes (as its own gpu_capabilities() builds it)."""
        return {
            "bf16": self.bf16,
            "fp8": self.capability >= (8, 9),
            "tf32": self.tf32,
            "n_gpu": n_gpu,
            "n_node": n_node,
            "compute_capability": self.sm,
        }


GPU_TYPES = {
    "t4": GPU("Tesla T4", (7, 5), 15.0, 65.0, "t4"),
    "l4": GPU("NVIDIA L4", (8, 9), 22.5, 121.0, "l4"),
    "a10g": GPU("NVIDIA A10G", (8, 6), 22.5, 125.0, "a10g"),
    "a100-40": GPU("NVIDIA A100-SXM4-40GB", (8, 0), 40.0, 312.0, "a100-40"),
    "a100-80": GPU("NVIDIA A100-SXM4-80GB", (8, 0), 80.0, 312.0, "a100-80"),
    "h100": GPU("NVIDIA H100 80GB HBM3", (9, 0), 79.6, 989.0, "h100"),
}


def known_type(name: str, memory_gib: float) -> str | None:
    """The GPU_TYPES key of a detected GPU, from its name (and memory for the two A100s)."""
    n = name.lower()
    if "a100" in n:
        return "a100-80" if memory_gib > 50 else "a100-40"
    for key, marker in (("t4", "t4"), ("l4", " l4"), ("a10g", "a10g"), ("h100", "h100")):
        if marker in f" {n}":
            return key
    return None


def parse_nvidia_smi(text: str) -> list[GPU]:
    """GPUs from `nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        name, cap, mem = parts
        try:
            major, minor = (int(x) for x in cap.split("."))
            memory = round(float(mem) / 1024, 1)
        except ValueError:
            continue
        key = known_type(name, memory)
        tflops = GPU_TYPES[key].peak_tflops if key else None
        gpus.append(GPU(name, (major, minor), memory, tflops, key))
    return gpus


_TORCH_PROBE = (
    "import torch\nfor i in range(torch.cuda.device_count()):\n"
    "    p = torch.cuda.get_device_properties(i)\n"
    "    print(f'{p.name}, {p.major}.{p.minor}, {p.total_memory // 2**20}')"
)


def detect() -> list[GPU]:
    """This machine's CUDA GPUs (empty without any)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return []
        return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []
    if importlib.util.find_spec("torch") is None:
        return []
    try:
        out = subprocess.run([sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def precision_flags(precision: str, gpu: GPU | None) -> dict:
    """Axolotl's bf16/fp16/tf32 for the recipe's `train.precision` on `gpu` (None: a GPU not known yet).

    `auto` is bf16 where the GPU has it, else fp16; TF32 only where supported (transformers rejects tf32 on a T4).
    For an unknown GPU `auto` stays Axolotl's own `bf16: auto` (it picks per device at launch) and TF32 stays off.
    """
    tf32 = bool(gpu and gpu.tf32)
    if precision == "auto":
        if gpu is None:
            return {"bf16": "auto", "fp16": False, "tf32": False}
        return {"bf16": gpu.bf16, "fp16": not gpu.bf16, "tf32": tf32}
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "tf32": tf32}


def attention(gpu: GPU | None) -> str:
    """flash-attention 2 when it is installed and the GPU runs it, else PyTorch SDPA; both keep packed samples
    apart (Axolotl warns that without a backend `sample_packing` lets them attend to each other)."""
    if gpu is not None and gpu.flash_attention and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"
