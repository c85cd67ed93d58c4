"""The base model's half of an evaluation, kept between runs.

The base never changes between the runs of a recipe: with the same base files, held-out conversations, prompt
token ids, token limits, seeds, sampling, context size, threads and llama.cpp version its validation loss and
answers are the same (greedy, or sampled from fixed seeds). So they are computed once and read back by the next
run, a sweep's other variants or `iris-recipes eval` again. Anything in the key that differs (another base, data
split, eval setting, library version) is a different entry. Entries live in the cache directory
(`IRIS_CACHE_DIR`, default ~/.cache/iris-recipes) under `eval-base-answers/`; deleting them is always safe.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.paths import cache_dir

FORMAT = 1


# the code that computes the entries: the loss (torch, transformers; Axolotl tokenizes and labels its rows), the
# answers (llama.cpp), this package
ENGINES = ("llama_cpp_python", "torch", "transformers", "axolotl", "iris-recipes")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def key(**parts) -> str:
    """Content key of one base evaluation: every input that can change its loss or answers."""
    engines = {name: _version(name) for name in ENGINES}
    blob = json.dumps({"format": FORMAT, "engines": engines, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _path(k: str) -> Path:
    return cache_dir() / "eval-base-answers" / f"{k}.json"


def load(k: str) -> tuple[dict, list] | None:
    """(validation loss, replies) stored under `k`, or None (missing or unreadable: computed again)."""
    from iris_recipes.evaluate.forgetting import Reply

    try:
        entry = json.loads(_path(k).read_text(encoding="utf-8"))
        replies = [Reply(r["text"], list(r["tokens"]), bool(r["stopped"])) for r in entry["replies"]]
        return dict(entry["loss"]), replies
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(k: str, loss: dict, replies: list) -> str | None:
    """Keep an entry; a cache that cannot be written (read-only, full disk) costs the next run time, never this
    evaluation: returns why it was not kept, or None."""
    entry = {
        "loss": loss,
        "replies": [{"text": r.text, "tokens": list(r.tokens), "stopped": r.stopped} for r in replies],
    }
    path = _path(k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_text(path, json.dumps(entry))  # atomic: a reader never sees half an entry
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None
