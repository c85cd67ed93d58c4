"""Training memory per GPU, from the model's shape and the recipe: weights, LoRA and optimizer states, gradients,
activations at the micro batch and sequence length, and the logits the loss needs.

The activation terms count the tensors autograd keeps for the backward pass of a Llama-style decoder layer (Llama,
Phi-3, SmolLM2) run with SDPA or flash-attention (no materialized attention matrix):
  per token and layer: the layer input and its norm (2h), q after RoPE (h), k and v (2 x kv_dim), the attention
  output (h), the second residual and its norm (2h), and the MLP's gate, up, activation and product (4 x I);
  LoRA adds, per adapted projection, a rank-r intermediate and, with dropout, the dropped input in the adapter's
  fp32 plus its mask.
Gradient checkpointing keeps only each layer's input and recomputes one layer at a time. The loss works in fp32 over
the vocabulary: at the start of the backward pass log-softmax's output, its gradient and the gradient of its input
are alive together (12 bytes per token and vocabulary entry; in bf16 the forward pass peaks lower, at 10).
The peak is not the sum of everything: weights and optimizer states stay, and on top of them either the saved
activations with the loss's tensors (the start of the backward pass) or the saved activations, one recomputed layer
and the gradients (later in it), whichever is larger. `tests/test_plan.py` checks this against memory measured on CPU.

Preference objectives: a pair runs its chosen and rejected sequences in one forward pass (twice the sequences of a
micro batch); a reference model (DPO, KTO) is the base with the adapter switched off under LoRA (no extra weights;
its forward pass runs without gradients, before the model's, so it keeps nothing for the backward pass), and under
full fine-tuning a second, frozen copy of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
LORA_BYTES = 4  # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype)


@dataclass(frozen=True)
class Shape:
    """What memory depends on in a decoder-only model's config.json."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int
    fused: bool = False  # Phi-3: qkv_proj and gate_up_proj

    @classmethod
    def from_config(cls, cfg: dict) -> Shape:
        heads = cfg["num_attention_heads"]
        return cls(
            hidden=cfg["hidden_size"],
            intermediate=cfg["intermediate_size"],
            layers=cfg["num_hidden_layers"],
            heads=heads,
            kv_heads=cfg.get("num_key_value_heads") or heads,
            vocab=cfg["vocab_size"],
            tied=bool(cfg.get("tie_word_embeddings", False)),
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            fused=cfg.get("model_type") == "phi3",
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection in one layer, by module name."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_dim, self.intermediate
        if self.fused:
            return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h), "gate_up_proj": (h, 2 * i), "down_proj": (i, h)}
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def params(self) -> int:
        layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.layers * layer + self.hidden

    def lora_params(self, r: int, targets: list[str] | None) -> int:
        """Adapter parameters for rank r on `targets` (None: every projection, as lora_target_linear)."""
        mods = {k: v for k, v in self.linears().items() if targets is None or k in targets}
        return self.layers * sum(r * (a + b) for a, b in mods.values())


@dataclass(frozen=True)
class Setup:
    """The training setup on one GPU (or CPU process)."""

    method: str = "lora"  # lora | qlora | full
    lora_r: int = 16
    lora_targets: list[str] | None = None  # None: all linear projections
    lora_dropout: float = 0.05
    micro_batch: int = 1
    sequence_len: int = 2048
    gradient_checkpointing: bool = True
    dtype_bytes: int = 2  # the model's dtype: 2 for bf16/fp16 on GPU, 4 for fp32
    sharding: str = "none"  # none | zero1 | zero2 | zero3 | zero3-offload | fsdp
    world_size: int = 1
    sequences_per_row: int = 1  # 2 for preference pairs (chosen and rejected)
    reference_copy: bool = False  # a second, frozen copy of the weights (full fine-tuning with a reference)


