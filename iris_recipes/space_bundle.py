"""The Space shipped with a checkout (space/: app.py and its iris_space engine) and the deployable folder built
from it: the app, its engine, requirements.txt, a README naming the model repos, and variants.json."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.errors import IrisError
from iris_recipes.paths import project_root

# The files of a deployable Space, taken from the checkout's space/ folder: the app and its engine package.
SPACE_FILES = ("app.py", "requirements.txt", "README.md")
SPACE_PACKAGE = "iris_space"
BUNDLE_FILES = SPACE_FILES + (SPACE_PACKAGE + "/", "variants.json")


def space_dir() -> Path:
    path = project_root() / "space"
    missing = [f for f in SPACE_FILES if not (path / f).is_file()]
    if not (path / SPACE_PACKAGE / "__init__.py").is_file():
        missing.append(f"{SPACE_PACKAGE}/")
    if missing:
        raise IrisError(
            f"{path}: missing {', '.join(missing)}. Run iris-recipes from the project checkout "
            "(or set IRIS_HOME to it)."
        )
    return path


def load_app_module():
    """space/app.py as a module (it is a standalone script, not part of the package)."""
    path = space_dir() / "app.py"
    spec = importlib.util.spec_from_file_location("iris_space_app", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _readme(src: Path, repo_ids: list[str]) -> str:
    """The Space README with its front matter listing the model repos (the Hub links them to the Space)."""
    import yaml

    text = src.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front) or {}
    meta["models"] = sorted(set(repo_ids))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def check_target(out: Path) -> Path:
    """`out`, resolved, if a bundle may be written there (absent or an empty folder)."""
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise IrisError(f"{out}: exists and is not an empty folder; nothing was written. Choose a new OUT.")
    return out


def build_bundle(out: Path, variants: list) -> list:
    """Write the deployable Space serving the hosted ones of `variants` into `out` (absent or empty); returns them."""
    from iris_recipes.space_variants import hosted, manifest

    out = check_target(out)
    variants = hosted(variants)
    if not variants:
        raise IrisError(
            "no recipe sets publish.repo_id, so a hosted Space would have nothing to serve. Add "
            "`publish: {repo_id: USER/NAME}` to a recipe and push its GGUFs (iris-recipes push RUN)."
        )
    src = space_dir()
    with fsutil.atomic_dir(out) as tmp:  # OUT is complete or absent
        shutil.copyfile(src / "app.py", tmp / "app.py")
        (tmp / SPACE_PACKAGE).mkdir()
        for module in sorted((src / SPACE_PACKAGE).glob("*.py")):
            shutil.copyfile(module, tmp / SPACE_PACKAGE / module.name)
        shutil.copyfile(src / "requirements.txt", tmp / "requirements.txt")
        fsutil.write_text(tmp / "README.md", _readme(src / "README.md", [v.gguf["repo_id"] for v in variants]))
        fsutil.write_json(tmp / "variants.json", manifest(variants))
    return variants
