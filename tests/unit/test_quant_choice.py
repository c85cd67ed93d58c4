"""`space.quant: auto` serves the smallest exported file that keeps the task metric (within the seed noise of F16,
or a recipe's tolerance) and general behaviour, as eval judged each file."""

from __future__ import annotations

import json

from conftest_card import make_run
from iris_recipes.space_variants import choose_quant, variant_from_recipe


def _quants(q4_score: float, q4_kept: bool = True) -> dict:
    return {
        "noise": {"exact_match_number": 0.1},
        "quants": {
            "f16": {"metrics": {"exact_match_number": 0.6}, "forgetting_kept": True, "bytes": 270_000_000},
            "q8_0": {"metrics": {"exact_match_number": 0.6}, "forgetting_kept": True, "bytes": 145_000_000},
            "q4_k_m": {"metrics": {"exact_match_number": q4_score}, "forgetting_kept": q4_kept, "bytes": 105_000_000},
        },
    }


def test_the_smallest_file_within_the_seed_noise_is_chosen():
    assert choose_quant(_quants(0.55), "exact_match_number", None)[0] == "q4_k_m"  # 0.05 below, noise 0.1
    quant, why = choose_quant(_quants(0.55), "exact_match_number", 0.0)  # no tolerance: refused
    assert quant == "q8_0" and "not q4_k_m" in why
    assert choose_quant(_quants(0.4), "exact_match_number", None)[0] == "q8_0"  # beyond the noise
    assert choose_quant(_quants(0.6, q4_kept=False), "exact_match_number", None)[0] == "q8_0"  # forgetting degraded
    assert choose_quant({}, "exact_match_number", None) == (
        None,
        "eval did not judge each exported file (evaluate the run again)",
    )


def test_manifest_serves_the_chosen_file(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("IRIS_RUNS_DIR", str(runs))
    for tolerance, expected in ((None, "q4_k_m"), (0.0, "q8_0")):
        overrides = ("space.quant=auto", *((f"space.quant_tolerance={tolerance}",) if tolerance is not None else ()))
        run = make_run(tmp_path / str(tolerance), "smollm2-demo", overrides)
        ev = json.loads(run.file("eval.json").read_text())
        f16 = ev["tuned"]["metrics"]["exact_match_number"]
        ev.update(noise={"exact_match_number": 0.1}, quants=_quants(f16 - 0.05)["quants"])
        ev["quants"]["f16"]["metrics"]["exact_match_number"] = f16
        ev["quants"]["q8_0"]["metrics"]["exact_match_number"] = f16
        run.file("eval.json").write_text(json.dumps(ev))
        from iris_recipes.recipe import load_recipe

        recipe = load_recipe(run.file("recipe.yaml"), check_data=False)
        variant = variant_from_recipe(recipe.name, recipe.data, run.file("recipe.yaml"), run.path.parent.parent)
        assert variant.status == "built" and variant.quant == expected, variant.quant_reason
        assert variant.gguf["filename"] == f"{recipe.name}-{expected}.gguf"
