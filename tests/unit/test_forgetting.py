"""The forgetting check: its loop rule and verdict, the shipped prompt set, and how eval.json, the card and
`compare` show it. The real check on SmolLM2 (an over-trained fine-tune flagged, the untrained base kept) is in
test_forgetting_real.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iris_recipes.evaluate import forgetting as F

SETTINGS = {
    "enabled": True,
    "max_new_tokens": 160,
    "loop_threshold": 0.5,
    "max_stop_drop": 0.1,
    "max_extra_loops": 1,
    "min_length_ratio": 0.3,
    "min_agreement": 0.05,
}


def toks(text: str) -> list[int]:
    """Stand-in token ids: one per character, so character loops are token loops."""
    return [ord(c) for c in text]


def reply(text: str, stopped: bool = True) -> F.Reply:
    return F.Reply(text, toks(text), stopped)


PROSE = (
    "Seasons happen because the Earth's axis is tilted by about 23 degrees. As the planet orbits the Sun, "
    "each hemisphere leans toward it for part of the year and gets more direct light and longer days."
)
LOOPS = [
    "1. 1.1.1: 1.1.1: 1.1.1: 1.1.1: 1.1.1: 1.1.1: 1.1.1: 1.1.1: 1.1.1:",
    "1000000100000000100000000100000000010000000000100000000",
    "The answer is 12. " * 6,
]


def test_rep4_separates_prose_from_loops():
    assert F.rep_n(toks(PROSE)) < 0.15 and not F.loops(reply(PROSE), 0.5)
    for text in LOOPS:
        assert F.rep_n(toks(text)) >= 0.5, text
        assert F.loops(reply(text, stopped=False), 0.5)
    assert not F.loops(reply("ok ok"), 0.5)  # too short to call a loop
    assert F.rep_n([]) == 0.0


def test_verdict_kept_and_degraded():
    base = [reply(PROSE)] * 10
    same = F.check(base, base, [f"p{i}" for i in range(10)], SETTINGS)
    assert same["kept"] and same["verdict"] == "general behaviour kept"
    assert same["tuned"]["agreement"] == 1.0 and same["agreement_prompts"] == 10

    one_loop = [reply(LOOPS[0], stopped=False)] + base[1:]  # one more loop and a 0.1 lower stop rate: allowed
    assert F.check(base, one_loop, [f"p{i}" for i in range(10)], SETTINGS)["kept"]

    looping = [reply(LOOPS[i % 3], stopped=False) for i in range(3)] + base[3:]
    res = F.check(base, looping, [f"p{i}" for i in range(10)], SETTINGS)
    assert not res["kept"]
    assert res["verdict"] == "degraded: 3 of 10 replies loop (base 0); stops on its own in 7 of 10 (base 10)"
    assert [r["tuned_loops"] for r in res["replies"]][:4] == [True, True, True, False]

    rambling = [reply(PROSE + " And more.", stopped=False)] * 2 + base[2:]  # no loop, but 2 fewer stops
    res = F.check(base, rambling, [f"p{i}" for i in range(10)], SETTINGS)
    assert res["verdict"] == "degraded: stops on its own in 8 of 10 (base 10)"
    # the thresholds are the recipe's: a looser recipe keeps it
    assert F.check(base, rambling, [f"p{i}" for i in range(10)], {**SETTINGS, "max_stop_drop": 0.2})["kept"]


def test_collapse_to_short_unrelated_replies_is_degraded():
    """Over-trained on its task, a model can end every turn politely with a few task tokens: no loop, no lost stop
    (measured on SmolLM2 at 5e-3 x 30 steps: median 14 vs 120 tokens, agreement 0.0)."""
    prompts = [f"p{i}" for i in range(10)]
    base = [reply(PROSE)] * 10
    collapsed = [reply("Answer: 12")] * 10
    res = F.check(base, collapsed, prompts, SETTINGS)
    assert not res["kept"] and res["tuned"]["stopped"] == 10 and res["tuned"]["loops"] == 0
    median = len(toks("Answer: 12"))
    assert res["verdict"] == (
        f"degraded: replies collapsed to a median of {median} tokens (base {len(toks(PROSE))}); "
        "replies share almost nothing with the base's (agreement 0.00)"
    )
    # a shorter reply on the same subject is a style, not a collapse
    short = [reply(PROSE.split(". ")[0] + ".")] * 10
    assert F.check(base, short, prompts, SETTINGS)["kept"]
    # agreement measured on fewer than MIN_AGREEMENT_PROMPTS prompts is reported, not judged
    few = F.check(
        base[:3], [reply("Unrelated words here, said once, politely and at length enough.")] * 3, prompts[:3], SETTINGS
    )
    assert few["tuned"]["agreement"] == 0.0 and few["kept"]
    # the thresholds are the recipe's
    loose = {**SETTINGS, "min_length_ratio": 0.0, "min_agreement": 0.0}
    assert F.check(base, collapsed, prompts, loose)["kept"]


def test_agreement_counts_only_prompts_the_base_answered():
    base = [reply(PROSE), reply(LOOPS[0], stopped=False), reply("Paris is the capital of France.")]
    tuned = [reply(PROSE), reply("Something else entirely."), reply("The capital of France is Paris.")]
    res = F.check(base, tuned, ["a", "b", "c"], SETTINGS)
    assert res["agreement_prompts"] == 2 and res["tuned"]["agreement"] == 1.0
    assert res["base"]["median_tokens"] == sorted(len(r.tokens) for r in base)[1]


def test_shipped_prompts_and_recipe_additions():
    shipped = F.shipped_prompts()
    assert 20 <= len(shipped) <= 30 and len(set(shipped)) == len(shipped)
    assert not any(p.startswith("#") for p in shipped)
    both = F.prompts_for({"general_prompts": ["Tell me a joke.", shipped[0]]})
    assert both == shipped + ["Tell me a joke."]


def test_recipe_thresholds_are_validated():
    from iris_recipes.errors import RecipeError
    from iris_recipes.recipe import load_recipe

    r = load_recipe("recipes/smollm2-demo.yaml", ["eval.general_prompts=[Tell me a joke.]"])
    assert r.data["eval"]["forgetting"] == SETTINGS  # the documented defaults, every one filled in
    r = load_recipe("recipes/smollm2-demo.yaml", ["eval.forgetting.min_agreement=0.2"])
    assert r.data["eval"]["forgetting"] == {**SETTINGS, "min_agreement": 0.2}  # one threshold set, the rest default
    with pytest.raises(RecipeError, match="loop_treshold"):
        load_recipe("recipes/smollm2-demo.yaml", ["eval.forgetting.loop_treshold=0.4"])
    with pytest.raises(RecipeError, match="max_stop_drop"):
        load_recipe("recipes/smollm2-demo.yaml", ["eval.forgetting.max_stop_drop=2"])


def _eval_with_forgetting(kept: bool) -> dict:
    base = [reply(PROSE)] * 4
    tuned = base if kept else [reply(LOOPS[0], stopped=False)] * 3 + base[3:]
    return F.check(base, tuned, ["What is the capital of Japan?", "b", "c", "d"], SETTINGS)


def test_card_shows_the_check_beside_the_task_metrics(tmp_path):
    pytest.importorskip("huggingface_hub")
    from conftest_card import card_of, make_run
    from iris_recipes.card import write_card

    for kept in (True, False):
        run = make_run(tmp_path / str(kept), "smollm2-demo")
        ev = json.loads(run.file("eval.json").read_text())
        ev["forgetting"] = _eval_with_forgetting(kept)
        run.file("eval.json").write_text(json.dumps(ev))
        write_card(run)
        text = card_of(run).text
        evaluation = text.split("## Evaluation", 1)[1].split("### Answers side by side", 1)[0]
        assert "| exact match number | 0.1500 | 0.4500 |" in evaluation  # the same table as the task metrics
        if kept:
            assert "| general prompts: replies that loop | 0 of 4 | 0 of 4 | +0 |" in evaluation
            assert "**Forgetting check: general behaviour kept.**" in evaluation
        else:
            assert "| general prompts: replies that loop | 0 of 4 | 3 of 4 | +3 |" in evaluation
            assert "| general prompts: stop on their own | 4 of 4 | 1 of 4 | -3 |" in evaluation
            assert "**Forgetting check: degraded: 3 of 4 replies loop (base 0)" in evaluation
            assert "*(no stop, rep-4 0.85)*" in text  # each looping reply is marked in the side-by-side list
        assert "What is the capital of Japan?" in text


def test_compare_shows_general_rows(tmp_path):
    from iris_recipes.compare import ComparedRun, markdown
    from iris_recipes.rundir import RunDir

    entries = []
    for i, kept in enumerate((True, False)):
        ev = {
            "base": {"val_loss": 2.0, "metrics": {"format_regex": 0.0}},
            "tuned": {"val_loss": 0.5, "metrics": {"format_regex": 1.0}},
            "noise": {"format_regex": 0.05},
            "forgetting": _eval_with_forgetting(kept),
        }
        entries.append(ComparedRun(RunDir(tmp_path / f"r{i}"), f"demo/r{i}", ev, {"train": {"learning_rate": 10**-i}}))
    md = markdown(entries)
    assert "| general: replies that loop | 0 | 0 | 3 (+3) |" in md
    assert "| general: stops on its own | 1 | 1 | 0.25 (-0.75) |" in md
    assert (
        "| general behaviour | - | kept | degraded: 3 of 4 replies loop (base 0); stops on its own in 1 of 4 "
        "(base 4) |" in md
    )


def test_eval_report_prints_the_verdict(capsys):
    from iris_recipes.evaluate.report import print_eval

    print_eval(
        {"base": {"metrics": {}}, "tuned": {"metrics": {}}, "samples": 1, "forgetting": _eval_with_forgetting(False)},
        Path("eval.json"),
    )
    out = capsys.readouterr().out
    assert "general prompts outside the task" in out and "degraded: 3 of 4 replies loop" in out
