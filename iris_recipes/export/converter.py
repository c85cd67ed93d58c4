"""llama.cpp's own HF -> GGUF converter, taken from the llama-cpp-python sdist of the pinned version.

The converter (`convert_hf_to_gguf.py`, its `conversion/` package and its bundled `gguf-py`) is not part of this
project: it is fetched once per machine into `cache_dir()/llama.cpp-<version>/` and run as a subprocess with that
gguf-py first on its path (the `gguf` on PyPI lags behind the converter).

    python -m iris_recipes.export.converter fetch                  # pip download the sdist, extract the converter
    python -m iris_recipes.export.converter fetch --sdist FILE     # or extract it from a local sdist
    python -m iris_recipes.export.converter where                  # print the converter's path
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.fsutil import atomic_dir, sha256_file
from iris_recipes.hostinfo import prepend_pythonpath
from iris_recipes.paths import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # the same version as the llama-cpp-python that quantizes and runs the GGUFs
FETCH_COMMAND = "python -m iris_recipes.export.converter fetch"
_MARKER = "iris-converter.json"
_SCRIPT = "convert_hf_to_gguf.py"
LORA_SCRIPT = "convert_lora_to_gguf.py"  # a PEFT LoRA adapter -> GGUF adapter (it imports the converter above)
# What is taken out of `<sdist>/vendor/llama.cpp/`: the scripts, the package they import and their own gguf-py.
_KEEP = (_SCRIPT, LORA_SCRIPT, "conversion/", "gguf-py/gguf/", "LICENSE")


def converter_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return cache_dir() / f"llama.cpp-{version}"


def find_converter(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The converter script; a clear error naming the command that fetches it when it is missing."""
    root = converter_dir(version)
    script = root / _SCRIPT
    if not ((root / _MARKER).is_file() and script.is_file() and (root / LORA_SCRIPT).is_file()):
        raise IrisError(
            f"llama.cpp's GGUF converter is not installed (looked in {root}). Fetch it once with "
            f"`{FETCH_COMMAND}` (downloads llama-cpp-python=={version}'s sdist from PyPI), or "
            f"`{FETCH_COMMAND} --sdist PATH` with a local llama_cpp_python-{version}.tar.gz."
        )
    return script


def converter_env(script: Path) -> dict[str, str]:
    """Environment for the converter subprocess: its own gguf-py first; never the network."""
    env = prepend_pythonpath(dict(os.environ), str(script.parent / "gguf-py"))
    env.setdefault("HF_HUB_OFFLINE", "1")  # the model and tokenizer are local; the converter needs no hub
    env.pop("NO_LOCAL_GGUF", None)  # set, it would make the script skip its own gguf-py
    return env


def download_sdist(dest_dir: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """`pip download` the sdist (source only, no dependencies) into dest_dir."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"llama-cpp-python=={version}",
        "--no-binary=:all:",
        "--no-deps",
        "-q",
        "-d",
        str(dest_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest_dir.glob(f"llama_cpp_python-{version}.tar.gz"))
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise IrisError(
            f"could not download llama-cpp-python=={version}'s sdist with `{' '.join(cmd[1:])}`:\n{tail}\n"
            f"Download llama_cpp_python-{version}.tar.gz elsewhere and run `{FETCH_COMMAND} --sdist PATH`."
        )
    return found[0]


def extract_converter(sdist: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Extract only the converter from the sdist into converter_dir(), atomically (temp dir, then rename)."""
    sdist = Path(sdist)
    if not sdist.is_file():
        raise IrisError(f"{sdist}: no such file; give the path of llama_cpp_python-{version}.tar.gz.")
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    dest = converter_dir(version)
    with atomic_dir(dest) as tmp:
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                members = []
                for m in tar.getmembers():
                    rel = m.name[len(prefix) :] if m.name.startswith(prefix) else None
                    if rel and (m.isfile() or m.isdir()) and any(rel == k or rel.startswith(k) for k in _KEEP):
                        m.name = rel
                        members.append(m)
                if not any(m.name == _SCRIPT for m in members):
                    raise IrisError(f"{sdist}: holds no {prefix}{_SCRIPT}; is it llama-cpp-python {version}'s sdist?")
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise IrisError(f"{sdist}: not a readable .tar.gz ({exc}); download it again.") from None
        (tmp / _MARKER).write_text(
            json.dumps({"llama_cpp_python": version, "sdist": sdist.name, "sdist_sha256": sha256_file(sdist)}, indent=2)
            + "\n"
        )
    return dest / _SCRIPT


def fetch_converter(
    sdist: str | Path | None = None, version: str = LLAMA_CPP_PYTHON_VERSION, force: bool = False
) -> Path:
    """Install the converter into the cache (from a local sdist, or pip-downloaded); returns the script path."""
    if not force and sdist is None:
        try:
            return find_converter(version)
        except IrisError:
            pass
    if sdist is not None:
        return extract_converter(Path(sdist), version)
    with tempfile.TemporaryDirectory(prefix="iris-sdist-") as tmp:
        return extract_converter(download_sdist(Path(tmp), version), version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iris_recipes.export.converter",
        description="Install or locate llama.cpp's HF -> GGUF converter.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    fetch = sub.add_parser("fetch", help="install the converter into the cache")
    fetch.add_argument("--sdist", type=Path, help=f"a local llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz")
    fetch.add_argument("--force", action="store_true", help="extract again even if it is installed")
    sub.add_parser("where", help="print the converter's path")
    args = parser.parse_args(argv)
    try:
        script = fetch_converter(args.sdist, force=args.force) if args.action == "fetch" else find_converter()
    except IrisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(script)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
