"""`iris-recipes space`: serve the Gradio Space (and its OpenAI-compatible API) locally, or write a deployable Space
folder."""

from __future__ import annotations

import ipaddress
import os
import sys
from contextlib import nullcontext

from iris_recipes.commands.common import add_command, writing_to
from iris_recipes.errors import IrisError


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "space",
        help="serve the chat Space and its OpenAI-compatible API (/v1) locally, or write a deployable Space folder "
        "(build OUT)",
        example="iris-recipes space --port 7860\n  iris-recipes space build dist/space",
    )
    add_serve_arguments(p)
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


def _variants():
    from iris_recipes.space_variants import load_variants

    variants, problems = load_variants()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return variants


# Where the Space reads the API key from when --api-key is not given.
API_KEY_ENV = "IRIS_SPACE_API_KEY"


def add_serve_arguments(p) -> None:
    """The arguments of serving the variants (`space` and `serve`)."""
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--manifest", metavar="FILE", help="where to write the variants manifest (default: RUNS_DIR/variants.json)"
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"bearer token the /v1 API requires (default: the {API_KEY_ENV} environment variable, which keeps it "
        "out of the process list; neither: no key)",
    )


def run_serve(args, ui: bool = True) -> int:
    """Write the manifest of every recipe's variant, then serve it (the chat page with `ui`, and the /v1 API)."""
    from iris_recipes.paths import runs_dir
    from iris_recipes.space_variants import write_manifest

    default = nullcontext(runs_dir() / "variants.json")
    with default if args.manifest is None else writing_to("--manifest", args.manifest) as dest:
        variants = _variants()
        manifest = write_manifest(dest, variants)
    print(f"variants manifest: {manifest}")
    for v in variants:
        where = v.gguf.get("path") or v.gguf.get("repo_id") or v.build_command
        print(f"  {v.id:24} {v.status:10} {where}")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not api_key and not _loopback(args.host):
        print(
            f"warning: the /v1 API on {args.host} answers anyone who reaches it; set {API_KEY_ENV} (or --api-key) "
            "to require a key",
            file=sys.stderr,
        )
    from iris_recipes.space_bundle import load_app_module

    app = load_app_module()
    try:
        sock = app.bind(args.host, args.port)
    except OSError as exc:  # port taken or address not available
        raise IrisError(f"cannot serve on {args.host}:{args.port}: {exc}. Choose another with --port.") from None
    app.serve(app.build_server(manifest, ui=ui, api_key=api_key), sock)
    return 0


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_build(args) -> int:
    from iris_recipes.space_bundle import BUNDLE_FILES, build_bundle, check_target

    with writing_to("OUT", args.out, folder=True) as out:
        out = check_target(out)  # before the variants are read: a bad OUT is reported first
        variants = build_bundle(out, _variants())
    print(f"wrote {out}: {', '.join(BUNDLE_FILES)}")
    for v in variants:
        print(f"  {v.id:24} {v.gguf['repo_id']}/{v.gguf['filename']}")
    print(f"deploy: hf upload USER/SPACE {out} . --repo-type space")
    return 0
