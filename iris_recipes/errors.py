"""Errors the CLI reports as clean messages with a non-zero exit code (never a traceback)."""

from __future__ import annotations


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
