"""Errors the CLI reports as clean messages with a non-zero exit code (never a traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class IrisError(Exception):
    """A user-facing error: the message says where (file, line, key or row) and what to do."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RecipeError(IrisError):
    """One or more problems in a recipe; `problems` holds every `FILE:LINE:COL: key.path: message` line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def closest(word: object, choices: Iterable[object], *, cutoff: float = 0.6) -> str | None:
    """The choice a typo most likely meant (for "did you mean ...?" hints), or None."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    return match[0] if match else None
