#!/usr/bin/env python3
"""Write datasets/general-chat/: everyday prompts answered by the demo's own base model (rehearsal data).

Mixed into a narrow fine-tune (`dataset.mix`), these rows keep the model doing what it did before outside the
task: answering in sentences and ending its turn. The answers are SmolLM2-135M-Instruct's own greedy replies
(llama.cpp, F16 of the builtin base, default system turn), so training on them rehearses the base behaviour
rather than teaching a new style. Only replies that end on their own within the limit and do not loop (the
forgetting check's rule) are kept. The prompts are written for this project and share none with the
forgetting check's prompt set (iris_recipes/evaluate/general_prompts.txt).

    python scripts/make_general_chat.py          # -> datasets/general-chat/ (dataset.yaml, data.jsonl, sample.jsonl)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXPLAIN = [
    "a volcano",
    "gravity",
    "a vaccine",
    "the internet",
    "recycling",
    "an ecosystem",
    "a glacier",
    "friction",
    "a compass",
    "electricity",
    "a solar eclipse",
    "the water cycle",
    "a museum",
    "a budget",
    "a library card",
    "an allergy",
    "a habit",
    "compound interest",
    "a microwave oven",
    "a lighthouse",
    "erosion",
    "a fossil",
    "a time zone",
    "a recipe",
    "a metaphor",
]
TIPS = [
    "staying focused while working from home",
    "keeping a houseplant alive",
    "learning a new language",
    "making friends in a new city",
    "running a first 5K race",
    "keeping a kitchen tidy",
    "writing a clear email",
    "preparing for a job interview",
    "saving money on groceries",
    "taking better phone photos",
    "reading more books",
    "staying calm before an exam",
    "packing a suitcase",
    "starting a vegetable garden",
    "drinking more water during the day",
    "giving a short speech",
    "organising a small desk",
    "looking after a new puppy",
    "riding a bike in the city",
    "remembering people's names",
]
WHY = [
    "Why do leaves change colour in autumn?",
    "Why do we yawn?",
    "Why do stars twinkle at night?",
    "Why does bread rise?",
    "Why does ice float on water?",
    "Why is the sea salty?",
    "Why do onions make people cry?",
    "Why do we get goosebumps?",
    "Why does the moon change shape during the month?",
    "Why do dogs wag their tails?",
    "Why does metal feel colder than wood?",
    "Why do we need sleep?",
    "How does soap clean our hands?",
    "Why do some birds fly south in winter?",
]
HOWTO = [
    "tie a simple knot for a shoelace",
    "plant tulip bulbs",
    "clean a cast-iron pan",
    "make a cup of green tea",
    "fold a paper aeroplane",
    "wash a wool jumper",
    "set up a new email account",
    "write a thank-you card",
    "keep bananas fresh for longer",
    "remove a coffee stain from a shirt",
    "start a conversation at a party",
    "make a simple tomato sauce",
    "change a bicycle tyre",
    "choose a ripe avocado",
    "back up photos on a phone",
]
COMPARE = [
    ("a lake", "a sea"),
    ("a virus", "a bacterium"),
    ("a town", "a city"),
    ("a frog", "a toad"),
    ("a poem", "a song"),
    ("baking", "roasting"),
    ("a hurricane", "a tornado"),
    ("jam", "jelly"),
    ("a laptop", "a tablet"),
    ("a crocodile", "an alligator"),
    ("a meteor", "a comet"),
    ("a biography", "an autobiography"),
]
WRITE = [
    "a two-line poem about the sea",
    "a short thank-you note to a teacher",
    "a one-paragraph story about a lost umbrella",
    "a friendly reminder that rent is due on Friday",
    "a short birthday message for a grandmother",
    "a slogan for a bicycle shop",
    "a short apology for arriving late to a meeting",
    "a limerick about a sleepy cat",
    "a product description for a blue coffee mug",
    "a short welcome message for new club members",
    "two sentences describing a rainy afternoon",
    "a postcard message from a trip to the mountains",
    "a short note asking a neighbour to water my plants",
    "a riddle about a clock",
    "a motivational sentence for a Monday morning",
]
MISC = [
    "What is the tallest animal in the world?",
    "Which planet is known as the Red Planet?",
    "What language is spoken in Brazil?",
    "Who wrote Romeo and Juliet?",
    "What is a synonym for happy?",
    "What is the opposite of ancient?",
    "What do bees make?",
    "Name three colours of the rainbow.",
    "What is the largest ocean on Earth?",
    "How many continents are there, and what are they called?",
    "What is the boiling point of water at sea level?",
    "What is the chemical symbol for gold?",
    "What is the main ingredient of guacamole?",
    "What instrument has black and white keys?",
    "What does a librarian do?",
    "What is a good breakfast before a busy day?",
    "Suggest a fun activity for a rainy weekend.",
    "Recommend a board game for a family evening.",
    "What is a good name for a goldfish?",
    "What should I do if I feel stressed?",
    "Describe a peaceful beach in a few sentences.",
    "Describe the taste of a lemon.",
    "What is the purpose of a seatbelt?",
    "Why is exercise good for you?",
    "What is a noun?",
    "Tell me a fun fact about octopuses.",
    "Tell me a fun fact about the moon.",
    "How do plants drink water?",
    "What is the difference between a verb and an adjective?",
    "Give me a short definition of kindness.",
    "What makes a good friend?",
    "How do I politely ask someone to speak more slowly?",
    "What are the primary colours?",
    "What is the capital of Canada?",
    "What animal is known as the king of the jungle?",
    "What are clouds made of?",
    "Can you suggest a healthy snack?",
    "What is recycling good for?",
    "How do I say thank you in Spanish?",
    "What is the weather usually like in a desert?",
]


ENTRY = """name: general-chat
description: >-
  Everyday prompts (explanations, tips, how-tos, comparisons, short writing, general knowledge) written for this
  project, each answered by SmolLM2-135M-Instruct itself (greedy, llama.cpp, default system turn). Mixed into a
  narrow fine-tune through dataset.mix, it rehearses the base model's own behaviour outside the task (answering
  in sentences and ending its turn), so the fine-tune does not forget it. Only replies that stopped on their own
  and did not loop were kept. Built by scripts/make_general_chat.py; shares no prompt with the forgetting check.
