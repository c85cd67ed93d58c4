"""`iris-recipes serve`: the OpenAI-compatible API of every built variant, headless (no chat page)."""

from __future__ import annotations

from iris_recipes.commands.common import add_command
from iris_recipes.commands.space import add_serve_arguments, run_serve


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "serve",
        help="serve the variants through an OpenAI-compatible API (GET /v1/models, POST /v1/chat/completions)",
        description="Serve every recipe's built variant through an OpenAI-compatible API at /v1, without the chat "
        "page (`iris-recipes space` serves both on one port). A request's model is a variant id; the sampling "
        "settings a request leaves out are the variant's own (its recipe's space: block).",
        example="IRIS_SPACE_API_KEY=KEY iris-recipes serve --host 127.0.0.1 --port 8000",
    )
    add_serve_arguments(p)
    p.set_defaults(func=lambda args: run_serve(args, ui=False))
