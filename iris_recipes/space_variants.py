"""The variants the Space serves, derived from the recipes and their finished runs.

A variant is one recipe (`recipes/<name>.yaml`). Its status:
  built      a finished run holds a local GGUF of it (the Space loads that file)
  published  the recipe names `publish.repo_id`; a hosted Space downloads `<name>-<quant>.gguf` from that repo
  not_built  neither; `build_command` says how to build it
A finished run with a stale stage the Space reads (stages.READERS: its export or eval made before a stage they
read ran again) is refused: the variant is not served from it, and `build_command` is what to rerun.

The manifest (`variants.json`) is the only thing `space/app.py` reads, so the app runs where iris_recipes is not
installed (a Hugging Face Space). Its format:
  {"format": 1, "generated": ISO,
   "variants": [{"id", "label", "description", "status", "build_command", "base_model", "system_prompt",
                 "modes": {name: instruction}, "examples": [str], "temperature", "top_p", "max_new_tokens",
                 "quant", "gguf": {"path"?: str, "repo_id"?: str, "filename": str, "bytes"?: int, "sha256"?: str},
                 "chat": {"family": str, "stop": [str], "markers": [str], "system": bool},
                 "base_gguf": {"path"?: str, "repo_id"?: str, "filename"?: str, "bytes"?: int},
                 "run"?: str}]}
`gguf.path` is absolute, or relative to the manifest's folder. `base_gguf` is the base model's F16 GGUF that `eval`
built (the Space's "compare with base model"): a local file for a built variant, and for a hosted Space the copy
`push` uploads beside the variant's GGUFs; empty when the run was not evaluated.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iris_recipes import chat_families, fsutil
from iris_recipes.errors import IrisError
from iris_recipes.recipe.schema import apply_defaults
from iris_recipes.rundir import gguf_filename

MANIFEST_FORMAT = 1

# The name `push` gives the base model's F16 GGUF in the variant's repo.
BASE_GGUF_FILE = "base-f16.gguf"

# When a run lacks the preferred quantization, the next one of these that it has is served (smallest first).
QUANT_FALLBACK = ("q4_k_m", "q4_k_s", "q4_0", "q4_1", "q5_k_m", "q5_k_s", "q5_0", "q5_1", "q6_k", "q8_0", "f16")


@dataclass
class Variant:
    id: str
    label: str
    description: str
    status: str  # built | published | not_built
    build_command: str
    base_model: str
    system_prompt: str
    modes: dict[str, str]
    examples: list[str]
    temperature: float
    top_p: float
    max_new_tokens: int
    quant: str
    gguf: dict[str, Any] = field(default_factory=dict)
    base_gguf: dict[str, Any] = field(default_factory=dict)
    chat: dict[str, Any] = field(default_factory=dict)  # the chat family's tokens (chat_entry)
    quant_reason: str | None = None  # space.quant auto: why this file
    run: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("run", "quant_reason"):
            if data[key] is None:
                del data[key]
        return data


def chat_entry(chat_template: str, run=None) -> dict[str, Any]:
    """What the Space needs of a variant's chat family: the tokens that end a reply, every template marker (removed
    from what enters a prompt, and a reply ends where the model spells one out), whether a system turn exists and,
    where none does, what joins the system prompt to the first user message. `tokenizer_default` has no family: the
    end of turn the export's checks found in the run's tokenizer stands in."""
    family = chat_families.get(chat_template)
    if family is not None:
        return {
            "family": family.name,
            "stop": list(family.stop),
            "markers": list(family.markers),
            "system": family.system,
            **({} if family.system else {"system_join": family.system_join}),
        }
    checks = ((run.read().get("stages") or {}).get("export") or {}).get("checks") or {} if run else {}
    eot = ((checks.get("f16") or {}).get("tokens") or {}).get("end_of_turn")
    return {"family": chat_template, "stop": [eot] if eot else [], "markers": [eot] if eot else [], "system": True}


def _recipe_arg(recipe_path: Path) -> str:
    """`recipes/<name>.yaml` relative to the working directory when possible: the command a user can paste."""
    try:
        rel = os.path.relpath(recipe_path)
    except ValueError:  # another drive (Windows)
        return str(recipe_path)
    return str(recipe_path) if rel.startswith("..") else rel


def _local_gguf(run, preferred: str) -> tuple[str, dict[str, Any]] | None:
    """(quant, artifact) of the run's GGUF to serve: the preferred quant, else the first fallback whose file exists."""
    ggufs = run.artifact("gguf") or {}
    for quant in (preferred, *QUANT_FALLBACK):
        art = ggufs.get(quant)
        if isinstance(art, dict) and art.get("file") and run.file(art["file"]).is_file():
            return quant, art
    return None


