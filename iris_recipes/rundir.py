"""A run directory and its `run.json`: the one record of what a run did.

Layout of `runs/<recipe>/<run-id>/`:
  recipe.yaml       the fully resolved recipe (what `iris-recipes show` prints)
  run.json          this module's record (below)
  data/             train.jsonl, val.jsonl, report.json
  axolotl.yaml      the generated Axolotl config
  checkpoints/      trainer checkpoints (resume points)
  adapter/          the LoRA adapter
  merged/           the merged HF model
  metrics.jsonl     one JSON object per logged step ({"step", "loss", "eval_loss", ...})
  gguf/             <recipe>-f16.gguf, <recipe>-<quant>.gguf (gguf_filename)
  eval.json, README.md, loss.png

run.json:
  {"recipe": NAME, "run_id": ID, "recipe_hash": SHA256, "created": ISO, "git_commit": STR|null,
   "versions": {package: version}, "status": "running"|"failed"|"done",
   "stages": {STAGE: {"status": "running"|"done"|"failed"|"stale", "started": ISO, "finished": ISO,
                      "seconds": float, "error": STR?, "stale_because": STAGE?, "stale_since": ISO?,
                      ...stage-specific fields}},
   "artifacts": {...}}   # stage outputs other stages read, e.g. artifacts["gguf"][quant] = {file, bytes, sha256, ...}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import platform
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iris_recipes import fsutil
from iris_recipes.errors import IrisError
from iris_recipes.paths import project_root, runs_dir

STALE = "stale"  # a stage done before a stage it reads was run again (stages.py marks it)
STALE_FIELDS = ("stale_because", "stale_since")


def gguf_filename(recipe: str, quant: str) -> str:
    """The name of a variant's GGUF, `<recipe>-<quant>.gguf`: in gguf/ (export), on the Hub (push), in the
    manifest the Space downloads by, and in the card's usage snippet."""
    return f"{recipe}-{quant}.gguf"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

    # -- files -------------------------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def exists(self) -> bool:
        return self.meta_path.is_file()

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run; a clear error if `path` is not one."""
        run = cls(path)
        if not run.exists():
            raise IrisError(f"{run.path}: not a run directory (no run.json). Runs live in runs/<recipe>/<run-id>/.")
        return run

    def recipe(self, *, check_data: bool = True, allow_unsafe_axolotl_keys: bool | None = None):
        """The resolved recipe this run was made from. Unsafe axolotl: keys are accepted when the run was started
        with --allow-unsafe-axolotl-keys (recorded in run.json), unless `allow_unsafe_axolotl_keys` says otherwise."""
        from iris_recipes.recipe import load_recipe

        if allow_unsafe_axolotl_keys is None:
            allow_unsafe_axolotl_keys = bool(self.read().get("allow_unsafe_axolotl_keys"))
        return load_recipe(
            self.file("recipe.yaml"), check_data=check_data, allow_unsafe_axolotl_keys=allow_unsafe_axolotl_keys
        )

    # -- run.json ----------------------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        damaged = "the run directory is damaged; start a new run or restore the file"
        try:
            meta = json.loads(self.meta_path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            byte = f"0x{exc.object[exc.start]:02x} at offset {exc.start}"
            raise IrisError(f"{self.meta_path}: run.json is not UTF-8 text (byte {byte}); {damaged}") from None
        except json.JSONDecodeError as exc:
            raise IrisError(
                f"{self.meta_path}:{exc.lineno}:{exc.colno}: run.json is not valid JSON ({exc.msg}); {damaged}"
            ) from None
        except ValueError:  # Python refuses integers of more than 4300 digits
            raise IrisError(f"{self.meta_path}: run.json holds a number of thousands of digits; {damaged}") from None
        problem = record_problem(meta)
        if problem:
            raise IrisError(f"{self.meta_path}: {problem}; {damaged}")
        return meta

    def write(self, meta: dict[str, Any]) -> None:
        fsutil.write_json(self.meta_path, meta)

    def update(self, **fields: Any) -> dict[str, Any]:
        meta = self.read()
        meta.update(fields)
        self.write(meta)
        return meta

    def stage_info(self, stage: str) -> dict[str, Any]:
        return self.read().get("stages", {}).get(stage, {})

    def stage_done(self, stage: str) -> bool:
        return self.stage_info(stage).get("status") == "done"

    def set_stage(self, stage: str, **fields: Any) -> None:
        meta = self.read()
        meta.setdefault("stages", {}).setdefault(stage, {}).update(fields)
        self.write(meta)

    def set_artifact(self, key: str, value: Any) -> None:
        meta = self.read()
        meta.setdefault("artifacts", {})[key] = value
        self.write(meta)

    def artifact(self, key: str, default: Any = None) -> Any:
        return self.read().get("artifacts", {}).get(key, default)

    @contextlib.contextmanager
    def stage(self, stage: str) -> Iterator[dict[str, Any]]:
        """Record a stage's status and timing; fields put in the yielded dict are saved with it."""
        extra: dict[str, Any] = {}
        started = time.monotonic()
        meta = self.read()
        info = meta.setdefault("stages", {}).setdefault(stage, {})
        for key in STALE_FIELDS:  # run again: no longer stale, whatever the outcome
            info.pop(key, None)
        info.update(status="running", started=now_iso(), error=None)
        self.write(meta)
        try:
            yield extra
        except BaseException as exc:
            reason = (
                "interrupted"
                if isinstance(exc, KeyboardInterrupt)
                else str(exc).splitlines()[0][:500]
                if str(exc)
                else type(exc).__name__
            )
            self.set_stage(
                stage,
                status="failed",
                finished=now_iso(),
                seconds=round(time.monotonic() - started, 3),
                error=reason,
                **extra,
            )
            self.update(status="failed")
            raise
        self.set_stage(stage, status="done", finished=now_iso(), seconds=round(time.monotonic() - started, 3), **extra)


