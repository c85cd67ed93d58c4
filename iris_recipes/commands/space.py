"""`iris-recipes space`: serve the Gradio Space locally, or write a deployable Space folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from iris_recipes.cli import add_command
from iris_recipes.errors import IrisError

# The files of a deployable Space, taken from the checkout's space/ folder: the app and its engine package.
SPACE_FILES = ("app.py", "requirements.txt", "README.md")
SPACE_PACKAGE = "iris_space"


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "space",
        help="serve the chat Space locally, or write a deployable Space folder (build OUT)",
        example="iris-recipes space --port 7860\n  iris-recipes space build dist/space",
    )
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--manifest", metavar="FILE", help="where to write the variants manifest (default: RUNS_DIR/variants.json)"
    )
    p.set_defaults(func=run_serve)
    ssub = p.add_subparsers(dest="space_command", metavar="build")
    b = ssub.add_parser(
        "build",
        help="write a Hugging Face Space folder serving the published variants",
        description="Write app.py, its iris_space/ engine, requirements.txt, README.md and variants.json (the variants "
        "whose recipes set publish.repo_id) into OUT, which must not exist or be empty.",
    )
    b.add_argument("out", metavar="OUT", help="the folder to write")
    b.set_defaults(func=run_build)


def space_dir() -> Path:
    from iris_recipes.paths import project_root

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


def _variants():
    from iris_recipes.registry import load_variants

    variants, problems = load_variants()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return variants


def run_serve(args) -> int:
    from iris_recipes.paths import runs_dir
    from iris_recipes.registry import write_manifest

    variants = _variants()
    manifest = write_manifest(Path(args.manifest) if args.manifest else runs_dir() / "variants.json", variants)
    print(f"variants manifest: {manifest}")
    for v in variants:
        where = v.gguf.get("path") or v.gguf.get("repo_id") or v.build_command
        print(f"  {v.id:24} {v.status:10} {where}")
    app = load_app_module()
    try:
        app.main(["--manifest", str(manifest), "--host", args.host, "--port", str(args.port)])
    except OSError as exc:  # gradio: port taken or address not available
        raise IrisError(f"cannot serve on {args.host}:{args.port}: {exc}. Choose another with --port.") from None
    return 0


def _readme(src: Path, repo_ids: list[str]) -> str:
    """The Space README with its front matter listing the model repos (the Hub links them to the Space)."""
    import yaml

    text = src.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front) or {}
    meta["models"] = sorted(set(repo_ids))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def run_build(args) -> int:
    from iris_recipes import fsutil
    from iris_recipes.registry import hosted, manifest

    out = Path(args.out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise IrisError(f"{out}: exists and is not an empty folder; nothing was written. Choose a new OUT.")
    variants = hosted(_variants())
    if not variants:
        raise IrisError(
            "no recipe sets publish.repo_id, so a hosted Space would have nothing to serve. Add "
            "`publish: {repo_id: USER/NAME}` to a recipe and push its GGUFs (iris-recipes push RUN)."
        )
    src = space_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built in a temporary folder beside OUT and renamed into place: OUT is complete or absent.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copyfile(src / "app.py", tmp / "app.py")
        (tmp / SPACE_PACKAGE).mkdir()
        for module in sorted((src / SPACE_PACKAGE).glob("*.py")):
            shutil.copyfile(module, tmp / SPACE_PACKAGE / module.name)
        shutil.copyfile(src / "requirements.txt", tmp / "requirements.txt")
        fsutil.write_text(tmp / "README.md", _readme(src / "README.md", [v.gguf["repo_id"] for v in variants]))
        fsutil.write_json(tmp / "variants.json", manifest(variants))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}: {', '.join(SPACE_FILES + (SPACE_PACKAGE + '/', 'variants.json'))}")
    for v in variants:
        print(f"  {v.id:24} {v.gguf['repo_id']}/{v.gguf['filename']}")
    print(f"deploy: hf upload USER/SPACE {out} . --repo-type space")
    return 0
