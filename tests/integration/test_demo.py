"""The embedded default, end to end, the way the README's first quickstart command runs it: `scripts/demo.sh`
(setup, then `iris-recipes run recipes/smollm2-demo.yaml`) on the real SmolLM2-135M weights, offline, with fewer
steps. The fine-tuned model must visibly follow the trained answer format where its base does not, and the card
must show it. The run itself is tests/conftest_demo.py's (the recipe matrix shares it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(demo_session):
    assert demo_session["code"] == 0, demo_session["stdout"][-3000:] + demo_session["stderr"][-3000:]
    assert demo_session["run"] is not None, "the demo left no single run directory"
    return demo_session["run"], demo_session["stdout"]


@pytest.mark.slow
def test_demo_completes_every_stage(demo_run):
    run, stdout = demo_run
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "done"
    for stage in ("data", "train", "merge", "export", "eval", "card"):
        assert meta["stages"][stage]["status"] == "done", stage
    assert set(meta["artifacts"]["gguf"]) == {"f16", "q4_k_m", "q8_0"}
    for info in meta["artifacts"]["gguf"].values():
        assert (run / info["file"]).stat().st_size == info["bytes"]
    assert "iris-recipes space" in stdout, "the demo must say how to open the Space"
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(s.get("step", 0) for s in steps) == 12


@pytest.mark.slow
def test_demo_terminal_shows_what_a_user_can_act_on(demo_session, demo_run):
    """Library notices (a torchao kernel for another Python, torch deprecations, DeepSpeed picking the CPU, a
    bitsandbytes kernel it could not fetch, Axolotl loading the plugin) are in the stages' log files, not here."""
    run, stdout = demo_run
    terminal = stdout + demo_session["stderr"]
    for notice in (
        "Failed to load",
        "register_constant",
        "gemm_4bit_forward",
        "Setting accelerator to CPU",
        "[axolotl.integrations.base]",
    ):
        assert notice not in terminal, notice
    assert re.search(r"^train: done, 12 steps, final loss \d+\.\d{4}, world size 1$", stdout, re.M), stdout
    assert (run / "train.log").read_text().startswith("# Axolotl's validator\n")  # its output: in the log


@pytest.mark.slow
def test_demo_changes_behaviour_measurably(demo_run):
    run, _ = demo_run
    result = json.loads((run / "eval.json").read_text())
    base, tuned = result["base"], result["tuned"]
    assert tuned["val_loss"] < base["val_loss"]
    assert tuned["metrics"]["format_regex"] >= 0.5 > base["metrics"]["format_regex"]
    assert any(re.search(r"Answer: -?\d+", g["tuned"]) for g in result["generations"])
    general = result["forgetting"]  # the forgetting check ran on the shipped general prompts, both models
    # SmolLM2-135M-Instruct ends 14 of the 24 shipped prompts on its own within 160 tokens (greedy, measured);
    # a broken end-of-turn detection would count none.
    assert general["prompts"] == len(general["replies"]) >= 20
    assert general["base"]["stopped"] >= general["prompts"] // 2


@pytest.mark.slow
def test_demo_card_shows_base_vs_finetuned(demo_run):
    from huggingface_hub import ModelCard

    run, _ = demo_run
    card = ModelCard.load(run / "README.md")
    assert card.data.license == "apache-2.0" and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    result = json.loads((run / "eval.json").read_text())
    text = card.text
    for value in (result["base"]["val_loss"], result["tuned"]["val_loss"]):
        assert f"| {value:.4f} |" in text  # the card's table gives losses to 4 places
    first = result["generations"][0]
    assert first["prompt"] in text
    assert f"**Forgetting check: {result['forgetting']['verdict']}.**" in text
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["train"]["max_steps"] == 12


def test_readme_quickstart_is_what_ci_and_this_file_run():
    """The README's quickstart is exactly two commands: the one this file's demo test runs and the one CI runs."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("<!-- quickstart:end -->", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in section.splitlines() if line.startswith("    ")]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^bash scripts/test\.sh( |$)", ci, re.M), "CI must run the README's test command"
    assert '["bash", "scripts/demo.sh", *DEMO_OVERRIDES]' in (REPO / "tests" / "conftest_demo.py").read_text()
