#!/usr/bin/env python3
"""Building a builtin base model (once per machine, the first step of a first demo run): iris-recipes'
`materialize_builtin` against transformers doing the same by hand (load the GGUF's weights and tokenizer, save them
as a Hugging Face directory). Fresh processes and empty caches, alternating, in one run."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import table, time_cmd  # noqa: E402

NAME = "smollm2-135m-instruct"

OURS = f"from iris_recipes.models import materialize_builtin; materialize_builtin({NAME!r})"

RAW = f"""
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from iris_recipes.models import BUILTIN_MODELS, builtin_gguf_path
gguf = builtin_gguf_path(BUILTIN_MODELS[{NAME!r}])
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model.hf_quantizer = None
model.save_pretrained(sys.argv[1])
tok.save_pretrained(sys.argv[1])
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 2 if args.quick else 4
    ours, raw = [], []
    for _ in range(n):  # alternating, so a slow spell of the machine falls on both
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "IRIS_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
            ours += time_cmd([sys.executable, "-c", OURS], 1, env=env)
            raw += time_cmd([sys.executable, "-c", RAW, str(Path(cache) / "raw")], 1, env=env)
    med = statistics.median
    print(f"## Builtin base model: `builtin:{NAME}` built from its package's GGUF\n")
    print(
        table(
            ["build", "median", "min", "max", "n"],
            [
                ["iris-recipes `materialize_builtin`", f"{med(ours):.1f} s", f"{min(ours):.1f}", f"{max(ours):.1f}", n],
                [
                    "transformers by hand (load GGUF, save)",
                    f"{med(raw):.1f} s",
                    f"{min(raw):.1f}",
                    f"{max(raw):.1f}",
                    n,
                ],
            ],
        )
    )
    print(
        f"\nRatio iris-recipes / transformers by hand: {med(ours) / med(raw):.2f}x. Both load the weights through "
        "transformers' GGUF reader; iris-recipes also rebuilds SmolLM2's original tokenizer (the one llama.cpp's "
        "converter recognizes) and shares one parse of the file between weights, config and tokenizer."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
