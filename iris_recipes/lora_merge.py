"""Merge a run's LoRA adapter into full weights: `merged/` holds a standalone Hugging Face model.

PEFT's own merge (the same arithmetic as `axolotl merge-lora`), saved in the base model's dtype, with the
tokenizer Axolotl trained with (its chat template included) and a generation config whose eos is the token that
ends an assistant turn, so generation stops where training taught it to.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.fsutil import atomic_dir

# Files that make up an adapter directory (what Axolotl saves at the end of training besides checkpoints).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def collect_adapter(output_dir: Path, dest: Path) -> list[str]:
    """Copy the final adapter (and tokenizer) Axolotl left in its output_dir to `dest`."""
    names = [n for n in ADAPTER_FILES + TOKENIZER_FILES if (output_dir / n).is_file()]
    if "adapter_config.json" not in names:
        raise IrisError(
            f"{output_dir}: training finished but no adapter_config.json was saved there; "
            f"see the training log beside it and run again with --resume."
        )
    with atomic_dir(dest) as tmp:
        for name in names:
            shutil.copy2(output_dir / name, tmp / name)
    return names


def stop_token_ids(tokenizer, eot_tokens: list[str]) -> list[int]:
    """eos first, then each end-of-turn token the tokenizer knows."""
    ids = []
    for tok in [tokenizer.eos_token, *eot_tokens]:
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def _carry_sentencepiece(out: Path, *sources: str | Path) -> None:
    """A SentencePiece `tokenizer.model` the fast tokenizer does not save again (Phi-3.5's): llama.cpp's converter
    reads it for those vocabularies, so the merged model keeps the base model's file."""
    if (out / "tokenizer.model").is_file():
        return
    for src in sources:
        if (Path(src) / "tokenizer.model").is_file():
            shutil.copy2(Path(src) / "tokenizer.model", out / "tokenizer.model")
            return


def _list_special_pieces(out: Path, tokenizer) -> None:
    """With a SentencePiece `tokenizer.model`, llama.cpp's converter learns which pieces are control tokens (Gemma's
    turn markers, say) from tokenizer_config.json's `added_tokens_decoder`, as the base models ship it; the
    tokenizer saved again (transformers 5) leaves that out, so it is written back from the tokenizer's added tokens.
    Without it those pieces stay plain text to llama.cpp: prompts tokenize differently and replies spell them."""
    path = out / "tokenizer_config.json"
    if not (out / "tokenizer.model").is_file() or not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("added_tokens_decoder"):
        return
    config["added_tokens_decoder"] = {
        str(i): {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
        for i, t in sorted(tokenizer.added_tokens_decoder.items())
    }
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def merge(*, base_model: str, weights_dir: Path, out: Path, method: str, eot_tokens: list[str]) -> dict:
    """Write the merged model to `out` (atomically). `weights_dir` holds the adapter (lora/qlora) or the full
    fine-tuned weights (full). Returns facts for run.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(weights_dir)
    if not tokenizer.chat_template:
        raise IrisError(
            f"{weights_dir}: the trained tokenizer has no chat template; the merged model could not be "
            "prompted the way it was trained. Set chat_template in the recipe."
        )
    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(weights_dir, dtype="auto")
        dtype = model.dtype
    else:
        from peft import PeftModel

        base_cfg = (
            json.loads((Path(base_model) / "config.json").read_text())
            if (Path(base_model) / "config.json").is_file()
            else {}
        )
        dtype_name = base_cfg.get("dtype") or base_cfg.get("torch_dtype") or "float32"
        dtype = getattr(torch, dtype_name, torch.float32)
        # Merge in float32: adding a low-rank update to bf16 weights in bf16 loses most of it.
        base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, weights_dir).merge_and_unload()
        model = model.to(dtype)

    stops = stop_token_ids(tokenizer, eot_tokens)
    gen = model.generation_config if model.generation_config is not None else GenerationConfig()
    gen.eos_token_id = stops[0] if len(stops) == 1 else stops
    if tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    model.generation_config = gen
    model.config.eos_token_id = stops[0] if stops else model.config.eos_token_id

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _carry_sentencepiece(tmp, weights_dir, base_model)
        _list_special_pieces(tmp, tokenizer)
    weights = sorted(p.name for p in out.glob("*.safetensors"))
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "eos_token_id": gen.eos_token_id,
        "files": weights,
        "bytes": sum((out / w).stat().st_size for w in weights),
    }
