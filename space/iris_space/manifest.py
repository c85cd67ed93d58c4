"""The variants manifest (`variants.json`, written by `iris-recipes space`) and the GGUF files it names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UserError(Exception):
    """A problem the user can fix; shown as a message, never a traceback. `param` names the request field at fault
    (the OpenAI-compatible API reports it)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class UnknownVariant(UserError):
    """No such variant, or one that is not built: there is no model to answer."""


class Busy(UserError):
    """Every model slot is taken by other requests; trying again later can succeed."""


class ModelError(UserError):
    """The variant's model could not be fetched, loaded or run: a problem of the server, not of the request."""


# The sampling settings every manifest entry carries: the recipe's `space:` values, schema defaults filled in by
# `iris-recipes space`. The Space has no defaults of its own.
SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens")


@dataclass
class Manifest:
    path: Path
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None  # why no variant could be read

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        path = Path(path).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, problem=f"No variants manifest at {path}. Write one with `iris-recipes space`.")
        except (OSError, ValueError) as exc:
            return cls(
                path,
                problem=f"{path}: not a readable variants manifest ({exc}). Write it again with `iris-recipes space`.",
            )
        variants = {}
        for i, v in enumerate(data.get("variants", []) if isinstance(data, dict) else []):
            if not (isinstance(v, dict) and isinstance(v.get("id"), str)):
                print(f"{path}: variants[{i}] has no id; skipped")
                continue
            missing = [k for k in SAMPLING_KEYS if not _is_number(v.get(k))]
            if missing:
                print(
                    f"{path}: variants[{i}] ({v['id']}) has no {', '.join(missing)}; skipped. Write the manifest "
                    "again with `iris-recipes space`."
                )
                continue
            variants[v["id"]] = v
        return cls(
            path,
            variants,
            None if variants else f"{path} lists no variants. Build one with `iris-recipes run recipes/NAME.yaml`.",
        )

    def get(self, variant_id: Any) -> dict[str, Any]:
        if not isinstance(variant_id, str) or variant_id not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise UnknownVariant(f"Unknown variant {str(variant_id)[:80]!r}. Variants in this Space: {known}.")
        return self.variants[variant_id]

    def has_base(self, variant_id: Any) -> bool:
        """Whether the variant's base model can answer beside it ("compare with base model")."""
        gguf = (self.variants.get(variant_id) or {}).get("base_gguf") or {}
        return bool(gguf.get("path") or gguf.get("repo_id"))

    def default_id(self) -> str | None:
        """A local variant first (no download), then a published one."""
        for status in ("built", "published"):
            for k, v in self.variants.items():
                if v.get("status") == status:
                    return k
        return next(iter(self.variants), None)

    def base_of(self, variant: dict[str, Any]) -> dict[str, Any]:
        """The variant's base model as a loadable pseudo-variant (its F16 GGUF from eval), or UserError."""
        gguf = variant.get("base_gguf") or {}
        name = variant.get("label") or variant["id"]
        if not (gguf.get("path") or gguf.get("repo_id")):
            raise UserError(
                f"{name}: no GGUF of its base model {variant.get('base_model') or ''} is known, so "
                "there is nothing to compare with. Evaluate the run (`iris-recipes eval RUN`, which "
                "builds it), then restart `iris-recipes space`."
            )
        where = gguf.get("path") or f"{gguf['repo_id']}/{gguf.get('filename')}"
        return {
            "id": f"base:{where}",
            "label": f"{variant.get('base_model') or 'base model'} (base)",
            "status": "built" if gguf.get("path") else "published",
            "gguf": gguf,
            "chat": variant.get("chat") or {},
            "build_command": "iris-recipes eval RUN",
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def gguf_file(manifest: Manifest, variant: dict[str, Any], progress=None) -> Path:
    """The variant's GGUF on disk: its local file, or the published file downloaded (once) from the Hub."""
    name = variant.get("label") or variant["id"]
    if variant.get("status") == "not_built":
        raise UnknownVariant(
            f"{name} is not built yet. Build it with: {variant.get('build_command', 'iris-recipes run')}"
        )
    gguf = variant.get("gguf") or {}
    if gguf.get("path"):
        path = manifest.path.parent / gguf["path"]  # an absolute path stays as it is
        if path.is_file():
            return path
        if not gguf.get("repo_id"):
            raise ModelError(
                f"{name}: its GGUF file {path} is missing. Build it again with: "
                f"{variant.get('build_command', 'iris-recipes run')}"
            )
    if not gguf.get("repo_id") or not gguf.get("filename"):
        raise ModelError(
            f"{name}: the manifest gives neither a local GGUF nor a Hub repo. Write it again with `iris-recipes space`."
        )
    from huggingface_hub import hf_hub_download

    if progress:
        progress(0, desc=f"Downloading {gguf['filename']} from {gguf['repo_id']}")
    try:
        return Path(hf_hub_download(gguf["repo_id"], gguf["filename"]))
    except Exception as exc:  # network, auth, missing file, offline without a cached copy: all end the same way
        raise ModelError(
            f"{name}: could not download {gguf['filename']} from https://huggingface.co/"
            f"{gguf['repo_id']} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Try again later, or choose another variant."
        ) from exc


def check_gguf(path: Path, variant: dict[str, Any]) -> None:
    """Cheap checks that turn a corrupt or truncated file into a clear message before llama.cpp sees it."""
    name = variant.get("label") or variant["id"]
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelError(
            f"{name}: {path.name} is not a GGUF file (it starts with {magic!r}). Export it again with "
            "`iris-recipes export RUN`."
        )
    expected = (variant.get("gguf") or {}).get("bytes")
    if isinstance(expected, int) and expected != size:
        raise ModelError(
            f"{name}: {path.name} has {size:,} bytes, the export wrote {expected:,}: the file is "
            "damaged or incomplete. Export it again with `iris-recipes export RUN`."
        )