license: apache-2.0
notes: >-
  Prompts written for iris-recipes (Apache-2.0); answers generated by HuggingFaceTB/SmolLM2-135M-Instruct
  (Apache-2.0).
source:
  path: data.jsonl
format: messages
sample: sample.jsonl
"""


def prompts() -> list[str]:
    out = [f"Explain what {x} is in two sentences." for x in EXPLAIN]
    out += [f"Give me three tips for {x}." for x in TIPS]
    out += WHY
    out += [f"How do I {x}?" for x in HOWTO]
    out += [f"What is the difference between {a} and {b}?" for a, b in COMPARE]
    out += [f"Write {x}." for x in WRITE]
    out += MISC
    return list(dict.fromkeys(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--max-total-tokens", type=int, default=250, help="drop rows longer than this (with template)")
    ap.add_argument("--out", type=Path, default=REPO / "datasets" / "general-chat")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from iris_recipes.evaluate.forgetting import loops, shipped_prompts
    from iris_recipes.evaluate.generate import base_f16_gguf, generator
    from iris_recipes.models import resolve_base_model
    from iris_recipes.recipe.schema import apply_defaults

    items = prompts()
    overlap = set(items) & set(shipped_prompts())
    if overlap:
        raise SystemExit(f"prompts shared with the forgetting check: {sorted(overlap)}")
    base = resolve_base_model("builtin:smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(base.path)
    ids = [
        tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
        for p in items
    ]
    ids = [x["input_ids"] if hasattr(x, "keys") else x for x in ids]
    # the same cached F16 GGUF the eval stage uses for this base
    with generator(base_f16_gguf(base.path, base.hub_id.rsplit("/", 1)[-1]), n_ctx=512) as gen:
        replies = gen.batch_generate(ids, args.max_new_tokens)
    threshold = apply_defaults({})["eval"]["forgetting"]["loop_threshold"]
    rows, dropped = [], {"no stop": 0, "loops": 0, "too long": 0}
    for prompt, prompt_ids, reply in zip(items, ids, replies):
        if not reply.stopped:
            dropped["no stop"] += 1
        elif loops(reply, threshold):
            dropped["loops"] += 1
        elif len(prompt_ids) + len(reply.tokens) + 2 > args.max_total_tokens:
            dropped["too long"] += 1
        else:
            rows.append(
                {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply.text}]}
            )
    args.out.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (args.out / "dataset.yaml").write_text(ENTRY, encoding="utf-8")
    (args.out / "data.jsonl").write_text(text, encoding="utf-8")
    (args.out / "sample.jsonl").write_text("".join(text.splitlines(keepends=True)[:20]), encoding="utf-8")
    print(
        f"{len(rows)} of {len(items)} prompts kept ({', '.join(f'{v} {k}' for k, v in dropped.items())}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