# -- the shape of run.json ----------------------------------------------------------------------------------------
# Every reader trusts these types (stages and artifacts are updated in place), so a record is checked once, here.
RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "stages": dict,
    "artifacts": dict,
    "versions": dict,
    "launch": dict,
    "launch_options": dict,
    "tracking": dict,
    "overrides": list,
    "resumed": list,
    "recipe": (str, type(None)),
    "run_id": (str, type(None)),
    "recipe_hash": (str, type(None)),
    "base_model_path": (str, type(None)),
    "base_model_hub_id": (str, type(None)),
}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string"}


def record_problem(meta: Any) -> str | None:
    """What is wrong with the shape of a parsed run.json, or None."""
    if not isinstance(meta, dict):
        return f"run.json holds {_json_name(meta)}, not an object of run facts"
    for key, kind in RECORD_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            wanted = _JSON_NAMES[kind[0] if isinstance(kind, tuple) else kind]
            return f"run.json key {key!r} is {_json_name(meta[key])}, not {wanted}"
    nested = [("stages", meta.get("stages") or {}), ("artifacts.gguf", (meta.get("artifacts") or {}).get("gguf"))]
    for where, section in nested:
        if section is not None and not isinstance(section, dict):
            return f"run.json key {where!r} is {_json_name(section)}, not an object"
        for name, value in (section or {}).items():
            if not isinstance(value, dict):
                return f"run.json key '{where}.{name}' is {_json_name(value)}, not an object"
    return None


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return _JSON_NAMES.get(type(value), type(value).__name__)