def breakdown(shape: Shape, s: Setup) -> dict[str, float]:
    """Bytes per GPU by component, and their sum under "total"."""
    n = shape.params()
    a = s.dtype_bytes
    shard_params = s.sharding in ("zero3", "zero3-offload", "fsdp")
    shard_grads = shard_params or s.sharding == "zero2"
    shard_optim = s.sharding != "none"
    world = max(1, s.world_size)

    if s.method == "qlora":  # 4-bit linears (+ quantization constants), embeddings and norms in 16 bit
        linear = shape.layers * sum(x * y for x, y in shape.linears().values())
        weights = linear * 0.53 + (n - linear) * 2
    else:
        weights = n * a
    if s.method == "full":
        trainable, trainable_bytes = n, a
        states = n * 2 * a + (n * 4 if s.sharding != "none" else 0)  # Adam moments (+ DeepSpeed's fp32 master)
        adapter = 0
    else:
        trainable = shape.lora_params(s.lora_r, s.lora_targets)
        trainable_bytes = LORA_BYTES
        states = trainable * 2 * LORA_BYTES
        adapter = trainable * LORA_BYTES
        weights = weights + adapter
    grads = trainable * trainable_bytes
    if s.sharding == "zero3-offload":
        layer = sum(x * y for x, y in shape.linears().values()) * a
        weights, states = 2 * layer, 0  # parameters and optimizer live in CPU memory; two layers gathered at a time
    elif shard_params:
        weights /= world
    reference = weights if s.reference_copy else 0  # frozen: no gradients, no optimizer states
    if shard_grads:
        grads /= world
    if shard_optim and s.sharding != "zero3-offload":
        states /= world

    act = activations(shape, s)
    lm_head_grad = shape.vocab * shape.hidden * trainable_bytes if s.method == "full" else 0
    loss_phase = act["layers"] + act["logits"] + lm_head_grad
    backward_phase = act["layers"] + act["recompute"] + grads
    out = {
        "weights": weights,
        "reference": reference,
        "optimizer_states": states,
        "gradients": grads,
        "activations": act["layers"],
        "recompute": act["recompute"],
        "logits": act["logits"],
    }
    out["total"] = weights + reference + states + max(loss_phase, backward_phase)
    out["trainable_params"] = trainable
    out["params"] = n
    return out


def layer_activation_bytes(shape: Shape, s: Setup) -> float:
    """What autograd keeps for one decoder layer, per token (no checkpointing)."""
    h, i, kv, a = shape.hidden, shape.intermediate, shape.kv_dim, s.dtype_bytes
    base = (6 * h + 2 * kv + 4 * i) * a + shape.heads * 4  # + SDPA's fp32 log-sum-exp per head
    if s.method == "full":
        return base
    mods = {k: v for k, v in shape.linears().items() if s.lora_targets is None or k in s.lora_targets}
    lora = sum(s.lora_r * LORA_BYTES for _ in mods)
    if s.lora_dropout > 0:  # the dropped input, in the adapter's dtype, and its mask
        lora += sum(inp * (LORA_BYTES + 1) for inp, _ in mods.values())
    elif LORA_BYTES != a:  # the input cast to the adapter's dtype
        lora += sum(inp * LORA_BYTES for inp, _ in mods.values())
    return base + lora


def activations(shape: Shape, s: Setup) -> dict[str, float]:
    """Bytes kept for the backward pass ("layers"), of one layer recomputed under checkpointing ("recompute") and
    of the loss's tensors at their peak ("logits")."""
    tokens = s.micro_batch * s.sequence_len * s.sequences_per_row
    per_layer = layer_activation_bytes(shape, s) * tokens
    if s.gradient_checkpointing:
        layers, recompute = shape.layers * shape.hidden * s.dtype_bytes * tokens, per_layer
    else:
        layers, recompute = shape.layers * per_layer, 0
    layers += 2 * shape.hidden * s.dtype_bytes * tokens  # the final norm's input and output
    logits = shape.vocab * tokens * 12
    return {"layers": layers, "recompute": recompute, "logits": logits}
