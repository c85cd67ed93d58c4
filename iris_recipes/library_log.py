"""What the libraries a stage runs in this process print on their own (torch, torchao, transformers, peft, DeepSpeed,
bitsandbytes) goes to the stage's log file, not the terminal.

Their notices (a torchao kernel built for another Python, a torch deprecation, DeepSpeed choosing the CPU, a
bitsandbytes kernel that could not be fetched) say nothing a user of iris-recipes can act on, and they arrive through
Python's logging and warnings, often from handlers the library makes at import time, inside the stage. So while a
stage runs, every log record below ERROR that a handler would write to the terminal, and every warning, is written
to the log file instead; errors still reach the terminal (they come with a failure the user must deal with).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path


def _is_terminal(stream) -> bool:
    return any(stream is s for s in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__))


@contextlib.contextmanager
def into(path: str | Path) -> Iterator[None]:
    """Send library log records (below ERROR) and warnings to `path` (created on the first line) while the block
    runs."""
    log = logging.FileHandler(path, mode="a", encoding="utf-8", delay=True)
    log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stream_emit = logging.StreamHandler.emit
    show_warning = warnings.showwarning

    def emit(handler: logging.StreamHandler, record: logging.LogRecord) -> None:
        if handler is not log and record.levelno < logging.ERROR and _is_terminal(handler.stream):
            log.handle(record)
        else:
            stream_emit(handler, record)

    def to_log(message, category, filename, lineno, file=None, line=None) -> None:
        if file is not None and not _is_terminal(file):  # a warning meant for a file of its own
            show_warning(message, category, filename, lineno, file, line)
            return
        log.handle(
            logging.makeLogRecord(
                {
                    "name": "py.warnings",
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": warnings.formatwarning(message, category, filename, lineno, line).rstrip(),
                }
            )
        )

    logging.StreamHandler.emit = emit  # the class: handlers a library makes during the block are covered too
    warnings.showwarning = to_log
    try:
        yield
    finally:
        logging.StreamHandler.emit = stream_emit
        warnings.showwarning = show_warning
        log.close()
