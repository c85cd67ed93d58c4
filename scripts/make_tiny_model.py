#!/usr/bin/env python
"""Build a tiny random-weight stand-in of a base-model family, for tests and quick pipeline runs.

    python scripts/make_tiny_model.py --family llama3 /tmp/llama3-tiny      # seconds; then base_model: /tmp/llama3-tiny
    python scripts/make_tiny_model.py --family phi3 /tmp/phi3-tiny --layers 4 --hidden 128
    python scripts/make_tiny_model.py --seed-hf-cache /tmp/hf                # every hub id of the shipped recipes

With --seed-hf-cache, run the recipes unchanged against that cache, offline, with CPU-size overrides:

    HF_HOME=/tmp/hf HF_HUB_OFFLINE=1 iris-recipes run recipes/llama1b-math.yaml dataset.source=sample \\
        train.max_steps=2 train.sequence_len=256 train.sample_packing=false train.precision=fp32 ...

Families: llama3 (Llama-3.2), phi3 (Phi-3.5-mini), gemma3 (Gemma-3-1B), qwen25 (Qwen2.5), chatml (SmolLM2); see
scripts/standins.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import standins
from iris_recipes.errors import IrisError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", help="output directory (must not exist or be empty)")
    parser.add_argument("--family", choices=sorted(standins.FAMILIES), default="chatml")
    parser.add_argument(
        "--seed-hf-cache",
        type=Path,
        metavar="HF_HOME",
        help="place every shipped recipe's hub id in this Hugging Face cache, played by its stand-in",
    )
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.out and not args.seed_hf_cache:
        parser.error("give OUT, --seed-hf-cache HF_HOME, or both")
    shape = dict(
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        kv_heads=args.kv_heads,
        intermediate=args.intermediate,
        seed=args.seed,
    )
    try:
        if args.out:
            print(standins.build(args.family, args.out, **shape))
        if args.seed_hf_cache:
            for repo_id, snapshot in standins.seed_all(args.seed_hf_cache, **shape).items():
                print(f"{repo_id}: {snapshot}")
    except IrisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
