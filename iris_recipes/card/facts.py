"""Everything a model card states about a run, read from the run directory (and the dataset registry).

Each input is optional except the resolved recipe and its `card.license`: the card shows what exists and says how
to produce what does not (an evaluation, a GGUF export).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iris_recipes.errors import IrisError
from iris_recipes.recipe.view import RecipeView, view
from iris_recipes.rundir import RunDir
from iris_recipes.train import metrics as train_metrics


@dataclass
class DataSource:
    key: str  # recipe key: dataset or dataset.mix.N
    name: str
    hub: str | None
    license: str | None
    description: str | None = None
    homepage: str | None = None
    registered: bool = True  # a datasets/ entry (False: a file the recipe names by path)
    counts: dict[str, int] = field(default_factory=dict)  # read, bad, duplicates, ..., train, val (when prepared)


@dataclass
class CardFacts:
    run: RunDir
    recipe: dict  # fully resolved recipe
    recipe_yaml: str
    recipe_hash: str
    license: str
    base_model: str | None  # hub id for the front matter (None for a local model without one)
    base_model_spec: str  # what the recipe says
    sources: list[DataSource]
    data_report: dict | None
    metrics: list[dict]
    gguf: dict[str, dict]  # quant -> {file, bytes, sha256, top1_agreement, decode_tok_s}
    eval: dict | None
    meta: dict  # run.json
    repo_id: str | None

    @property
    def name(self) -> str:
        return self.recipe["name"]

    @functools.cached_property
    def settings(self) -> RecipeView:
        return view(self.recipe)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.recipe
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def gather(run: RunDir, repo_id: str | None = None) -> CardFacts:
    """Read a run's recipe, data report, metrics, GGUF artifacts and eval; IrisError if the card cannot be made."""
    recipe_file = run.file("recipe.yaml")
    if not recipe_file.is_file():
        raise IrisError(
            f"{recipe_file}: missing; the card is built from a run's resolved recipe. "
            "Is this a run directory (runs/<recipe>/<run-id>/)?"
        )
    # check_data=False: the card describes the data the run used, even if the registry has moved on since.
    recipe = run.recipe(check_data=False)
    data = recipe.data
    license_id = (data.get("card") or {}).get("license")
    if not license_id:
        raise IrisError(
            f"{recipe_file}: card.license is not set. The model card must state the base model's "
            "license: set card.license in the recipe (or its model base, e.g. recipes/base/*.yaml) "
            "to the base model's license id (llama3.2, mit, apache-2.0, ...) and run it again, or add it "
            "to this run's recipe.yaml and run `iris-recipes card RUN`."
        )
    meta = run.read()
    report = _read_json(run.file("data", "report.json"))
    return CardFacts(
        run=run,
        recipe=data,
        recipe_yaml=recipe.to_yaml(),
        recipe_hash=meta.get("recipe_hash") or recipe.hash(),
        license=str(license_id),
        base_model=hub_base_model(data["base_model"], recipe_file.parent, meta),
        base_model_spec=data["base_model"],
        sources=data_sources(data, report),
        data_report=report,
        metrics=read_metrics(run.file("metrics.jsonl")),
        gguf=dict((meta.get("artifacts") or {}).get("gguf") or {}),
        eval=_read_json(run.file("eval.json")),
        meta=meta,
        repo_id=repo_id or (data.get("publish") or {}).get("repo_id"),
    )


def hub_base_model(spec: str, base_dir: Path, meta: dict | None = None) -> str | None:
    """The hub id the weights come from (a builtin's upstream, a hub id itself, a local model's declared
    `base_model`): as `run` recorded it, else through the same resolver, without building or downloading."""
    from iris_recipes.models import resolve_base_model

    if meta and "base_model_hub_id" in meta:
        return meta["base_model_hub_id"]
    try:
        return resolve_base_model(spec, base_dir, fetch=False).hub_id
    except IrisError:  # a local model that has moved since: the card names what the recipe says
        return None


def data_sources(recipe: dict, report: dict | None) -> list[DataSource]:
    """The main dataset and the mix, with hub id and license (from the data report, else the registry)."""
    ds = recipe.get("dataset") or {}
    blocks = [("dataset", ds)] + [(f"dataset.mix.{i}", m) for i, m in enumerate(ds.get("mix") or [])]
    reported = {s.get("key"): s for s in (report or {}).get("sources") or []}
    out = []
    for key, block in blocks:
        entry = _entry(block.get("name")) if block.get("name") else None
        rep = reported.get(key, {})
        counts = {
            k: rep[k]
            for k in ("read", "bad", "duplicates", "too_short", "too_long", "train", "val")
            if isinstance(rep.get(k), int)
        }
        out.append(
            DataSource(
                key=key,
                name=block.get("name") or Path(block.get("path", "?")).name,
                hub=rep.get("hub") or (entry.hub if entry else None),
                license=rep.get("license") or (entry.license if entry else None),
                description=" ".join(entry.description.split()) if entry else None,
                homepage=entry.homepage if entry else None,
                registered=bool(block.get("name")),
                counts=counts,
            )
        )
    return out


def _entry(name: str):
    from iris_recipes.data import load_entry

    try:
        return load_entry(name)
    except IrisError:  # an entry removed since the run: the data report still names hub and license
        return None


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows that carry a step; a malformed line is an error naming it."""
    rows = train_metrics.read_metrics(path, strict=True)
    return [row for row in rows if isinstance(row.get("step"), (int, float))]


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IrisError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); re-run the stage that writes it."
        ) from None
    return data if isinstance(data, dict) else None
