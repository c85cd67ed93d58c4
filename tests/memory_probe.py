"""Peak memory of one LoRA (or full) training step on CPU, for iris_recipes.train.memory's estimate to be checked
against.

    MALLOC_MMAP_THRESHOLD_=65536 python tests/memory_probe.py '{"shape": {...}, "setup": {...}}'

Builds a random-weight LlamaForCausalLM of the shape (fp32, SDPA), wraps it as Axolotl would (PEFT LoRA on the
targeted projections, gradient checkpointing on the decoder layers), and runs forward, backward and an AdamW step on
one micro batch of full-length sequences, twice (the second step is the steady state: the optimizer's states exist
from the first). Memory is the process's peak resident set (VmHWM, reset just before the measured step so imports'
transient peaks do not hide it) above what it held before the model existed; with glibc's mmap threshold fixed low,
every tensor buffer is mapped and unmapped with the tensor, so the resident set follows the live tensors. Prints `MEASURED {"peak": bytes, "estimate": {...}}`.
"""

from __future__ import annotations

import json
import re
import resource
import sys

import torch


def rss_peak() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


def reset_peak() -> None:
    # Linux >= 4.0: writing 5 to clear_refs sets the peak resident set back to the current one
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main(spec: dict) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from iris_recipes.train.memory import Setup, Shape, breakdown

    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = Shape(**spec["shape"])
    setup = Setup(**spec["setup"])
    cfg = LlamaConfig(
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        vocab_size=shape.vocab,
        head_dim=shape.head_dim,
        tie_word_embeddings=shape.tied,
        attn_implementation="sdpa",
        use_cache=False,
    )
    ids = torch.randint(0, shape.vocab, (setup.micro_batch, setup.sequence_len))
    # warm up the kernels and allocator paths on a throwaway model so their one-off buffers are not counted
    _step(LlamaForCausalLM(cfg), setup, ids[:, :16], LoraConfig, get_peft_model)
    base = current_rss()
    reset_peak()
    peak_before = rss_peak()
    _step(LlamaForCausalLM(cfg), setup, ids, LoraConfig, get_peft_model)
    peak = rss_peak()
    assert peak > peak_before, "the step did not raise the peak: measure a bigger shape"
    return {"peak": peak - base, "estimate": breakdown(shape, setup)}


def _step(model, setup, ids, LoraConfig, get_peft_model):
    if setup.method != "full":
        model = get_peft_model(
            model,
            LoraConfig(
                r=setup.lora_r,
                lora_alpha=2 * setup.lora_r,
                lora_dropout=setup.lora_dropout,
                target_modules=setup.lora_targets or "all-linear",
            ),
        )
    if setup.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if setup.method != "full":
            model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(2):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss
    del opt, model


if __name__ == "__main__":
    print("MEASURED " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
