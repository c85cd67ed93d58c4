"""What the command modules share: how a sub-command parser is made, and the arguments several take."""

from __future__ import annotations

import argparse


def add_command(sub, name: str, *, help: str, example: str, description: str | None = None):
    """A sub-command parser whose --help ends with a runnable example."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override a key (train.learning_rate=5e-5, YAML-typed) or delete one (~card.tags)",
    )


def add_unsafe_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unsafe-axolotl-keys",
        action="store_true",
        help="accept axolotl: keys that load code, use the network with your credentials or touch "
        "files outside the run directory (plugins, trust_remote_code, hub_model_id, "
        "output_dir, ...; see README). Only for recipes you trust",
    )
