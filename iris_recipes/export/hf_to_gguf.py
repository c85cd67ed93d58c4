"""Merged HF model -> F16 GGUF (llama.cpp's converter) -> quantized GGUFs (llama.cpp's quantizer).

Every output is written under a temporary name beside its destination and renamed only when complete, so an
interrupted or failed export never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.export.converter import converter_env, find_converter
from iris_recipes.fsutil import atomic_path


@dataclass(frozen=True)
class Quant:
    ftype: str  # llama.cpp's ftype constant
    bits: float  # a generous bits-per-weight, for the disk estimate
    # The export's gate: least next-token top-1 agreement with the merged model (near ties forgiven) on the check
    # prompts. Measured on SmolLM2-135M (exact agreement Q8_0 97.8%, Q4_K_M 95.7%) less a margin; the other types
    # in between by their bits per weight.
    min_top1: float


# Recipe quant name -> its llama.cpp type, size and gate.
QUANT_TYPES: dict[str, Quant] = {
    "q4_0": Quant("LLAMA_FTYPE_MOSTLY_Q4_0", 5.0, 0.90),
    "q4_1": Quant("LLAMA_FTYPE_MOSTLY_Q4_1", 5.5, 0.91),
    "q4_k_s": Quant("LLAMA_FTYPE_MOSTLY_Q4_K_S", 5.5, 0.91),
    "q4_k_m": Quant("LLAMA_FTYPE_MOSTLY_Q4_K_M", 6.0, 0.92),
    "q5_0": Quant("LLAMA_FTYPE_MOSTLY_Q5_0", 6.0, 0.92),
    "q5_1": Quant("LLAMA_FTYPE_MOSTLY_Q5_1", 6.5, 0.93),
    "q5_k_s": Quant("LLAMA_FTYPE_MOSTLY_Q5_K_S", 6.5, 0.93),
    "q5_k_m": Quant("LLAMA_FTYPE_MOSTLY_Q5_K_M", 7.0, 0.93),
    "q6_k": Quant("LLAMA_FTYPE_MOSTLY_Q6_K", 7.5, 0.94),
    "q8_0": Quant("LLAMA_FTYPE_MOSTLY_Q8_0", 9.0, 0.95),
}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_SLACK = 64 << 20  # vocabulary, metadata and file-system rounding


def check_quants(quants: list[str], where: str = "export.quantize") -> list[str]:
    """Normalized quant names; an unknown one is an error listing the valid ones (checked before any work)."""
    out = []
    for q in quants:
        name = q.strip().lower()
        if name == "f16":
            continue  # always written
        if name not in QUANT_TYPES:
            raise IrisError(
                f"{where}: unknown quantization type {q!r}. Valid types: f16 (always written), "
                f"{', '.join(QUANT_TYPES)}."
            )
        if name not in out:
            out.append(name)
    return out


# -- the merged model ---------------------------------------------------------------------------------------------
def safetensors_params(path: Path) -> int:
    """Number of weights in a .safetensors file, after checking its header and that no byte of data is missing."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(f.read(n))
        end, count = 0, 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, stop = info["data_offsets"]
            elems = 1
            for d in info["shape"]:
                elems *= d
            if stop - begin != elems * _DTYPE_BYTES.get(info["dtype"], 0) and info["dtype"] in _DTYPE_BYTES:
                raise ValueError(f"tensor {name} has {stop - begin} bytes for shape {info['shape']}")
            end, count = max(end, stop), count + elems
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error) as exc:
        raise IrisError(
            f"{path}: corrupt safetensors file ({exc}). Re-run the merge stage "
            "(`iris-recipes run RECIPE --resume`) to write the merged model again."
        ) from None
    if 8 + n + end != size:
        raise IrisError(
            f"{path}: truncated or padded safetensors file: {size} bytes, the header describes "
            f"{8 + n + end}. Re-run the merge stage (`iris-recipes run RECIPE --resume`) to write it again."
        )
    return count


