"""Run directories as the pipeline leaves them (recipe, real data stage output, metrics, GGUF records, eval.json),
for the card, push and forgetting tests; no model is trained."""

from __future__ import annotations

import json
import math
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.evaluate.loss import LOSS_METHOD
from iris_recipes.rundir import RunDir

REPO = Path(__file__).resolve().parent.parent
QUANTS = {"f16": 2400, "q8_0": 1300, "q4_k_m": 800}  # bytes of the stand-in files (only sizes/hashes are read)


def make_run(
    root: Path,
    recipe: str,
    overrides: tuple[str, ...] = (),
    *,
    eval_json: bool = True,
    metrics: bool = True,
    gguf: bool = True,
    recipe_text: str | None = None,
) -> RunDir:
    """A run directory as the pipeline leaves it: resolved recipe, real data stage output, metrics, GGUF records."""
    from iris_recipes.data import prepare
    from iris_recipes.recipe import load_recipe

    r = load_recipe(REPO / "recipes" / f"{recipe}.yaml", ("dataset.source=sample", *overrides))
    run = RunDir(root / r.name / "20250101-000000")
    run.path.mkdir(parents=True)
    fsutil.write_text(run.file("recipe.yaml"), recipe_text if recipe_text is not None else r.to_yaml())
    prepare(r, run.file("data"))
    meta = {
        "recipe": r.name,
        "run_id": run.path.name,
        "recipe_hash": r.hash(),
        "created": "2025-01-01T00:00:00+00:00",
        "git_commit": "abc1234",
        "versions": {"axolotl": "0.19.0", "torch": "2.13.0"},
        "status": "done",
        "stages": {
            "data": {"status": "done", "seconds": 0.4},
            "train": {"status": "done", "seconds": 181.2},
            "merge": {"status": "done", "seconds": 9.5},
            "export": {"status": "done", "seconds": 31.0},
        },
        "artifacts": {},
    }
    if gguf:
        arts = {}
        for i, (quant, size) in enumerate(QUANTS.items()):
            path = run.file("gguf", f"{r.name}-{quant}.gguf")
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"GGUF" + bytes([i]) * (size - 4))
            arts[quant] = {
                "file": f"gguf/{path.name}",
                "bytes": size,
                "sha256": fsutil.sha256_file(path),
                "top1_agreement": 1.0 - 0.02 * i,
                "kl_divergence": 0.004 * i,
                "decode_tok_s": 20.0 + 10 * i,
            }
        meta["artifacts"]["gguf"] = arts
    run.write(meta)
    if metrics:
        lines = [
            {"step": s, "loss": 2.5 * math.exp(-s / 15) + 0.3, "learning_rate": 1e-3, "grad_norm": 1.1}
            for s in range(1, 41)
        ]
        lines += [{"step": s, "eval_loss": 2.4 * math.exp(-s / 18) + 0.4} for s in (0, 10, 20, 30, 40)]
        fsutil.write_text(run.file("metrics.jsonl"), "".join(json.dumps(x) + "\n" for x in lines))
    if eval_json:
        # the shape `iris-recipes eval` writes
        prompt = "Sam has 7 apples and buys 5 more. How many?"
        fsutil.write_json(
            run.file("eval.json"),
            {
                "loss_method": LOSS_METHOD,
                "base": {
                    "val_loss": 2.31,
                    "perplexity": 10.07,
                    "metrics": {"exact_match_number": 0.15, "format_regex": 0.0},
                    "answers": [{"prompt": prompt, "answer": "12"}],
                },
                "tuned": {
                    "val_loss": 0.62,
                    "perplexity": 1.86,
                    "metrics": {"exact_match_number": 0.45, "format_regex": 0.95},
                    "answers": [{"prompt": prompt, "answer": "Answer: 12"}],
                },
                "generations": [
                    {
                        "prompt": prompt,
                        "base": "Sam has 12 apples.\nIs there anything else? <|im_end|> | end",
                        "tuned": "7 + 5 = 12\nAnswer: 12",
                    },
                    {"prompt": prompt, "base": "Twelve!", "tuned": "Answer: 12", "seed": 0},
                ],
                "gguf": {
                    "q4_k_m": {
                        "decode_tok_s": 81.3,
                        "ttft_s": 0.12,
                        "latency_s": 0.9,
                        "new_tokens": 64,
                        "prompt_tokens": 40,
                        "threads": 2,
                    }
                },
                "samples": 20,
                "noise": {"exact_match_number": 0.1, "format_regex": 0.05},
                "seeds": [0, 1, 2],
                "engine": "llama-cpp-python (F16 GGUF)",
            },
        )
    return run


def card_of(run: RunDir):
    from huggingface_hub import ModelCard

    return ModelCard.load(run.file("README.md"))
