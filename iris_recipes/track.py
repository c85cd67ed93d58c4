"""Experiment tracking (the recipe's `track:` block): MLflow and Weights & Biases, through their own clients.

The trainer logs training itself: the Axolotl keys from `train.config` switch on transformers' MLflowCallback /
WandbCallback in the training processes (parameters, loss, learning rate, eval loss). iris-recipes adds what the
trainer cannot know:
  - the tracked run is created before the first launch, named after the run id and tagged from the recipe, and its
    id is kept in run.json (`tracking`); every launch of the run, a resumed one too, logs into that same run;
  - after eval, the eval metrics (base and fine-tuned, forgetting check) are logged and the resolved recipe and
    eval.json attached as artifacts.

Where it goes (the recipe names trackers, never places, so it cannot write outside the run and runs directories):
  MLflow  MLFLOW_TRACKING_URI when set, else the local store file:RUNS/mlruns (no server, no network)
  W&B     offline unless WANDB_MODE=online; its files under RUN/wandb/ (`wandb sync` uploads them later)
No environment is logged, so tokens and keys (HF_TOKEN, WANDB_API_KEY, ...) never are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.recipe.view import view
from iris_recipes.rundir import RunDir

PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}


def trackers(recipe_data: dict) -> list[str]:
    """The trackers a recipe turns on, in a fixed order (none: tracking is off)."""
    block = recipe_data.get("track") or {}
    return [name for name in PACKAGES if name in block]  # `mlflow:` with nothing under it counts


def check(recipe_data: dict, where: str = "the recipe") -> None:
    """Fail before any work when a named tracker's package is missing."""
    missing = [n for n in trackers(recipe_data) if importlib.util.find_spec(PACKAGES[n]) is None]
    if missing:
        raise IrisError(
            "\n".join(
                f"{where}: track.{n}: the {PACKAGES[n]} package is not installed; install it "
                f"(pip install 'iris-recipes[track]') or remove track.{n}"
                for n in missing
            )
        )


def mlflow_uri() -> str:
    from iris_recipes.paths import runs_dir

    return os.environ.get("MLFLOW_TRACKING_URI") or f"file:{runs_dir() / 'mlruns'}"


def wandb_mode() -> str:
    return "online" if os.environ.get("WANDB_MODE", "").lower() == "online" else "offline"


def experiment(recipe_data: dict) -> str:
    return ((recipe_data.get("track") or {}).get("mlflow") or {}).get("experiment") or recipe_data["name"]


def wandb_project(recipe_data: dict) -> str:
    return ((recipe_data.get("track") or {}).get("wandb") or {}).get("project") or recipe_data["name"]