def choose_quant(ev: dict, metric: str | None, tolerance: float | None) -> tuple[str | None, str]:
    """`space.quant: auto`: the smallest exported file whose task metric is within `tolerance` (None: the metric's
    seed noise) of the F16 file's and whose forgetting check is kept, from eval.json's `quants`. (quant or None when
    the run was not judged per file, and why.)"""
    quants = ev.get("quants") if isinstance(ev, dict) else None
    f16 = (quants or {}).get("f16")
    if not isinstance(f16, dict):
        return None, "eval did not judge each exported file (evaluate the run again)"
    scores = {q: (e.get("metrics") or {}).get(metric) for q, e in quants.items() if isinstance(e, dict)}
    if metric is None or not isinstance(scores.get("f16"), (int, float)):
        return None, f"eval recorded no {metric or 'task metric'} for the F16 file"
    if tolerance is None:
        tolerance = float((ev.get("noise") or {}).get(metric) or 0.0)
    floor = scores["f16"] - tolerance
    kept = [
        q
        for q, e in quants.items()
        if isinstance(scores.get(q), (int, float))
        and scores[q] >= floor - 1e-9
        and e.get("forgetting_kept") is not False
        and isinstance(e.get("bytes"), int)
    ]
    best = min(kept, key=lambda q: quants[q]["bytes"]) if kept else "f16"
    refused = sorted(set(quants) - set(kept))
    why = f"the smallest file with {metric} >= {floor:.4g} (F16 {scores['f16']:.4g} - {tolerance:.4g}) and general behaviour kept"
    return best, why + (f"; not {', '.join(refused)}" if refused else "")


