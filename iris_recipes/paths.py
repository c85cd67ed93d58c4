"""Where things live: the project checkout (recipes/, datasets/), runs and the cache."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The directory holding `recipes/` and `datasets/`.

    `IRIS_HOME` wins; otherwise the nearest ancestor of the working directory that has `recipes/`;
    otherwise the checkout this package was installed from (an editable install).
    """
    env = os.environ.get("IRIS_HOME")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "recipes").is_dir() and (d / "datasets").is_dir():
            return d
    return _PACKAGE_DIR.parent


def recipes_dir() -> Path:
    return project_root() / "recipes"


def datasets_dir() -> Path:
    return project_root() / "datasets"


def runs_dir() -> Path:
    env = os.environ.get("IRIS_RUNS_DIR")
    return Path(env).resolve() if env else project_root() / "runs"


def cache_dir() -> Path:
    """Built base models, llama.cpp's converter and other things made once per machine."""
    env = os.environ.get("IRIS_CACHE_DIR")
    if env:
        return Path(env).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "iris-recipes"


def schema_path() -> Path:
    return _PACKAGE_DIR / "schema" / "recipe.schema.json"