def wandb_id(recipe_name: str, run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{recipe_name}-{run_id}")[:64]


def tags(recipe_data: dict, run_id: str) -> dict[str, str]:
    """What identifies the run: recipe, run id, base model, method, the card's tags and track.tags."""
    out = {
        "iris.recipe": recipe_data["name"],
        "iris.run_id": run_id,
        "iris.method": view(recipe_data).method,
        "iris.base_model": str(recipe_data.get("base_model")),
        "iris.dataset": str(
            (recipe_data.get("dataset") or {}).get("name") or (recipe_data.get("dataset") or {}).get("path")
        ),
    }
    card_tags = (recipe_data.get("card") or {}).get("tags") or []
    if card_tags:
        out["iris.tags"] = ", ".join(map(str, card_tags))
    out.update({str(k): str(v) for k, v in ((recipe_data.get("track") or {}).get("tags") or {}).items()})
    return out


def wandb_tags(recipe_data: dict) -> list[str]:
    """W&B tags are short labels: recipe, method, the card's tags and track.tags as key:value."""
    card_tags = (recipe_data.get("card") or {}).get("tags") or []
    out = [recipe_data["name"], view(recipe_data).method, *map(str, card_tags)]
    out += [f"{k}:{v}" for k, v in ((recipe_data.get("track") or {}).get("tags") or {}).items()]
    return [t.replace(",", " ")[:64] for t in dict.fromkeys(out)]


def _env(uri: str) -> None:
    if uri.startswith("file:"):
        # MLflow 3 keeps its file store only on request; it is the store that needs no server
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"


def _recipe_params(recipe_data: dict) -> dict[str, str]:
    """Scalar recipe keys (dotted) as MLflow params under `recipe.`; lists only when short."""
    out: dict[str, str] = {}

    def walk(value, prefix):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            if len(text) <= 250:
                out[f"recipe.{prefix[:-1]}"] = text

    walk({k: v for k, v in recipe_data.items() if k not in ("axolotl", "space", "card")}, "")
    return out


# -- before training ----------------------------------------------------------------------------------------------
def start(run: RunDir, recipe_data: dict) -> dict:
    """Create the tracked runs once (kept in run.json `tracking`); a resumed run finds them there."""
    names = trackers(recipe_data)
    if not names:
        return {}
    info = dict(run.read().get("tracking") or {})
    run_id = run.path.name
    if "mlflow" in names and "mlflow" not in info:
        from mlflow.tracking import MlflowClient

        uri = mlflow_uri()
        _env(uri)
        client = MlflowClient(uri)
        name = experiment(recipe_data)
        found = client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found else client.create_experiment(name)
        created = client.create_run(exp_id, run_name=run_id, tags=tags(recipe_data, run_id))
        params = _recipe_params(recipe_data)
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(created.info.run_id, params=items[i : i + 100])
        info["mlflow"] = {
            "tracking_uri": uri,
            "experiment": name,
            "experiment_id": exp_id,
            "run_id": created.info.run_id,
        }
    if "wandb" in names and "wandb" not in info:
        info["wandb"] = {
            "project": wandb_project(recipe_data),
            "id": wandb_id(recipe_data["name"], run_id),
            "entity": (recipe_data["track"]["wandb"] or {}).get("entity"),
            "dir": "wandb",
        }
    run.update(tracking=info)
    return info


def launch_env(run: RunDir, recipe_data: dict) -> dict[str, str]:
    """Environment for the training processes so their callbacks log into the tracked runs."""
    info = run.read().get("tracking") or {}
    env: dict[str, str] = {}
    if "mlflow" in info:
        m = info["mlflow"]
        env.update(
            MLFLOW_TRACKING_URI=m["tracking_uri"], MLFLOW_RUN_ID=m["run_id"], MLFLOW_EXPERIMENT_NAME=m["experiment"]
        )
        if m["tracking_uri"].startswith("file:"):
            env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if "wandb" in info:
        w = info["wandb"]
        (run.path / w["dir"]).mkdir(exist_ok=True)
        env.update(
            WANDB_MODE=wandb_mode(),
            WANDB_DIR=str(run.path),
            WANDB_RUN_ID=w["id"],
            WANDB_RESUME="allow",
            WANDB_TAGS=",".join(wandb_tags(recipe_data)),
        )
    return env


# -- after eval ---------------------------------------------------------------------------------------------------
def eval_metrics(result: dict) -> dict[str, float]:
    """eval.json as flat numeric metrics: eval/<side>/<measure>, eval/general/..., eval/gguf/<quant>/..."""
    out: dict[str, float] = {}

    def put(key, value):
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)):
            out[key] = float(value)

    for side in ("base", "tuned"):
        s = result.get(side) or {}
        for key in ("val_loss", "perplexity"):
            put(f"eval/{side}/{key}", s.get(key))
        for name, value in (s.get("metrics") or {}).items():
            put(f"eval/{side}/{name}", value)
    for name, value in (result.get("noise") or {}).items():
        put(f"eval/noise/{name}", value)
    general = result.get("forgetting") or {}
    for side in ("base", "tuned"):
        for key, value in (general.get(side) or {}).items():
            put(f"eval/general/{side}/{key}", value)
    if general:
        put("eval/general/kept", general.get("kept"))
    for quant, v in (result.get("gguf") or {}).items():
        for key in ("decode_tok_s", "ttft_s"):
            put(f"eval/gguf/{quant}/{key}", (v or {}).get(key))
    return out


def log_eval(run: RunDir, result: dict, files: list[Path]) -> list[str]:
    """Log eval metrics and artifacts into the run's tracked runs; returns the trackers logged to."""
    info = run.read().get("tracking") or {}
    metrics = eval_metrics(result)
    done = []
    if "mlflow" in info:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        m = info["mlflow"]
        _env(m["tracking_uri"])
        client = MlflowClient(m["tracking_uri"])
        import time

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            client.log_batch(m["run_id"], metrics=items[i : i + 500])
        for path in files:
            if path.is_file():
                client.log_artifact(m["run_id"], str(path))
        client.set_terminated(m["run_id"], "FINISHED")
        done.append("mlflow")
    if "wandb" in info:
        import wandb

        w = info["wandb"]
        tracked = wandb.init(
            project=w["project"],
            entity=w.get("entity"),
            id=w["id"],
            resume="allow",
            dir=str(run.path),
            mode=wandb_mode(),
            settings=wandb.Settings(silent=True),
        )
        try:
            tracked.log(metrics)
            tracked.summary.update(metrics)
            artifact = wandb.Artifact(f"{w['id']}-evidence", type="evaluation")
            for path in files:
                if path.is_file():
                    artifact.add_file(str(path))
            tracked.log_artifact(artifact)
        finally:
            tracked.finish()
        done.append("wandb")
    return done
