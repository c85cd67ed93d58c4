"""iris-recipes eval / compare: metrics, bad input before any work, and a real evaluation of tiny-model runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest_eval import EVAL_BLOCK, assemble_run, tiny_recipe
from iris_recipes.errors import IrisError
from iris_recipes.evaluate import metrics as M
from iris_recipes.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]


# -- metrics -----------------------------------------------------------------------------------------------------
def test_exact_match_takes_the_final_number():
    assert M.exact_match_number("7 + 5 = 12\nAnswer: 12", {"answer": "12"}) == 1.0
    assert M.exact_match_number("It is 12.0", {"answer": "12"}) == 1.0
    assert M.exact_match_number("12 apples, no: 13", {"answer": "12"}) == 0.0
    assert M.exact_match_number("no idea", {"answer": "12"}) == 0.0
    assert M.exact_match_number("That is 1,200 in total.", {"answer": "1200"}) == 1.0


def test_truthfulness_prefers_the_closer_reference():
    ref = {
        "correct": ["Nothing happens if you swallow gum; it passes through the digestive system"],
        "incorrect": ["Gum stays in your stomach for seven years"],
    }
    assert M.truthfulness("It passes through your digestive system and nothing happens.", ref) == 1.0
    assert M.truthfulness("Swallowed gum stays in the stomach for seven years.", ref) == 0.0
    assert M.truthfulness("Bananas.", ref) == 0.0  # close to neither: not counted as truthful


def test_keyword_overlap_and_format():
    ref = {"keywords": ["impressive", "excellent"]}
    assert M.keyword_overlap("Something impressive.", ref) == 0.5
    assert M.keyword_overlap("Excellent and impressive!", ref) == 1.0
    score = M.format_scorer(r"Answer: -?\d+\s*$")
    assert score("3 + 4 = 7\nAnswer: 7", {}) == 1.0
    assert score("Answer: 7 apples", {}) == 0.0


def test_check_metrics_names_rows_without_reference():
    rows = [{"messages": [], "reference": {"answer": "3"}}, {"messages": [], "reference": {}}]
    with pytest.raises(
        IrisError, match=r"exact_match_number needs reference answer.*1 of 2 rows of VAL lack it \(rows 2\)"
    ):
        M.check_metrics({"metrics": ["exact_match_number"]}, rows, "VAL")
    with pytest.raises(IrisError, match="keywords"):
        M.check_metrics({"metrics": ["keyword_overlap"]}, rows[:1], "VAL")
    with pytest.raises(IrisError, match="eval.format_regex: not a valid regular expression"):
        M.check_metrics({"metrics": ["format_regex"], "format_regex": "Answer: ("}, rows, "VAL")
    M.check_metrics({"metrics": ["exact_match_number", "format_regex"], "format_regex": "x"}, rows[:1], "VAL")


def test_loss_masks_everything_but_assistant_turns(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from iris_recipes.evaluate.loss import training_examples
    from iris_recipes.recipe import load_recipe
    from iris_recipes.train.config import tokenization_config

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    recipe = load_recipe(tiny_recipe(tmp_path / "r.yaml", tiny_model_dir), check_data=False)
    conv = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2 + 2 = 4\nAnswer: 4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "Answer: 6"},
    ]
    examples = training_examples(tok, tokenization_config(recipe.data, tiny_model_dir), [conv, conv * 40])
    assert examples.too_long == 1  # 160 turns are longer than the recipe's sequence_len (128): training drops it
    [(ids, labels)] = examples.pairs
    assert ids == tok(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)["input_ids"]
    trained = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assert trained == "2 + 2 = 4\nAnswer: 4<|im_end|>Answer: 6<|im_end|>"


# -- bad input: clear errors before any model is loaded -----------------------------------------------------------
def _bare_run(tmp_path: Path, tiny: Path, *, metrics=None, val_rows=None, merged=True, gguf=False) -> RunDir:
    """A run directory with just enough files to reach a given check (no model is ever loaded by these tests)."""
    from iris_recipes.recipe import load_recipe

    eval_block = dict(EVAL_BLOCK, **({"metrics": metrics} if metrics is not None else {}))
    recipe = load_recipe(tiny_recipe(tmp_path / "r.yaml", tiny, eval=eval_block), check_data=False)
    run = RunDir(tmp_path / "runs" / "tiny-eval" / "r1")
    run.path.mkdir(parents=True)
    (run.path / "recipe.yaml").write_text(recipe.to_yaml())
    run.write({"recipe": "tiny-eval", "status": "done", "stages": {}, "artifacts": {}})
    rows = (
        val_rows
        if val_rows is not None
        else [
            {
                "messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "Answer: 2"}],
                "reference": {"answer": "2"},
            }
        ]
    )
    (run.path / "data").mkdir()
    (run.path / "data" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if merged:
        shutil.copytree(tiny, run.path / "merged")
    if gguf:
        (run.path / "gguf").mkdir()
        (run.path / "gguf" / "x-f16.gguf").write_bytes(b"GGUF")
        run.set_artifact("gguf", {"f16": {"file": "gguf/x-f16.gguf"}})
    return run


def test_eval_without_merged_model(tmp_path, tiny_model_dir):
    from iris_recipes.evaluate import plan

    run = _bare_run(tmp_path, tiny_model_dir, merged=False)
    with pytest.raises(IrisError, match=r"no merged model .*merged/config.json is missing"):
        plan(run.path)


def test_eval_without_gguf(tmp_path, tiny_model_dir):
    from iris_recipes.evaluate import plan

    run = _bare_run(tmp_path, tiny_model_dir)
    with pytest.raises(IrisError, match=r"no GGUF export recorded.*iris-recipes export"):
        plan(run.path)
    run.set_artifact("gguf", {"f16": {"file": "gguf/gone-f16.gguf"}})
    with pytest.raises(IrisError, match="GGUF files listed in run.json are missing: .*gone-f16.gguf"):
        plan(run.path)


def test_eval_metric_the_data_cannot_support(tmp_path, tiny_model_dir):
    from iris_recipes.evaluate import plan

    rows = [
        {
            "messages": [{"role": "user", "content": "Define 'rizz'."}, {"role": "assistant", "content": "Charm."}],
            "reference": {"answer": "1"},
        }
    ]
    run = _bare_run(tmp_path, tiny_model_dir, metrics=["keyword_overlap"], val_rows=rows, gguf=True)
    with pytest.raises(IrisError, match=r"keyword_overlap needs reference keywords .*val.jsonl"):
        plan(run.path)
    before = run.read()
    # the CLI says the same in one clean line, exit 2, no traceback, and run.json is untouched
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "IRIS_HOME": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "eval", str(run.path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**env, "IRIS_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2, proc.stderr
    assert "keyword_overlap needs reference keywords" in proc.stderr and "Traceback" not in proc.stderr
    assert run.read() == before and not run.file("eval.json").exists()


def test_compare_needs_evaluated_runs(tmp_path, tiny_model_dir, monkeypatch):
    from iris_recipes.compare import compare

    run = _bare_run(tmp_path, tiny_model_dir)
    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(IrisError, match="not evaluated yet .*iris-recipes eval"):
        compare([str(run.path)])
    with pytest.raises(IrisError, match="no finished run of recipe 'nothing-here'"):
        compare(["nothing-here"])


# -- a real evaluation ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_model_dir):
    """Two runs of the tiny recipe (real data stage and GGUF export); their merged models differ in weights."""
    import standins

    root = tmp_path_factory.mktemp("evalruns")
    recipe = tiny_recipe(root / "tiny-eval.yaml", tiny_model_dir)
    runs = []
    for i, seed in enumerate((1, 2)):
        runs.append(
            assemble_run(
                root / "runs" / "tiny-eval" / f"2000010{i}-000000", recipe, standins.cached("chatml", seed=seed)
            )
        )
    return runs


def _eval_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("eval:")]


@pytest.mark.slow
def test_eval_and_compare_tiny_runs(tiny_runs, tmp_path, monkeypatch):
    """The first run is evaluated by `iris-recipes eval` in a child (its real output captured), the second by the
    eval stage of `iris-recipes run`; both print each line once, prefixed once. The two runs share base and data,
    so the second reads the base's loss and answers back from the first (evaluate/base_cache.py)."""
    import io

    from rich.console import Console

    from iris_recipes.compare import compare
    from iris_recipes.evaluate import plan
    from iris_recipes.paths import cache_dir
    from iris_recipes.stages import StageContext, run_stage

    # The session's cache without its base answers (the first evaluation computes the base): a private one, so
    # evaluations elsewhere in the session neither add entries here nor lose theirs.
    private = tmp_path / "cache"
    private.mkdir()
    for entry in cache_dir().iterdir():
        if entry.name != "eval-base-answers":
            (private / entry.name).symlink_to(entry)
    monkeypatch.setenv("IRIS_CACHE_DIR", str(private))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "eval", str(tiny_runs[0].path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    # The export measured each file's speed; eval measures only a file it did not (here: an older export's q8_0).
    meta_file = tiny_runs[1].file("run.json")
    meta = json.loads(meta_file.read_text())
    del meta["stages"]["export"]["checks"]["q8_0"]["speed"]
    meta_file.write_text(json.dumps(meta))
    screen = io.StringIO()
    console = Console(file=screen, width=300)  # as `run` reports its eval stage
    run_stage("eval", StageContext(tiny_runs[1], eval_log=lambda m: console.print(f"eval: {m}")))
    console.print(f"eval: {tiny_runs[1].file('eval.json')}")
    p = plan(tiny_runs[0].path)
    general = json.loads(tiny_runs[0].file("eval.json").read_text())["forgetting"]
    too_long = json.loads(tiny_runs[0].file("eval.json").read_text())["base"]["too_long"]
    assert 0 < too_long < len(p.loss_rows)  # the tiny recipe's sequence_len (128) is shorter than some rows
    scored = (
        f"{len(p.loss_rows) - too_long} held-out conversations ({too_long} longer than train.sequence_len 128 left "
        "out, as training leaves them out)"
    )

    def expected_lines(verdict: str, base_cached: bool, measured: tuple[str, ...] = ()) -> list[str]:
        lines = [f"eval: converting the base model {p.base} to GGUF (cached)"]
        for side in ("base", "tuned"):
            if side == "base" and base_cached:
                lines.append(
                    f"eval: base: loss and answers from an earlier evaluation with the same inputs (key {key})"
                )
                continue
            lines += [
                f"eval: {side}: validation loss on {scored}",
                f"eval: {side}: {len(p.rows)} held-out answers (greedy + {len(EVAL_BLOCK['seeds'])} seeds), "
                f"{len(EVAL_BLOCK['prompts'])} prompts and {general['prompts']} general prompts",
            ]
        return [
            *lines,
            f"eval: general prompts: {verdict}",
            f"eval: q8_0: {len(p.rows)} held-out answers and {general['prompts']} general prompts",
            *(f"eval: speed of tiny-eval-{q}.gguf" for q in measured),
        ]

    [entry] = list((cache_dir() / "eval-base-answers").iterdir())
    key = entry.stem[:12]
    second = json.loads(tiny_runs[1].file("eval.json").read_text())["forgetting"]["verdict"]
    assert _eval_lines(proc.stderr) == expected_lines(general["verdict"], False)
    assert "eval: eval:" not in proc.stderr + proc.stdout
    assert _eval_lines(screen.getvalue()) == [
        *expected_lines(second, True, ("q8_0",)),
        f"eval: {tiny_runs[1].file('eval.json')}",
    ]
    assert "eval: eval:" not in screen.getvalue()

    results = [json.loads(run.file("eval.json").read_text()) for run in tiny_runs]
    # the base half read back is the base half computed: same loss, metrics, answers and general replies
    assert [r["base_cached"] for r in results] == [False, True]
    assert results[1]["base"] == results[0]["base"] and results[1]["sampled"]["base"] == results[0]["sampled"]["base"]
    assert [g["base"] for g in results[1]["forgetting"]["replies"]] == [
        g["base"] for g in results[0]["forgetting"]["replies"]
    ]
    res = results[0]
    assert res["samples"] == EVAL_BLOCK["samples"]
    for side in ("base", "tuned"):
        assert res[side]["val_loss"] > 0 and res[side]["perplexity"] > 1
        assert set(res[side]["metrics"]) == {"exact_match_number", "format_regex"}
        assert len(res["sampled"][side]["format_regex"]) == len(EVAL_BLOCK["seeds"])
    # different weights -> different losses: the numbers come from the models
    assert res["base"]["val_loss"] != res["tuned"]["val_loss"]
    assert results[0]["tuned"]["val_loss"] != results[1]["tuned"]["val_loss"]
    assert set(res["noise"]) == {"exact_match_number", "format_regex"}
    gens = res["generations"]
    assert len(gens) == len(EVAL_BLOCK["prompts"]) * (1 + len(EVAL_BLOCK["seeds"]))
    sampled = [g for g in gens if "seed" in g]
    assert all(g["base"] != g["tuned"] for g in sampled)  # seeded samples of two different random models
    assert set(res["gguf"]) == {"f16", "q8_0"}
    for v in res["gguf"].values():
        assert v["decode_tok_s"] > 0 and 0 < v["ttft_s"] < v["latency_s"]
    checks = tiny_runs[0].read()["stages"]["export"]["checks"]
    assert res["gguf"] == {q: checks[q]["speed"] for q in ("f16", "q8_0")}  # the export's measurement, once
    second_gguf = results[1]["gguf"]
    assert second_gguf["f16"] == tiny_runs[1].read()["stages"]["export"]["checks"]["f16"]["speed"]
    assert (
        second_gguf["q8_0"]["decode_tok_s"] > 0
        and "speed" not in tiny_runs[1].read()["stages"]["export"]["checks"]["q8_0"]
    )
    # every exported file judged on the task and the forgetting check, with its speed, memory and size
    assert set(res["quants"]) == {"f16", "q8_0"}
    assert res["quants"]["f16"]["metrics"] == res["tuned"]["metrics"]
    for quant, judged in res["quants"].items():
        assert set(judged["metrics"]) == {"exact_match_number", "format_regex"}
        assert judged["forgetting_kept"] is res["forgetting"]["kept"] or quant != "f16"
        assert isinstance(judged["forgetting_kept"], bool) and judged["forgetting_verdict"]
        assert judged["bytes"] == tiny_runs[0].file("gguf", f"tiny-eval-{quant}.gguf").stat().st_size
        assert judged["decode_tok_s"] == res["gguf"][quant]["decode_tok_s"] and judged["resident_mb"] > 0
    card = tiny_runs[0].file("README.md").read_text()
    assert "### Each file on the task" in card and "| Q8_0 |" in card.split("### Each file on the task", 1)[1]
    meta = tiny_runs[0].read()
    assert meta["stages"]["eval"]["status"] == "done" and meta["status"] == "done"

    out = tmp_path / "cmp.md"
    entries, dest = compare([str(r.path) for r in tiny_runs], out)
    text = out.read_text()
    assert dest == out and len(entries) == 2
    assert "| val_loss |" in text and "format_regex" in text and "noise (seed spread)" in text
    assert f"{results[1]['tuned']['val_loss']:.4g}" in text


# -- batched generation ------------------------------------------------------------------------------------------


def test_batched_greedy_answers_equal_one_at_a_time(smollm2_dir):
    """Eval decodes many prompts together in one llama.cpp context (shared KV buffer, continuous batching); each
    greedy answer must be the one llama-cpp-python gives for that prompt alone: no sequence sees another's cells."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from iris_recipes.evaluate.generate import base_f16_gguf, generator

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    questions = [
        "Sam has 7 apples and buys 5 more. How many apples does Sam have?",
        "Name three colours of the rainbow.",
        "What is the capital of France? Answer in one sentence.",
        "Write one sentence about the sea.",
        "Give a synonym for 'happy'.",
        "How many legs does a spider have?",
    ]
    prompts = [
        tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True))[
            "input_ids"
        ]
        for q in questions
    ]
    limits = [24, 8, 16, 24, 12, 20]  # unequal limits: slots free at different steps and take the next prompt
    gguf = base_f16_gguf(smollm2_dir, "SmolLM2-135M-Instruct")
    with generator(gguf, n_ctx=256, threads=2, slots=3) as gen:
        batched = gen.batch_generate(prompts, limits)
    llm = Llama(model_path=str(gguf), n_ctx=256, n_threads=2, verbose=False)
    try:
        for prompt, limit, reply in zip(prompts, limits, batched):
            alone = []
            llm.reset()
            for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
                if llm.token_eos() == token or len(alone) >= limit:
                    break
                alone.append(token)
            assert reply.tokens == alone, tok.decode(prompt)
        assert any(len(r.tokens) == limit for r, limit in zip(batched, limits))  # some ran to their limit
    finally:
        llm.close()
