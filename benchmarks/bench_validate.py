#!/usr/bin/env python3
"""Recipe validation latency: `iris-recipes validate` (all recipes) and `--help`, against Axolotl's own config
validation of the config generated from the same recipe (a fresh process each, as a user runs them)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import BIN, REPO, summary, table, time_cmd  # noqa: E402

AXOLOTL_VALIDATE = """
import sys, yaml
from axolotl.utils.config import validate_config
from axolotl.utils.dict import DictDefault
validate_config(DictDefault(yaml.safe_load(open(sys.argv[1]))))
"""


def generated_config(recipe: str, out: Path) -> Path:
    """The Axolotl config `iris-recipes run --gpus 1` would launch for `recipe`, written to `out`."""
    import yaml

    from iris_recipes.recipe import load_recipe
    from iris_recipes.train.config import build_config
    from iris_recipes.train.launch import LaunchSpec

    r = load_recipe(recipe)
    cfg = build_config(
        r.data, base_model=r.data["base_model"], spec=LaunchSpec(device="gpu"), has_val=True, recipe_file=str(recipe)
    )
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 3 if args.quick else 7
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AXOLOTL_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}
    recipes = sorted(str(p) for p in (REPO / "recipes").glob("*.yaml"))
    cli = str(BIN / "iris-recipes")
    help_t = time_cmd([cli, "--help"], n, env=env)
    all_t = time_cmd([cli, "validate", "-q"], n, env=env, cwd=REPO)
    one_t = time_cmd([cli, "validate", "-q", str(REPO / "recipes/llama1b-math.yaml")], n, env=env, cwd=REPO)
    rows = [
        ["`iris-recipes --help`", summary(help_t)],
        [f"`iris-recipes validate` ({len(recipes)} recipes)", summary(all_t)],
        ["`iris-recipes validate recipes/llama1b-math.yaml`", summary(one_t)],
    ]
    ratio_line = ""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = generated_config(str(REPO / "recipes/llama1b-math.yaml"), Path(tmp) / "axolotl.yaml")
        ax_t = time_cmd([sys.executable, "-c", AXOLOTL_VALIDATE, str(cfg)], n, env=env)
        rows.append(["Axolotl `validate_config` on the generated config (fresh process)", summary(ax_t)])
        ratio_line = (
            f"\nAxolotl's validation of one config takes {statistics.median(ax_t) / statistics.median(one_t):.0f}x "
            f"as long as `iris-recipes validate` of one recipe, and "
            f"{statistics.median(ax_t) / statistics.median(all_t):.0f}x as long as validating all of them "
            "(most of it is importing torch through Axolotl's schema).\n"
        )
    print("## Recipe validation latency\n")
    print(table(["command", "wall time"], rows))
    print(ratio_line)
    print(f"Goal: validating all recipes under 0.3 s: {'met' if statistics.median(all_t) < 0.3 else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
