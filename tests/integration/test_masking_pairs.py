"""Loss masking of preference rows, token by token, through the path training takes: the data stage writes the rows,
`build_config` the Axolotl config, and Axolotl (its config loader, its preference-dataset loader and its trainer
builder) hands them to TRL's DPO, ORPO, SimPO (CPO) and KTO trainers, whose own tokenization and collators say which
tokens the objective scores. For every chat-template family the recipes use (llama3, phi_35, chatml), on its
stand-in, and every preference objective:

- the prompt (system, user and earlier turns) is the same tokens in the chosen and the rejected sequence (in KTO,
  in the desirable and the undesirable one) and none of it is scored;
- what is scored is the answer, then the family's end-of-turn token, then only what the template or the trainer
  writes after it (listed in TAILS, identical for both answers): never prompt text, never a second answer;
- no template token appears inside any content; the sequence starts with at most one BOS.

The llama3 stand-in carries SmolLM2's byte-level pre-tokenizer, which splits the "\\n\\n" that ends Llama 3's
assistant header differently when text follows it; here its tokenizer gets Llama 3's own pre-tokenizer rule and
BOS post-processor, as the real tokenizer has (the stand-in keeps its own for llama.cpp's converter, which
recognizes it by a hash of its output).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from iris_recipes import chat_families, objectives
from iris_recipes.data import prepare
from iris_recipes.data.formats import PREFERENCE
from iris_recipes.recipe.schema import apply_defaults
from iris_recipes.train import config as axconfig
from iris_recipes.train.launch import LaunchSpec

pytestmark = pytest.mark.slow

FAMILIES = {"llama3": ("llama3", "<|eot_id|>"), "phi3": ("phi_35", "<|end|>"), "chatml": ("chatml", "<|im_end|>")}
PREFERENCE_OBJECTIVES = [o.name for o in objectives.OBJECTIVES.values() if o.preference]

PROMPT = [
    {"role": "system", "content": "You solve arithmetic word problems."},
    {"role": "user", "content": "Sam has 7 apples and buys 5 more. How many?"},
    {"role": "assistant", "content": "7 + 5 = 12\nAnswer: 12"},
    {"role": "user", "content": "And if he eats 3 of them?"},
]
CHOSEN, REJECTED = "12 - 3 = 9\nAnswer: 9", "He has 15 now.\nAnswer: 15"

# What follows the end-of-turn token in the scored part, by (family, objective). ChatML's template writes "\n" after
# <|im_end|>; TRL's DPO and KTO keep it (they slice the rendered conversation after the prompt), and its ORPO and CPO
# tokenizers then append the tokenizer's EOS when the sequence does not already end with it. Generation stops at the
# end-of-turn token, so none of it is ever produced; it is the same for both answers.
TAILS = {
    ("chatml", "dpo"): "\n",
    ("chatml", "kto"): "\n",
    ("chatml", "orpo"): "\n<|im_end|>",
    ("chatml", "simpo"): "\n<|im_end|>",
    ("phi3", "orpo"): "<|endoftext|>",
    ("phi3", "simpo"): "<|endoftext|>",
}
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)


def llama3_tokenizer_like_the_real_one(standin: Path, dest: Path) -> Path:
    """A copy of the llama3 stand-in whose tokenizer splits text and adds BOS as Llama 3's does."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers, processors

    shutil.copytree(standin, dest)
    tok = Tokenizer.from_file(str(dest / "tokenizer.json"))
    bos = "<|begin_of_text|>"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
            ),
        ]
    )
    tok.save(str(dest / "tokenizer.json"))
    return dest


@pytest.fixture(scope="module")
def models(standin_dirs, tmp_path_factory) -> dict[str, Path]:
    from transformers import AutoTokenizer

    found = dict(standin_dirs)
    found["llama3"] = llama3_tokenizer_like_the_real_one(
        standin_dirs["llama3"], tmp_path_factory.mktemp("llama3-real-tokenizer") / "model"
    )
    tok = AutoTokenizer.from_pretrained(found["llama3"])
    assert tok("hi")["input_ids"][0] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert tok.convert_ids_to_tokens(tok("x\n\nIt", add_special_tokens=False)["input_ids"])[1] == "ĊĊ"
    return found


@dataclass
class Sequence:
    ids: list[int]  # the whole sequence the model reads (padding removed)
    scored: list[bool]  # the positions the objective scores
    answer: str  # the answer this sequence ends with


def _rows(objective: str) -> list[dict]:
    """Source rows of a preference file: one prompt, two answers (as a pair, or labelled for KTO)."""
    if objectives.get(objective).rows == PREFERENCE:
        return [{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}]
    return [
        {"prompt": PROMPT, "completion": CHOSEN, "label": True},
        {"prompt": PROMPT, "completion": REJECTED, "label": False},
    ]


def _format(objective: str) -> str:
    return "preference" if objectives.get(objective).rows == PREFERENCE else "unpaired"


