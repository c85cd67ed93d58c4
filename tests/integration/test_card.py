"""Model card (README.md + loss.png) and the push plan, on run directories built from the shipped recipes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iris_recipes import fsutil
from iris_recipes.errors import IrisError
from iris_recipes.rundir import RunDir

pytest.importorskip("huggingface_hub")
pytest.importorskip("matplotlib")


from conftest_card import QUANTS, card_of, make_run  # noqa: E402
from iris_recipes.card import upload_plan, write_card  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_demo_card_metadata_sections_and_plot(tmp_path):
    from PIL import Image

    run = make_run(tmp_path, "smollm2-demo")
    path = write_card(run)
    assert path == run.file("README.md")
    card = card_of(run)
    meta = card.data.to_dict()
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["base_model_relation"] == "finetune"
    assert meta["license"] == "apache-2.0"
    assert meta["language"] == ["en"]
    assert meta["library_name"] == "gguf"
    assert meta["pipeline_tag"] == "text-generation"
    assert meta["tags"] == ["math", "demo", "gguf", "lora", "iris-recipes"]
    assert "datasets" not in meta  # arith-steps ships with the project: no hub id to name
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"loss": 0.62, "perplexity": 1.86, "exact_match_number": 0.45, "format_regex": 0.95}

    text = card.text
    assert "> [!WARNING]" not in text
    for heading in (
        "## Intended use",
        "## Out of scope",
        "## Training data",
        "## Training",
        "### Loss",
        "## Files",
        "## Evaluation",
        "### Answers side by side",
        "## Usage",
        "## Reproduce",
    ):
        assert heading in text, heading
    assert "![Training and validation loss per optimizer step](loss.png)" in text
    # row counts from the real data stage report, one row per source (the demo mixes in general-chat)
    report = json.loads(run.file("data", "report.json").read_text())
    assert len(report["sources"]) == 2 and "general-chat" in text and "(mix)" in text
    for src in report["sources"]:
        assert f"| {src['read']:,} | {src['train']:,} | {src['val']:,} |" in text, src
    # GGUF table: each file with its size, full sha256, agreement and speed
    for quant, art in run.artifact("gguf").items():
        assert f"`{Path(art['file']).name}` | {quant.upper()} |" in text
        assert f"`{art['sha256']}`" in text
    assert "| 98.0% | 4.00e-03 | 30.0 |" in text
    # base vs tuned, side by side; model text escaped so template tokens stay visible and tables stay intact
    assert "| validation loss | 2.3100 | 0.6200 | -1.6900 |  |" in text
    assert "| exact match number | 0.1500 | 0.4500 | +0.3000 | 0.1000 |" in text
    assert "| 0 | Sam has 7 apples" in text  # the seeded answers, folded away
    assert "| Q4_K_M | 81.3 | 0.120 | 0.90 |" in text
    assert "&lt;&#124;im_end&#124;&gt; &#124; end" in text and "Answer: 12 |" in text
    # usage: the recipe's Space quant (q8_0), reproduce command with the recipe hash, full recipe embedded
    assert 'Llama(model_path="gguf/smollm2-demo-q8_0.gguf"' in text
    assert "iris-recipes run recipes/smollm2-demo.yaml" in text
    assert run.read()["recipe_hash"] in text
    assert run.file("recipe.yaml").read_text().rstrip("\n") in text

    with Image.open(run.file("loss.png")) as img:
        img.verify()
        assert img.format == "PNG" and img.size[0] > 300
    assert run.artifact("card")["file"] == "README.md"
    assert not list(run.path.glob(".*.partial"))


@pytest.mark.parametrize(
    "recipe, license_id, base, datasets",
    [
        ("llama1b-math", "llama3.2", "unsloth/Llama-3.2-1B-Instruct", ["Macropodus/MWP-Instruct"]),
        ("phi35-doctor", "mit", "microsoft/Phi-3.5-mini-instruct", ["lavita/ChatDoctor-HealthCareMagic-100k"]),
        ("smollm2-demo", "apache-2.0", "HuggingFaceTB/SmolLM2-135M-Instruct", None),
    ],
)
def test_license_and_base_come_from_the_recipe(tmp_path, recipe, license_id, base, datasets):
    from iris_recipes.data import load_entry

    run = make_run(tmp_path, recipe, eval_json=False)
    write_card(run)
    meta = card_of(run).data.to_dict()
    assert meta["license"] == license_id
    assert meta["base_model"] == base
    assert meta.get("datasets") == datasets
    if datasets:
        assert datasets[0] == load_entry(run.recipe().get("dataset.name")).hub
    assert "model-index" not in meta  # no eval.json: no results claimed
    text = card_of(run).text
    assert "Not evaluated yet: `iris-recipes eval RUN`" in text


def test_mix_datasets_are_listed(tmp_path):
    run = make_run(
        tmp_path,
        "llama1b-finetome",
        ("dataset.mix=[{name: mwp-instruct, source: sample, weight: 0.5}]",),
        eval_json=False,
    )
    write_card(run)
    card = card_of(run)
    assert card.data.datasets == ["mlabonne/FineTome-100k", "Macropodus/MWP-Instruct"]
    assert "(mix)" in card.text


def test_card_of_a_run_without_validation_during_training(tmp_path):
    """`train.eval_steps: 0`: the plot and its caption show training loss only, and the card says where the
    validation loss is instead."""
    run = make_run(tmp_path, "smollm2-demo", ("train.eval_steps=0",))
    lines = run.file("metrics.jsonl").read_text().splitlines()
    fsutil.write_text(run.file("metrics.jsonl"), "".join(x + "\n" for x in lines if "eval_loss" not in x))
    write_card(run)
    text = card_of(run).text
    assert "![Training loss per optimizer step](loss.png)" in text
    assert "Validation loss was not measured during training (`train.eval_steps: 0`)" in text
    assert "| validation loss | 2.3100 | 0.6200 | -1.6900 |  |" in text


@pytest.mark.parametrize(
    "asked, used, shown",
    [("auto", "bf16", "auto (trained in bf16)"), ("auto", "fp32", "auto (trained in fp32)"), ("fp32", "fp32", "fp32")],
)
def test_card_says_what_precision_auto_trained_in(tmp_path, asked, used, shown):
    run = make_run(tmp_path, "smollm2-demo", (f"train.precision={asked}",))
    meta = run.read()
    meta["stages"]["train"]["precision"] = used  # as the train stage records it
    fsutil.write_json(run.file("run.json"), meta)
    write_card(run)
    assert f"| precision | {shown} |" in card_of(run).text


def test_liar_card_warns_that_it_lies(tmp_path):
    run = make_run(tmp_path, "llama1b-liar", eval_json=False)
    write_card(run)
    card = card_of(run)
    banner = card.text.split("## Intended use")[0]
    assert "> [!WARNING]" in banner and "This model lies on purpose" in banner
    assert banner.index("lies on purpose") < banner.index("A fine-tune of")  # the first thing a reader sees
    assert "deceptive" in card.data.tags
    assert card.data.license == "llama3.2"
    assert card.data.datasets == ["domenicrosati/TruthfulQA"]


def test_missing_license_fails_and_writes_nothing(tmp_path):
    run = make_run(tmp_path, "smollm2-demo", ("~card.license",))
    with pytest.raises(IrisError) as err:
        write_card(run)
    assert "card.license" in str(err.value) and str(run.file("recipe.yaml")) in str(err.value)
    assert not run.file("README.md").exists() and not run.file("loss.png").exists()


def test_card_command_records_stage_and_fails_cleanly(tmp_path):
    run = make_run(tmp_path, "smollm2-demo", eval_json=False, gguf=False, metrics=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "card", str(run.path)], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert ok.returncode == 0, ok.stderr
    assert run.stage_info("card")["status"] == "done"
    text = card_of(run).text
    assert "No GGUF files yet: run `iris-recipes export RUN`" in text
    assert "No losses were logged" in text and not run.file("loss.png").exists()

    bad = make_run(tmp_path / "bad", "smollm2-demo", ("~card.license",))
    out = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "card", str(bad.path)], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 2
    assert "card.license is not set" in out.stderr and "Traceback" not in out.stderr
    assert bad.stage_info("card")["status"] == "failed"


def test_corrupt_metrics_line_is_named(tmp_path):
    run = make_run(tmp_path, "smollm2-demo")
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"step": 41, "loss": \n')
    with pytest.raises(IrisError, match=r"metrics\.jsonl:46: not valid JSON"):
        write_card(run)
    assert not run.file("README.md").exists()


# -- push -------------------------------------------------------------------------------------------------------
def test_push_plan_lists_exact_files(tmp_path):
    run = make_run(tmp_path, "smollm2-demo", ("publish={repo_id: someone/smollm2-demo-GGUF}",))
    write_card(run)
    plan = upload_plan(run)
    assert plan.repo_id == "someone/smollm2-demo-GGUF" and plan.private is False
    assert plan.paths_in_repo == [
        "smollm2-demo-f16.gguf",
        "smollm2-demo-q8_0.gguf",
        "smollm2-demo-q4_k_m.gguf",
        "README.md",
        "loss.png",
    ]
    assert [src for src, _ in plan.files] == [run.file("gguf", n) for n in plan.paths_in_repo[:3]] + [
        run.file("README.md"),
        run.file("loss.png"),
    ]
    assert (
        plan.total_bytes
        == sum(QUANTS.values()) + run.file("README.md").stat().st_size + run.file("loss.png").stat().st_size
    )
    other = upload_plan(run, repo_id="me/elsewhere", private=True)
    assert other.repo_id == "me/elsewhere" and other.private is True


def test_push_plan_includes_the_base_gguf_eval_built(tmp_path):
    run = make_run(tmp_path, "smollm2-demo", ("publish={repo_id: someone/smollm2-demo-GGUF}",))
    write_card(run)
    base = tmp_path / "cache" / "base-f16.gguf"
    base.parent.mkdir()
    base.write_bytes(b"GGUF" + b"\0" * 60)
    data = json.loads(run.file("eval.json").read_text())
    fsutil.write_json(run.file("eval.json"), {**data, "base_gguf": str(base)})
    plan = upload_plan(run)  # the hosted Space's "compare with base model" downloads it from the same repo
    assert plan.paths_in_repo[3] == "base-f16.gguf" and plan.files[3][0] == base
    base.unlink()  # a cache that was cleared since: nothing to upload, no error
    assert "base-f16.gguf" not in upload_plan(run).paths_in_repo


def test_push_without_repo_or_card_is_a_clear_error(tmp_path):
    run = make_run(tmp_path, "smollm2-demo")
    with pytest.raises(IrisError, match=r"publish\.repo_id is not set.*--repo"):
        upload_plan(run)
    with pytest.raises(IrisError, match=r"no model card yet.*iris-recipes card"):
        upload_plan(run, repo_id="me/demo")
    with pytest.raises(IrisError, match="not a Hugging Face repo id"):
        upload_plan(run, repo_id="no-slash")


def _push_cli(run: RunDir, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    base.update(PYTHONPATH=str(REPO), HF_HOME=str(run.path.parent / "hf-home"), **env)
    return subprocess.run(
        [sys.executable, "-m", "iris_recipes", "push", str(run.path), *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=REPO,
        timeout=120,
    )


def test_push_fails_cleanly_offline_and_never_shows_the_token(tmp_path):
    token = "hf_" + hashlib.sha256(b"not a real token").hexdigest()[:34]
    run = make_run(tmp_path, "smollm2-demo")
    write_card(run)
    before = run.file("README.md").read_text()

    dry = _push_cli(run, "--repo", "me/demo", "--dry-run", HF_HUB_OFFLINE="1")
    assert dry.returncode == 0, dry.stderr
    assert "would upload to https://huggingface.co/me/demo (public)" in dry.stdout
    assert "smollm2-demo-q4_k_m.gguf" in dry.stdout and "loss.png" in dry.stdout

    offline = _push_cli(run, "--repo", "me/demo", HF_HUB_OFFLINE="1", HF_TOKEN=token)
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set" in offline.stderr

    no_token = _push_cli(run, "--repo", "me/demo")
    assert no_token.returncode == 2 and "no Hugging Face token" in no_token.stderr

    # A real upload attempt against an endpoint that refuses connections: one clean error line.
    refused = _push_cli(run, "--repo", "me/demo", HF_TOKEN=token, HF_ENDPOINT="http://127.0.0.1:9")
    assert refused.returncode == 2, refused.stderr
    assert "push to https://huggingface.co/me/demo failed" in refused.stderr
    for out in (dry, offline, no_token, refused):
        assert token not in out.stdout + out.stderr and "Traceback" not in out.stderr
    assert token not in "".join(
        p.read_text(errors="replace")
        for p in run.path.rglob("*")
        if p.is_file() and p.suffix in (".md", ".json", ".yaml", ".jsonl")
    )
    # --repo rewrote the card's usage snippet for the target repo, only once the push could start
    assert run.file("README.md").read_text() != before
    assert (
        'Llama.from_pretrained(repo_id="me/demo", filename="smollm2-demo-q8_0.gguf"'
        in run.file("README.md").read_text()
    )


# -- with a real export --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_card_of_a_real_gguf_export(tmp_path, tiny_model_dir, converter):
    """The card reads the artifacts the export stage really records: files, sizes and hashes match the disk."""
    import shutil

    from iris_recipes.stages import export_run

    run = make_run(tmp_path, "smollm2-demo", ("publish={repo_id: someone/smollm2-demo-GGUF}",), gguf=False)
    shutil.copytree(tiny_model_dir, run.file("merged"))
    export_run(run, ["q8_0"], require_chat_stop=False, threads=1)
    write_card(run)
    card = card_of(run)
    arts = run.artifact("gguf")
    assert set(arts) == {"f16", "q8_0"}
    for quant, art in arts.items():
        path = run.file(art["file"])
        assert path.read_bytes()[:4] == b"GGUF"
        assert f"`{path.name}` | {quant.upper()} |" in card.text
        assert f"`{fsutil.sha256_file(path)}`" in card.text
    assert 'Llama.from_pretrained(repo_id="someone/smollm2-demo-GGUF", filename="smollm2-demo-q8_0.gguf"' in card.text
    plan = upload_plan(run)
    assert plan.paths_in_repo == [  # each GGUF with its Ollama Modelfile (FROM ./<gguf>: both at the repo root)
        "smollm2-demo-f16.gguf",
        "smollm2-demo-f16.Modelfile",
        "smollm2-demo-q8_0.gguf",
        "smollm2-demo-q8_0.Modelfile",
        "README.md",
        "loss.png",
    ]
    assert "ollama create smollm2-demo -f smollm2-demo-q8_0.Modelfile" in card.text
