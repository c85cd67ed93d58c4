"""Does the project's dependency set resolve for another Python (default 3.12: Colab, Kaggle, GPU images)?

    .venv/bin/python scripts/check_resolution.py [--python-version 3.12] [--glibc 2.35]

Resolves every extra against the real package index for that Python and Linux x86-64, wheels only, fetching
nothing but metadata (`uv pip compile --python-version ... --no-build`; pip's `--dry-run --report` does the same
sequentially, ~15x slower here): a pin without a wheel or a version for that Python fails here instead of on a
user's machine. Some dependencies ship only as source on PyPI (DeepSpeed, llama-cpp-python and a few of Axolotl's);
a resolver cannot read a source package's requirements for a foreign Python without building it, so each is stood in
for by a metadata-only wheel carrying its real name, version, Requires-Python and requirements, read from the copy
installed here.
Exit 0 and a one-line JSON summary when it resolves; exit 1 with the resolver's own explanation when it does not.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# Releases PyPI has only as source (pip builds them on any Python). A new one makes the check fail with pip's
# "No matching distribution found for NAME"; if NAME is such a release, add it here.
SOURCE_ONLY = (
    "deepspeed",
    "llama-cpp-python",  # ours
    "axolotl-contribs-lgpl",
    "axolotl-contribs-mit",
    "langdetect",
    "rouge-score",
    "sqlitedict",
    "word2number",
)  # Axolotl's


def requirements(pyproject: Path) -> list[str]:
    """Every requirement of the project: core dependencies and all extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return list(dict.fromkeys(reqs))


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def stand_in_wheel(dist_name: str, out_dir: Path) -> Path:
    """A wheel holding only the metadata of the installed `dist_name` (name, version, Requires-Python, requirements)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"error: {dist_name} is not installed here; its requirements are read from the installed "
            "copy (run scripts/setup.sh first)"
        ) from None
    name, version = dist.metadata["Name"], dist.version
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if dist.metadata.get("Requires-Python"):
        lines.append(f"Requires-Python: {dist.metadata['Requires-Python']}")
    lines += [f"Provides-Extra: {e}" for e in dist.metadata.get_all("Provides-Extra") or []]
    lines += [f"Requires-Dist: {r}" for r in dist.metadata.get_all("Requires-Dist") or []]
    stem = re.sub(r"[-_.]+", "_", name)
    info = f"{stem}-{version}.dist-info"
    files = {
        f"{info}/METADATA": "\n".join(lines) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: iris-recipes\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = out_dir / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def resolve(python_version: str, glibc: str, pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """{package: version} that uv resolves for the project on `python_version`; SystemExit(1) if nothing does."""
    reqs = requirements(pyproject)
    with tempfile.TemporaryDirectory(prefix="iris-resolve-") as tmp:
        tmp_path = Path(tmp)
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        for name in SOURCE_ONLY:
            stand_in_wheel(name, wheels)
        req_file = tmp_path / "requirements.in"
        req_file.write_text("\n".join(reqs) + "\n")
        out = tmp_path / "requirements.txt"
        uv = Path(sys.executable).parent / "uv"
        cmd = [
            str(uv) if uv.is_file() else "uv",
            "pip",
            "compile",
            str(req_file),
            "-o",
            str(out),
            "--quiet",
            "--python-version",
            python_version,
            "--python-platform",
            f"x86_64-manylinux_{glibc.replace('.', '_')}",
            "--no-build",
            "--find-links",
            str(wheels),
            "--no-header",
            "--no-annotate",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(
                f"error: the dependencies of {pyproject.name} do not resolve for Python {python_version} "
                f"(x86-64 Linux, glibc {glibc}); see uv's message above"
            )
        pins = {}
        for line in out.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==", 1)
                pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.split(";")[0].strip()
        return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--glibc", default="2.35", help="the target's glibc (2.35: Ubuntu 22.04, Colab)")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    pins = resolve(args.python_version, args.glibc, args.pyproject)
    print(
        json.dumps(
            {
                "python": args.python_version,
                "glibc": args.glibc,
                "packages": len(pins),
                "torch": pins.get("torch"),
                "axolotl": pins.get("axolotl"),
                "source_only_stood_in": [n for n in SOURCE_ONLY if n in pins],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