def check_merged(merged: Path) -> int:
    """Check a merged model directory; returns its number of weights."""
    if not (merged / "config.json").is_file():
        raise IrisError(
            f"{merged}: no merged model (config.json missing). Train and merge first: "
            "`iris-recipes run RECIPE` (or `--resume` to finish an interrupted run)."
        )
    files = sorted(merged.glob("*.safetensors"))
    if not files:
        raise IrisError(
            f"{merged}: no *.safetensors weights. Re-run the merge stage (`iris-recipes run RECIPE --resume`)."
        )
    if not any((merged / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise IrisError(f"{merged}: no tokenizer (tokenizer.json); the merge stage must save the training tokenizer.")
    return sum(safetensors_params(f) for f in files)


# -- disk space ---------------------------------------------------------------------------------------------------
def free_bytes(path: Path) -> int:
    """Free space on the file system holding `path` (tests replace this probe)."""
    return shutil.disk_usage(path).free


def estimate_bytes(n_params: int, quants: list[str]) -> dict[str, int]:
    est = {"f16": 2 * n_params + _SLACK}
    for q in quants:
        est[q] = int(n_params * QUANT_TYPES[q].bits / 8) + _SLACK
    return est


def ensure_space(out_dir: Path, needed: int, what: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    free = free_bytes(out_dir)
    if free < needed:
        raise IrisError(
            f"{out_dir}: not enough disk space for {what}: about {needed / 2**20:.0f} MiB needed, "
            f"{free / 2**20:.0f} MiB free. Free some space or export fewer types (--quantize)."
        )


# -- conversion and quantization ----------------------------------------------------------------------------------
def convert_f16(merged: Path, dest: Path, log: Path | None = None, model_name: str | None = None) -> Path:
    """Run llama.cpp's converter on `merged`, writing an F16 GGUF at `dest` (atomically).

    `model_name` becomes the file's `general.name`. It matters beyond display: llama.cpp gives the chat tokens of
    models whose name contains "phi-3"/"phi3" Phi-3's tokenizer rule (they swallow the whitespace after them), so a
    Phi-3 model must be named as one, not after its directory (`merged/`, a cache hash).
    """
    script = find_converter()
    with atomic_path(dest) as tmp:
        cmd = [
            sys.executable,
            str(script),
            str(merged),
            "--outtype",
            "f16",
            "--outfile",
            str(tmp),
            *(["--model-name", model_name] if model_name else []),
        ]
        proc = subprocess.run(cmd, env=converter_env(script), capture_output=True, text=True)
        if log is not None:
            log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}", encoding="utf-8")
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            errors = [ln for ln in lines if "Error" in ln or "error" in ln] or lines
            raise IrisError(
                f"{merged}: llama.cpp's converter failed (exit {proc.returncode}): "
                f"{errors[-1] if errors else 'no output'}" + (f"\nFull log: {log}" if log else "")
            )
        if tmp.stat().st_size == 0:
            raise IrisError(f"{merged}: llama.cpp's converter wrote nothing" + (f"; see {log}" if log else ""))
    return dest


def _model_key(model_dir: Path) -> str:
    """Content hash of a Hugging Face model directory (weights, config, tokenizer)."""
    from iris_recipes.fsutil import sha256_file

    h = hashlib.sha256()
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and (p.suffix in (".safetensors", ".bin", ".json", ".model") or p.name == "tokenizer.json"):
            h.update(p.name.encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()[:16]


def base_f16_gguf(model_dir: str | Path, name: str | None = None) -> Path:
    """The base model as an F16 GGUF, converted by llama.cpp's converter once and cached by content and `name`
    (its `general.name`, e.g. the hub model's name: llama.cpp reads tokenizer rules from it)."""
    from iris_recipes.fsutil import exclusive
    from iris_recipes.paths import cache_dir

    model_dir = Path(model_dir)
    key = _model_key(model_dir) + (hashlib.sha256(name.encode()).hexdigest()[:8] if name else "")
    dest = cache_dir() / "eval-base" / f"{model_dir.name}-{key}" / "base-f16.gguf"
    if not dest.is_file():
        with exclusive(dest.parent / ".lock"):  # concurrent evals of one base convert it once
            if not dest.is_file():
                convert_f16(model_dir, dest, log=dest.parent / "convert.log", model_name=name)
    return dest


def convert_lora(adapter: Path, base: Path, dest: Path, log: Path | None = None) -> Path:
    """llama.cpp's `convert_lora_to_gguf.py` on a PEFT LoRA adapter (`base`: its base model's directory), writing a
    GGUF adapter at `dest` (atomically) that llama.cpp applies over the base model's GGUF."""
    from iris_recipes.export.converter import LORA_SCRIPT

    script = find_converter().parent / LORA_SCRIPT
    with atomic_path(dest) as tmp:
        cmd = [
            sys.executable,
            str(script),
            "--base",
            str(base),
            "--outtype",
            "f16",
            "--outfile",
            str(tmp),
            str(adapter),
        ]
        proc = subprocess.run(cmd, env=converter_env(script), capture_output=True, text=True)
        if log is not None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0 or tmp.stat().st_size == 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            raise IrisError(
                f"{adapter}: llama.cpp's LoRA converter failed (exit {proc.returncode}): "
                f"{lines[-1] if lines else 'no output'}" + (f"\nFull log: {log}" if log else "")
            )
    return dest


# llama.cpp's quantizer, for a tensor whose rows are not a multiple of the quant's block (small models):
#   warning: blk.0.attn_k.weight - ncols 64 not divisible by 256 (required for type q4_K) -> falling back to q5_0
_FALLBACK = re.compile(rb"not divisible by .* falling back to")


@contextlib.contextmanager
def _stderr_to(log: Path) -> Iterator[None]:
    """Send the process's stderr (file descriptor 2) to `log` meanwhile: llama.cpp's C code writes there directly,
    past Python's sys.stderr and llama-cpp-python's log callback."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def fallbacks(log: Path, start: int = 0) -> int:
    """Tensors the quantizer kept at a wider type, counted in `log` from byte `start` on."""
    with open(log, "rb") as f:
        f.seek(start)
        return sum(1 for line in f if _FALLBACK.search(line))


def quantize(src: Path, dest: Path, quant: str, threads: int | None = None, log: Path | None = None) -> Path:
    """Quantize an F16 GGUF with llama.cpp's quantizer (through llama-cpp-python), atomically.

    The quantizer's own output (a warning per tensor that keeps a wider type) is appended to `log` instead of
    going to the terminal."""
    import ctypes
    import logging

    import llama_cpp
    from llama_cpp._logger import logger as llama_logger

    ftype = getattr(llama_cpp, QUANT_TYPES[quant].ftype)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or 0  # 0: llama.cpp uses every core
    level = llama_logger.level
    llama_logger.setLevel(logging.ERROR)  # one line per tensor otherwise; errors still show
    try:
        with atomic_path(dest) as tmp:
            with _stderr_to(log) if log is not None else contextlib.nullcontext():
                rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
            if rc != 0 or tmp.stat().st_size == 0:
                free = free_bytes(dest.parent) / 2**20
                raise IrisError(
                    f"{src}: llama.cpp could not quantize to {quant} (code {rc}; {free:.0f} MiB free "
                    f"in {dest.parent}). Free some disk space or check the F16 file."
                )
    finally:
        llama_logger.setLevel(level)
    return dest
