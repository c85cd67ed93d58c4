"""What the command modules share: how a sub-command parser is made, and the arguments several take."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.errors import IrisError


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


def is_override(arg: str) -> bool:
    """Whether a positional argument is a KEY=VALUE override or a ~KEY deletion rather than a recipe or a path."""
    return "=" in arg or arg.startswith("~")


def add_unsafe_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unsafe-axolotl-keys",
        action="store_true",
        help="accept axolotl: keys that load code, use the network with your credentials or touch "
        "files outside the run directory (plugins, trust_remote_code, hub_model_id, "
        "output_dir, ...; see README). Only for recipes you trust",
    )


def check_output(flag: str, path: str, *, folder: bool = False) -> Path:
    """The output path given to `flag`, or an IrisError saying why nothing can be written there."""
    problem = fsutil.output_problem(path, folder=folder)
    if problem:
        raise IrisError(f"{flag} {path!r}: {problem}. {_give(flag, folder)} Nothing was written.")
    return Path(path)


@contextlib.contextmanager
def writing_to(flag: str, path: str, *, folder: bool = False) -> Iterator[Path]:
    """Check the output path given to `flag` before the block, and report the block's OSError about that path (a
    file system that refuses) as bad input naming the flag. An OSError about any other file is a failure of its
    own and passes through."""
    dest = check_output(flag, path, folder=folder)
    try:
        yield dest
    except OSError as exc:
        where = _concerns(exc, Path(os.path.abspath(dest)))
        if where is None:
            raise
        raise IrisError(
            f"{flag} {path!r}: cannot write {where}: {exc.strerror or exc}. {_give(flag, folder)}"
        ) from None


def _give(flag: str, folder: bool) -> str:
    return f"Give {flag} a {'folder' if folder else 'file'} path that you can write to."


def _concerns(exc: OSError, dest: Path) -> Path | None:
    """The file `exc` is about if that is `dest`, a file in it, a folder on the way to it, or the temporary file
    beside it that fsutil.atomic_path renames onto it; else None."""
    for name in (exc.filename2, exc.filename):  # a rename's second name is its destination
        if name is None:
            continue
        f = Path(os.path.abspath(os.fsdecode(name)))
        if f == dest or dest in f.parents or f in dest.parents:
            return f
        if f.parent == dest.parent and f.name.startswith(f".{dest.name}."):
            return dest
    return None