# -- facts recorded in run.json ----------------------------------------------------------------------------------
VERSIONED = (
    "iris-recipes",
    "axolotl",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "deepspeed",
    "tokenizers",
    "safetensors",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def first_record(
    recipe,
    path: Path,
    *,
    overrides,
    launch: dict,
    base_model,
    launch_options: dict,
    allow_unsafe_axolotl_keys: bool,
) -> dict[str, Any]:
    """run.json of a new run: where it comes from (recipe, overrides, commit, versions) and how it is launched."""
    return {
        "recipe": recipe.name,
        "run_id": path.name,
        "recipe_hash": recipe.hash(),
        "recipe_path": str(recipe.path),
        "overrides": list(overrides),
        "created": now_iso(),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "status": "running",
        "launch": launch,
        "base_model_path": str(base_model.path) if base_model.path else None,
        "base_model_hub_id": base_model.hub_id,
        "launch_options": launch_options,
        "stages": {},
        "artifacts": {},
        **({"allow_unsafe_axolotl_keys": True} if allow_unsafe_axolotl_keys else {}),
    }


def portable_recipe(recipe) -> dict:
    """The resolved recipe with its local paths (dataset files, a base model directory) made absolute, so the
    copy in the run directory loads from there."""
    data = json.loads(json.dumps(recipe.data))
    base_dir = Path(recipe.path).resolve().parent
    blocks = [data["dataset"], *(data["dataset"].get("mix") or [])]
    for block in blocks:
        if block.get("path") and not Path(block["path"]).expanduser().is_absolute():
            block["path"] = str((base_dir / block["path"]).resolve())
    bm = data.get("base_model", "")
    if not bm.startswith("builtin:") and not Path(bm).is_absolute() and (base_dir / bm).is_dir():
        data["base_model"] = str((base_dir / bm).resolve())
    return data


# -- where a new run goes ----------------------------------------------------------------------------------------
def _describe_run(path: Path) -> str:
    try:
        meta = RunDir(path).read()
    except (OSError, IrisError):
        return "another run"
    return f"run {meta.get('run_id')} of recipe {meta.get('recipe')} (status {meta.get('status')})"


def check_output_dir(output: str | Path) -> Path:
    """`--output DIR` must be new or empty: never another run's directory."""
    path = Path(output).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise IrisError(f"--output {output}: exists and is not a directory; choose a new directory.")
    if (path / "run.json").is_file():
        raise IrisError(
            f"--output {output}: holds {_describe_run(path)}; a run never overwrites another run. "
            f"Choose a new directory, or continue that run with `iris-recipes run --resume {path}`."
        )
    if path.is_dir() and any(path.iterdir()):
        raise IrisError(
            f"--output {output}: is not empty; choose a new or empty directory so no file in it is overwritten."
        )
    return path


def new_run_path(name: str) -> Path:
    root = runs_dir() / name
    base = new_run_id()
    for i in range(1, 1000):
        candidate = root / (base if i == 1 else f"{base}-{i}")
        if not candidate.exists():
            return candidate
    raise IrisError(f"{root}: could not find a free run id; clean up old runs.")


def claim(path: Path, *, must_be_new: bool) -> None:
    """Create the run directory `path` (a new one must not exist yet: two runs never share one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=not must_be_new)
    except FileExistsError:
        raise IrisError(f"{path}: appeared while this run was starting (another run?); run again.") from None
    except OSError as exc:  # a file system that refuses (read-only, /proc, no space): bad input, not a crash
        raise IrisError(
            f"{path}: cannot create the run directory ({exc.strerror or exc}); give --output a folder you can "
            "write to, or set IRIS_RUNS_DIR."
        ) from None


def find_runs(recipe_name: str, runs_root: Path | None = None) -> list[RunDir]:
    """Runs of a recipe, oldest first."""
    from iris_recipes.paths import runs_dir

    root = (runs_root or runs_dir()) / recipe_name
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if (p / "run.json").is_file()]


def latest_done_run(recipe_name: str, runs_root: Path | None = None) -> RunDir | None:
    """The newest run of a recipe whose every recorded stage finished."""
    for run in reversed(find_runs(recipe_name, runs_root)):
        if run.read().get("status") == "done":
            return run
    return None
