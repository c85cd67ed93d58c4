"""Files and folders are written atomically (a temporary one beside it, then a rename), so a crash never leaves half
of one under its final name."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a new folder beside `dest` to fill; when the block succeeds it becomes `dest` (an older `dest` is
    replaced only then), otherwise it is removed. Readable by all, like a folder made by mkdir."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private
        yield tmp
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def write_json(dest: str | os.PathLike, data) -> Path:
    return write_text(dest, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


NAME_MAX = 255  # bytes in one file name (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path


def path_text_problem(text: str) -> str | None:
    """Why `text` (a path written in a recipe or a dataset entry) cannot name a file, or None. Checked before the
    file system is asked: it raises on such paths instead of answering "no such file"."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        return "is not valid Unicode text"
    if len(raw) > PATH_MAX:
        return f"is longer than {PATH_MAX} bytes"
    if any(len(part) > NAME_MAX for part in raw.split(b"/")):
        return f"has a part longer than {NAME_MAX} bytes (the limit for one file name)"
    return None


def output_problem(path: str | os.PathLike, *, folder: bool = False) -> str | None:
    """Why `path` (given by a user for output) cannot be written as a file, or with `folder` as a folder of files, or
    None. Checked before the work, so a bad destination fails at once and not after the work is done (a run would
    otherwise build or download its base model first). A write can still fail later (a full disk, a file in the
    way), so the writer must still expect an OSError."""
    text = os.fspath(path)
    if not text.strip():
        return "is empty"  # Path("") is ".": the work would land in the current folder
    if problem := path_text_problem(text):
        return problem
    dest = os.path.abspath(text)
    if os.path.exists(dest) and os.path.isdir(dest) != folder:
        return "is a file, not a folder" if folder else "is a folder, not a file"
    existing = dest if folder else os.path.dirname(dest)
    while not os.path.exists(existing):  # the nearest folder that exists is where the new ones are made
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"cannot be created: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written: {existing} is not writable"
    try:  # some file systems refuse what the permissions allow (/proc, /sys): ask the one that would be written
        probe = tempfile.mkdtemp(prefix=".iris-probe-", dir=existing)
    except OSError as exc:
        return f"cannot be written: {existing} refuses new files ({exc.strerror or exc})"
    os.rmdir(probe)
    return None


def resolve(path: str | os.PathLike) -> Path:
    """The absolute path with symbolic links followed. A symlink loop, which `Path.resolve` raises on, is returned
    as written (made absolute), so the caller's own "not found" check reports it."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


@contextlib.contextmanager
def exclusive(lock_file: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if needed): serializes builders of the same directory across
    processes (concurrent runs, test sessions)."""
    import fcntl

    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
