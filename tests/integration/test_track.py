"""Experiment tracking (recipe `track:`): the Axolotl keys, bad input, and a real tracked run that is interrupted,
resumed and evaluated, read back with MLflow's own client and W&B's own offline-file reader."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

from iris_recipes import track
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.recipe import load_recipe
from iris_recipes.train.config import build_config
from iris_recipes.train.launch import LaunchSpec

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"HF_TOKEN": "hf_iristestsecret0123456789", "WANDB_API_KEY": "wandbiristestsecret0123456789abcdefghij"}


def _config(*overrides: str) -> dict:
    r = load_recipe(REPO / "recipes" / "smollm2-demo.yaml", overrides)
    return build_config(r.data, base_model="/models/x", spec=LaunchSpec(), has_val=True, run_name="20250101-000000")


def test_tracking_is_off_by_default_and_maps_to_axolotl_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    off = _config()
    assert not [k for k in off if k.startswith(("mlflow", "wandb", "use_mlflow", "use_wandb", "hf_mlflow"))]
    cfg = _config("track.mlflow.experiment=demo-exp", "track.wandb.project=demo-proj", "track.tags.owner=lab")
    assert cfg["mlflow_experiment_name"] == "demo-exp" and cfg["mlflow_run_name"] == "20250101-000000"
    assert cfg["mlflow_tracking_uri"] == f"file:{tmp_path / 'mlruns'}" and cfg["hf_mlflow_log_artifacts"] is False
    assert cfg["wandb_project"] == "demo-proj" and cfg["wandb_name"] == "20250101-000000"
    assert cfg["wandb_run_id"] == "smollm2-demo-20250101-000000" and cfg["wandb_mode"] == "offline"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert _config("track.mlflow={}")["mlflow_experiment_name"] == "smollm2-demo"
    assert _config("track.mlflow={}")["mlflow_tracking_uri"] == "http://127.0.0.1:5000"


def test_track_block_is_validated():
    with pytest.raises(RecipeError, match=r"track.mlflow.*unknown key 'tracking_uri'"):
        load_recipe(REPO / "recipes" / "smollm2-demo.yaml", ["track.mlflow.tracking_uri=file:/etc"])
    with pytest.raises(RecipeError, match="unknown key 'neptune'"):
        load_recipe(REPO / "recipes" / "smollm2-demo.yaml", ["track.neptune={}"])


def test_missing_tracker_package_fails_before_any_work(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    data = load_recipe(REPO / "recipes" / "smollm2-demo.yaml", ["track.mlflow={}"]).data
    with pytest.raises(IrisError, match=r"R.yaml: track.mlflow: the mlflow package is not installed"):
        track.check(data, "R.yaml")


def test_eval_metrics_are_flat_numbers():
    res = {
        "base": {"val_loss": 2.0, "metrics": {"format_regex": 0.0}},
        "tuned": {"val_loss": 0.5, "perplexity": 1.6, "metrics": {"format_regex": 1.0}},
        "noise": {"format_regex": 0.05},
        "gguf": {"f16": {"decode_tok_s": 50.0, "ttft_s": 0.1}},
        "forgetting": {
            "base": {"stop_rate": 1.0, "loops": 0},
            "tuned": {"stop_rate": 0.9, "loops": 1, "agreement": None},
            "kept": True,
        },
    }
    m = track.eval_metrics(res)
    assert m["eval/tuned/format_regex"] == 1.0 and m["eval/base/val_loss"] == 2.0
    assert m["eval/general/tuned/stop_rate"] == 0.9 and m["eval/general/kept"] == 1.0
    assert m["eval/gguf/f16/decode_tok_s"] == 50.0 and "eval/general/tuned/agreement" not in m


# -- a real tracked run ----------------------------------------------------------------------------------------
def _wandb_offline(run_dir: Path) -> tuple[set[str], bytes]:
    """The run ids of W&B's offline runs in RUN/wandb/ and the bytes of their record files.

    wandb 0.31 dropped its Python reader of `.wandb` files (its Go core reads them for `wandb sync`); their
    protobuf records hold every key and file name as plain UTF-8, which is what these tests look for.
    """
    dirs = sorted(run_dir.glob("wandb/offline-run-*"))
    ids = {d.name.split("-", 3)[-1] for d in dirs}
    return ids, b"".join(p.read_bytes() for d in dirs for p in d.glob("run-*.wandb"))


@pytest.mark.slow
def test_tracked_run_interrupted_resumed_and_evaluated(tmp_path, tiny_model_dir):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tests.conftest_train import (
        cli_env,
        metrics,
        only_run,
        processes_in,
        run_cli,
        start_cli,
        wait_for,
        write_recipe,
    )

    runs = tmp_path / "runs"
    trackers = {"mlflow": {"experiment": "tiny-exp"}, "tags": {"owner": "lab"}}
    has_wandb = importlib.util.find_spec("wandb") is not None  # optional: tested whenever it is installed
    if has_wandb:
        trackers["wandb"] = {"project": "tiny-proj"}
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        **{
            "train.max_steps": 24,
            "train.save_steps": 2,
            "train.eval_steps": 12,
            "track": trackers,
            "export.quantize": [],
            "space.quant": "f16",
            "eval.samples": 2,
            "eval.seeds": [0],
            "eval.max_new_tokens": 8,
            "eval.forgetting.max_new_tokens": 16,
            "card.tags": ["tiny", "test"],
        },
    )
    env = {**cli_env(runs), **SECRETS}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["WANDB_MODE"] = "disabled"  # what the launch environment used to force; the recipe's W&B runs offline

    # 1. SIGTERM after the first checkpoint: interrupted mid-training
    proc = start_cli(["run", str(recipe)], env, tmp_path)
    wait_for(lambda: any((runs / "tiny-train").glob("*/run.json")), 300, "the run", proc)
    saved = lambda: any(r.get("event") == "save" for r in metrics(only_run(runs, "tiny-train")))  # noqa: E731
    wait_for(saved, 400, "checkpoint 2", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, proc.stdout.read()
    run = only_run(runs, "tiny-train")
    wait_for(lambda: not processes_in(run), 60, "the training processes to end")
    first = max(r["step"] for r in metrics(run) if "loss" in r)
    assert first < 24

    # 2. resume to the end: the rest of training, merge, export, eval, card
    res = run_cli(["run", "--resume", str(run)], env, tmp_path, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "eval: logged to mlflow" in res.stdout

    # MLflow, read with its own client: one run, named after the run id, both launches and the eval in it
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(f"file:{runs / 'mlruns'}")
    exp = client.get_experiment_by_name("tiny-exp")
    [tracked] = client.search_runs([exp.experiment_id])
    assert tracked.info.run_name == run.name and tracked.info.status == "FINISHED"
    assert tracked.data.tags["iris.run_id"] == run.name and tracked.data.tags["owner"] == "lab"
    assert tracked.data.tags["iris.tags"] == "tiny, test" and tracked.data.tags["iris.recipe"] == "tiny-train"
    params = tracked.data.params
    assert params["recipe.train.learning_rate"] == "0.001" and float(params["learning_rate"]) == 1e-3  # trainer's
    loss_steps = sorted({m.step for m in client.get_metric_history(tracked.info.run_id, "loss")})
    assert loss_steps[0] <= first < loss_steps[-1] == 24  # before and after the interruption, one run
    ev = tracked.data.metrics
    for key in ("eval/tuned/val_loss", "eval/base/val_loss", "eval/general/tuned/stop_rate", "eval/general/kept"):
        assert key in ev, key
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"recipe.yaml", "eval.json", "README.md"} <= artifacts
    assert run.joinpath("run.json").read_text().count(tracked.info.run_id) == 1

    stores = [runs / "mlruns"]
    if has_wandb:
        ids, records = _wandb_offline(run)
        assert ids == {f"tiny-train-{run.name}"}  # both launches and the eval: one W&B run, resumed
        for key in (
            b"train/loss",
            b"learning_rate",
            b"eval/tuned/val_loss",
            b"eval/general/kept",
            b"evaluation",
            b"eval.json",
            b"recipe.yaml",
        ):
            assert key in records, key
        stores.append(run / "wandb")
    # no token or key from the environment reached any store
    for store in stores:
        for path in store.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in SECRETS.values()), path
