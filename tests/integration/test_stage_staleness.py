"""Stages that know what they read: a stage run again on a run makes every stage that depends on it stale in
run.json, and the stages, `push` and the Space refuse a stale input, saying what to rerun; `run --resume` reruns the
stale stages. Real small runs: the tiny model, the real data stage, GGUF export and evaluation."""

from __future__ import annotations

import pytest

from conftest_eval import EVAL_BLOCK, assemble_run, tiny_recipe
from iris_recipes.cli import main
from iris_recipes.rundir import RunDir

pytestmark = pytest.mark.slow

# A short evaluation: two held-out rows, greedy and one seed, no forgetting check.
QUICK_EVAL = dict(EVAL_BLOCK, samples=2, seeds=[0], forgetting={"enabled": False})


def _project(tmp_path, tiny_model_dir, seed: int = 1):
    """recipes/tiny-eval.yaml and a finished run of it under runs/ (data prepared, merged model, GGUFs exported)."""
    import standins

    recipe = tiny_recipe(tmp_path / "recipes" / "tiny-eval.yaml", tiny_model_dir, eval=QUICK_EVAL)
    run = assemble_run(
        tmp_path / "runs" / "tiny-eval" / "20000101-000000", recipe, standins.cached("chatml", seed=seed)
    )
    return recipe, run


def _record_done(run: RunDir, *stages: str) -> None:
    """Record as done the stages whose output the run was assembled with (data, merged model), as `run` would."""
    meta = run.read()
    for name in stages:
        meta["stages"][name] = {"status": "done"}
    run.write(meta)


def _status(run: RunDir) -> dict[str, str]:
    return {name: info["status"] for name, info in run.read()["stages"].items()}


def test_export_again_makes_eval_and_card_stale_until_they_run_again(tmp_path, tiny_model_dir, converter, capsys):
    recipe, run = _project(tmp_path, tiny_model_dir)
    _record_done(run, "data", "train", "merge")
    r = str(run.path)

    # eval alone on the run: the eval stage, then the card stage writes the card
    assert main(["eval", r]) == 0, capsys.readouterr().err
    assert _status(run) == {s: "done" for s in ("data", "train", "merge", "export", "eval", "card")}
    card = run.file("README.md").read_text()
    capsys.readouterr()

    # export again: the evaluation and the card were made from the previous GGUFs
    assert main(["export", r]) == 0
    out = capsys.readouterr().out
    assert f"stale now (made from the previous export): eval, card; rerun: iris-recipes eval {r} && " in out
    meta = run.read()
    assert _status(run) == {
        **{s: "done" for s in ("data", "train", "merge", "export")},
        "eval": "stale",
        "card": "stale",
    }
    assert meta["stages"]["eval"]["stale_because"] == meta["stages"]["card"]["stale_because"] == "export"
    assert meta["status"] == "done"  # nothing was lost: it needs rerunning

    # the card stage refuses the stale evaluation, says what to rerun, and leaves the card as it was
    assert main(["card", r]) == 2
    err = capsys.readouterr().err
    assert (
        f"{r}: the card stage reads the output of eval, which is stale (export ran again after it). "
        f"Rerun: iris-recipes eval {r} && iris-recipes card {r}"
    ) in err
    assert "Traceback" not in err and run.file("README.md").read_text() == card

    # push refuses too, before anything is planned or uploaded
    assert main(["push", r, "--repo", "me/tiny-GGUF", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{r}: iris-recipes push reads the output of eval, card, which are stale (export ran again" in err
    assert "would upload" not in capsys.readouterr().out

    # the Space does not serve the variant from that run, and says why and what to rerun
    from iris_recipes.space_variants import load_variants

    variants, problems = load_variants(tmp_path / "recipes", tmp_path / "runs")
    [variant] = variants
    assert variant.status == "not_built" and variant.gguf == {}
    assert variant.build_command == f"iris-recipes eval {r} && iris-recipes card {r}"
    assert problems == [
        f"tiny-eval: not served from its newest run: {r}: iris-recipes space reads the output of eval, which is "
        f"stale (export ran again after it). Rerun: iris-recipes eval {r}"
    ]

    # `run --resume` reruns the stale stages, in order, and only those
    before = run.read()["stages"]
    assert main(["run", "--resume", r]) == 0, capsys.readouterr().err
    meta = run.read()
    assert _status(run) == {s: "done" for s in ("data", "train", "merge", "export", "eval", "card")}
    assert meta["status"] == "done" and "stale_because" not in meta["stages"]["eval"]
    assert meta["stages"]["export"] == before["export"]  # fresh: not run again
    assert meta["stages"]["eval"]["started"] >= before["export"]["finished"]
    variants, problems = load_variants(tmp_path / "recipes", tmp_path / "runs")
    assert problems == [] and variants[0].status == "built"


def test_eval_and_card_refuse_a_stale_export(tmp_path, tiny_model_dir, converter, capsys):
    """The data stage run again: the GGUFs were made from a model trained on the data before, so the export is
    stale, and eval and card refuse it until it is run again."""
    from iris_recipes.stages import StageContext, run_stage

    recipe, run = _project(tmp_path, tiny_model_dir, seed=2)
    r = str(run.path)
    run_stage("data", StageContext(run, recipe=run.recipe(), base=str(tiny_model_dir), say=lambda m: None))
    meta = run.read()
    assert meta["stages"]["export"]["status"] == "stale" and meta["stages"]["export"]["stale_because"] == "data"

    assert main(["eval", r]) == 2
    err = capsys.readouterr().err
    assert (
        f"{r}: the eval stage reads the output of export, which is stale (data ran again after it). "
        f"Rerun: iris-recipes export {r} && iris-recipes eval {r}"
    ) in err
    assert "eval" not in run.read()["stages"] and not run.file("eval.json").exists()
    assert main(["card", r]) == 2
    assert "the card stage reads the output of export, which is stale" in capsys.readouterr().err
    assert not run.file("README.md").exists()

    # exported again from the merged model there is: fresh, and eval may read it
    assert main(["export", r]) == 0
    assert run.read()["stages"]["export"]["status"] == "done"
    from iris_recipes.stages import stale_problem

    assert stale_problem(run, "eval") is None and stale_problem(run, "card") is None
