"""`iris-recipes` command line.

Each sub-command lives in `iris_recipes/commands/<module>.py` with `add_parser(subparsers)`; the module must stay
cheap to import (no torch, axolotl, transformers or gradio at import time) so that `--help` and `validate` are fast.
Heavy imports go inside the function that runs the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from iris_recipes import __version__
from iris_recipes.errors import IrisError

# Order is the order shown by --help.
COMMAND_MODULES = (
    "validate",
    "listing",
    "show",
    "new",
    "schema",  # recipes
    "data",
    "run",
    "export",
    "card",
    "eval",
    "compare",
    "sweep",  # the pipeline and its evidence
    "push",
    "space",
    "serve",  # shipping
)


class _Parser(argparse.ArgumentParser):
    """Positionals may follow options (`show R --no-defaults KEY=VALUE`): argparse's default parsing takes a
    command's positionals in one run and rejects those after an option. Parsers with sub-commands cannot be parsed
    intermixed and keep the default; their sub-commands inherit this class."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        nested = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._get_positional_actions())
        if nested or self._intermixing:  # parse_known_intermixed_args calls back here for its two passes
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="iris-recipes",
        description="Declarative LLM fine-tuning: one validated YAML recipe -> Axolotl training -> GGUF -> Space.",
        epilog="Example: iris-recipes validate && iris-recipes run recipes/smollm2-demo.yaml",
    )
    parser.add_argument("--version", action="version", version=f"iris-recipes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"iris_recipes.commands.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except IrisError as exc:
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