def _trainer(work: Path, model: Path, template: str, objective: str, *, dataset_type: str | None = None):
    """Axolotl's trainer for the recipe, built as `axolotl train` builds it, with the rows the data stage wrote."""
    from axolotl.cli.args import TrainerCliArgs
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_preference_datasets
    from axolotl.train import setup_model_and_trainer

    (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(objective)))
    data = apply_defaults(
        {
            "name": "mask",
            "base_model": str(model),
            "chat_template": template,
            "objective": objective,
            "dataset": {"path": "rows.jsonl", "format": _format(objective), "val_size": 0.0},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": 1, "micro_batch_size": 2, "sequence_len": 512},
        }
    )
    recipe = type("R", (), {"data": data, "path": work / "mask.yaml"})()
    prepare(recipe, work / "data")
    cfg = axconfig.build_config(data, base_model=str(model), spec=LaunchSpec(), has_val=False)
    cfg["dataset_num_proc"] = 1
    if dataset_type:
        cfg["datasets"][0].update(type=dataset_type, field_messages="prompt")
        cfg.pop("skip_prepare_dataset")
    (work / "axolotl.yaml").write_text(yaml.safe_dump(cfg))
    saved_env, cwd = dict(os.environ), os.getcwd()
    os.chdir(work)
    try:
        checked = load_cfg("axolotl.yaml")
        meta = load_preference_datasets(cfg=checked, cli_args=TrainerCliArgs())
        trainer, _, tok, *_ = setup_model_and_trainer(checked, meta)
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return trainer, tok


def _sequences(trainer, objective: str) -> list[Sequence]:
    """Each sequence the trainer runs for the rows, with the positions its loss scores (from its own collator)."""
    dataset = trainer.train_dataset
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    out = []
    if objective in ("dpo", "kto"):
        answers = (
            [CHOSEN, REJECTED] if objective == "dpo" else [CHOSEN if label else REJECTED for label in batch["label"]]
        )
        for ids, attention, mask, answer in zip(
            batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["completion_mask"].tolist(), answers
        ):
            keep = [i for i, a in enumerate(attention) if a]
            out.append(Sequence([ids[i] for i in keep], [bool(mask[i]) for i in keep], answer))
    else:  # ORPO and CPO: labels are -100 where nothing is scored
        for side, answer in (("chosen", CHOSEN), ("rejected", REJECTED)):
            ids, labels = batch[f"{side}_input_ids"][0].tolist(), batch[f"{side}_labels"][0].tolist()
            attention = batch[f"{side}_attention_mask"][0].tolist()
            keep = [i for i, a in enumerate(attention) if a]
            out.append(Sequence([ids[i] for i in keep], [labels[i] != -100 for i in keep], answer))
    return out


@pytest.fixture(scope="module", params=[(f, o) for f in sorted(FAMILIES) for o in PREFERENCE_OBJECTIVES])
def trained(request, models, tmp_path_factory):
    family, objective = request.param
    template, eot = FAMILIES[family]
    trainer, tok = _trainer(tmp_path_factory.mktemp(f"{family}-{objective}"), models[family], template, objective)
    return family, objective, tok, eot, _sequences(trainer, objective)


def test_the_prompt_is_shared_and_never_scored(trained):
    _, _, tok, _, seqs = trained
    assert len(seqs) == 2
    starts = [s.scored.index(True) for s in seqs]
    assert starts[0] == starts[1] and seqs[0].ids[: starts[0]] == seqs[1].ids[: starts[1]]
    for s in seqs:
        assert not any(s.scored[: starts[0]]) and all(s.scored[starts[0] :]), "the scored part is one span at the end"
        prompt_text = tok.decode(s.ids[: starts[0]])
        for turn in PROMPT:  # system, user and the earlier assistant turn are all in the unscored prompt
            assert turn["content"] in prompt_text
        scored_text = tok.decode([t for t, on in zip(s.ids, s.scored) if on])
        assert not any(turn["content"] in scored_text for turn in PROMPT)


def test_the_answer_and_its_end_of_turn_are_what_is_scored(trained):
    family, objective, tok, eot, seqs = trained
    eot_id = tok.convert_tokens_to_ids(eot)
    for s in seqs:
        scored = [t for t, on in zip(s.ids, s.scored) if on]
        end = scored.index(eot_id)
        assert tok.decode(scored[:end]) == s.answer, tok.convert_ids_to_tokens(scored)
        assert tok.decode(scored[end + 1 :]) == TAILS.get((family, objective), ""), tok.convert_ids_to_tokens(scored)
    other = {s.answer: s for s in seqs}
    assert other[CHOSEN].answer != other[REJECTED].answer


def test_no_template_token_inside_content_and_one_bos(trained):
    _, _, tok, eot, seqs = trained
    special = set(tok.all_special_ids) | {tok.convert_tokens_to_ids(t) for t in tok.get_added_vocab()}
    for s in seqs:
        scored = [t for t, on in zip(s.ids, s.scored) if on]
        answer = scored[: scored.index(tok.convert_tokens_to_ids(eot))]
        assert not special & set(answer), "a special token inside the scored answer"
        text = tok.decode(s.ids)
        position = 0
        for content in [t["content"] for t in PROMPT] + [s.answer]:  # every content verbatim, in order
            found = text.index(content, position)
            position = found + len(content)
            assert text[position:].lstrip(" ").startswith(eot), text[position : position + 20]
        # a BOS (the template's own, else the tokenizer's unless it doubles as a turn marker) only at the start
        family = chat_families.get(FAMILIES[trained[0]][0])
        bos = family.bos or (tok.bos_token if tok.bos_token not in family.markers else None)
        if bos:
            assert tok.convert_tokens_to_ids(bos) not in s.ids[1:], tok.convert_ids_to_tokens(s.ids[:3])


def test_axolotls_text_strategy_would_double_llama3s_bos(models, tmp_path):
    """Why the config gives TRL conversational rows and no `type`: with Axolotl's chat_template.default the prompt is
    rendered to text, BOS included, and TRL's DPO tokenizes that text with the tokenizer's own BOS on top."""
    trainer, tok = _trainer(tmp_path, models["llama3"], "llama3", "dpo", dataset_type="chat_template.default")
    (seq, _) = _sequences(trainer, "dpo")
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert seq.ids[:2] == [bos, bos]