def _eval_json(run) -> dict:
    import json

    try:
        ev = json.loads(run.file("eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return ev if isinstance(ev, dict) else {}


def base_gguf_of(run) -> Path | None:
    """The base model's F16 GGUF that the run's eval built and cached, if it is still there."""
    import json

    try:
        path = json.loads(run.file("eval.json").read_text(encoding="utf-8")).get("base_gguf")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(path) if isinstance(path, str) and Path(path).is_file() else None


def _hub_id(spec: str, recipe_path: Path) -> str:
    """What the Space shows as the base model: its hub id where one is known, else the recipe's value."""
    from iris_recipes.models import resolve_base_model

    try:
        return resolve_base_model(spec, recipe_path.parent, fetch=False).hub_id or spec
    except IrisError:
        return spec


def variant_from_recipe(
    name: str,
    data: dict[str, Any],
    recipe_path: Path,
    runs_root: Path | None = None,
    problems: list[str] | None = None,
) -> Variant:
    """The variant of one resolved recipe (`Recipe.data`), with the status its runs give it; why its newest finished
    run is refused (a stale stage) goes into `problems`."""
    from iris_recipes.rundir import latest_done_run
    from iris_recipes.stages import rerun_command, stale, stale_problem

    space = apply_defaults(data)["space"]  # the schema's defaults, so a manifest is always complete
    description = space.get("description") or data.get("description") or ""
    repo_id = (data.get("publish") or {}).get("repo_id")
    quant = space["quant"]
    variant = Variant(
        id=name,
        label=space.get("label") or name,
        description=description,
        status="not_built",
        build_command=f"iris-recipes run {_recipe_arg(recipe_path)}",
        base_model=_hub_id(str(data.get("base_model", "")), recipe_path),
        system_prompt=space.get("system_prompt") or "",
        modes=dict(space.get("modes") or {}),
        examples=list(space["examples"]),
        temperature=float(space["temperature"]),
        top_p=float(space["top_p"]),
        max_new_tokens=int(space["max_new_tokens"]),
        quant=quant,
    )
    run = latest_done_run(name, runs_root)
    variant.chat = chat_entry(str(data.get("chat_template", chat_families.TOKENIZER_DEFAULT)), run)
    refused = stale_problem(run, "space") if run else None
    if refused:
        if problems is not None:
            problems.append(f"{name}: not served from its newest run: {refused}")
        variant.build_command = rerun_command(run, stale(run))
        run = None
    if quant == "auto":
        metrics = (apply_defaults(data).get("eval") or {}).get("metrics") or [None]
        chosen, variant.quant_reason = choose_quant(
            _eval_json(run) if run else {}, metrics[0], space["quant_tolerance"]
        )
        quant = variant.quant = chosen or QUANT_FALLBACK[0]
    local = _local_gguf(run, quant) if run else None
    if local:
        variant.quant, art = local
        variant.status = "built"
        variant.run = str(run.path)
        variant.gguf = {"path": str(run.file(art["file"])), "filename": Path(art["file"]).name}
        for key in ("bytes", "sha256"):
            if key in art:
                variant.gguf[key] = art[key]
        base = base_gguf_of(run)
        if base is not None:
            variant.base_gguf = {"path": str(base), "filename": BASE_GGUF_FILE, "bytes": base.stat().st_size}
    if repo_id:
        variant.gguf.update(repo_id=repo_id, filename=gguf_filename(name, variant.quant))
        if not local:
            variant.status = "published"
    return variant


def load_variants(recipes_root: Path | None = None, runs_root: Path | None = None) -> tuple[list[Variant], list[str]]:
    """Every recipe in `recipes/*.yaml` as a variant (sorted by id), and the problems of recipes that failed to load.

    A broken recipe does not hide the others: its problem is returned for the caller to show.
    """
    from iris_recipes.paths import recipes_dir
    from iris_recipes.recipe import load_recipe

    root = recipes_root or recipes_dir()
    if not root.is_dir():
        raise IrisError(f"{root}: no recipes folder. Run iris-recipes from the project checkout or set IRIS_HOME.")
    variants, problems = [], []
    for path in sorted(root.glob("*.yaml")):
        try:
            # the Space needs neither the dataset nor the axolotl: block (which only training reads)
            recipe = load_recipe(path, check_data=False, allow_unsafe_axolotl_keys=True)
        except IrisError as exc:
            problems.append(f"{path}: skipped: {str(exc).splitlines()[0]}")
            continue
        variants.append(variant_from_recipe(recipe.name, recipe.data, Path(recipe.path), runs_root, problems))
    return sorted(variants, key=lambda v: v.id), problems


def manifest(variants: list[Variant]) -> dict[str, Any]:
    from iris_recipes.rundir import now_iso

    return {"format": MANIFEST_FORMAT, "generated": now_iso(), "variants": [v.to_json() for v in variants]}


def hosted(variants: list[Variant]) -> list[Variant]:
    """The variants a hosted Space can serve: the published ones, pointing at the Hub only (no local path)."""
    out = []
    for v in variants:
        if not v.gguf.get("repo_id"):
            continue
        gguf = {k: v.gguf[k] for k in ("repo_id", "filename", "bytes", "sha256") if k in v.gguf}
        # a built variant's base GGUF goes up with `push`, so the hosted Space finds it in the same repo
        base = (
            {
                "repo_id": v.gguf["repo_id"],
                "filename": BASE_GGUF_FILE,
                **({"bytes": v.base_gguf["bytes"]} if "bytes" in v.base_gguf else {}),
            }
            if v.base_gguf
            else {}
        )
        out.append(Variant(**{**asdict(v), "status": "published", "gguf": gguf, "base_gguf": base, "run": None}))
    return out


def write_manifest(path: str | os.PathLike, variants: list[Variant] | None = None) -> Path:
    """Write the manifest of `variants` (default: every recipe's variant) atomically; returns its path."""
    if variants is None:
        variants, _ = load_variants()
    return fsutil.write_json(path, manifest(variants))
