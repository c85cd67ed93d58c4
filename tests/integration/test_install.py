"""Installing where users are: Python 3.10-3.12 (Colab and Kaggle run 3.12), the dependency set resolving for
3.12 against the real index, and scripts/setup.sh choosing a Python and a torch."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    p
    for p in REPO.glob("**/*.py")
    if not any(part.startswith(".") or part in ("runs", "build") for part in p.relative_to(REPO).parts)
)


def interpreter(version: str) -> str | None:
    """A working `pythonX.Y` (a pyenv shim for a version that is not enabled does not count)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
    for c in filter(None, candidates):
        ok = subprocess.run(
            [c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if ok.returncode == 0 and ok.stdout.strip() == version:
            return c
    return None


@pytest.mark.parametrize("version", ["3.10", "3.12"])
def test_every_module_compiles_with_python(version):
    """The grammar of every supported Python: no 3.11-only syntax (except*, ...), nothing 3.12 rejects."""
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    probe = (
        "import sys\nbad = []\nfor f in sys.argv[1:]:\n    try:\n"
        "        compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
        "    except SyntaxError as e:\n        bad.append(f'{f}:{e.lineno}: {e.msg}')\nprint('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([python, "-c", probe, *map(str, SOURCES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(SOURCES) > 50


# Standard-library names that Python 3.11 added (3.10 lacks them).
NEW_IN_311 = {
    "tomllib": None,
    "typing": {
        "Self",
        "LiteralString",
        "Never",
        "assert_never",
        "reveal_type",
        "Required",
        "NotRequired",
        "dataclass_transform",
        "TypeVarTuple",
        "Unpack",
    },
    "enum": {"StrEnum", "ReprEnum", "verify", "EnumCheck"},
    "datetime": {"UTC"},
    "asyncio": {"TaskGroup", "timeout", "Runner"},
    "hashlib": {"file_digest"},
    "contextlib": {"chdir"},
    "builtins": {"ExceptionGroup", "BaseExceptionGroup"},
}


def uses_311_stdlib(path: Path) -> list[str]:
    """Uses of NEW_IN_311 outside an `except ImportError` fallback."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in NEW_IN_311 and NEW_IN_311[a.name] is None]
        elif isinstance(node, ast.ImportFrom) and node.module in NEW_IN_311:
            names = NEW_IN_311[node.module]
            found += [f"from {node.module} import {a.name}" for a in node.names if names is None or a.name in names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = NEW_IN_311.get(node.value.id)
            if names and node.attr in names:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NEW_IN_311["builtins"]:
            found.append(node.id)
    return [f"{path.relative_to(REPO)}:{x}" for x in found]


def test_no_python_311_only_standard_library():
    found = [hit for path in SOURCES for hit in uses_311_stdlib(path)]
    assert found == []


def test_the_311_scan_finds_what_it_looks_for(tmp_path):
    sample = REPO / "tests" / "_scan_sample.py"
    sample.write_text(
        "import tomllib\nfrom typing import Self\nimport datetime\nx = datetime.UTC\n"
        "try:\n    import tomllib as t\nexcept ImportError:\n    t = None\n"
    )
    try:
        assert [h.split(":", 1)[1] for h in uses_311_stdlib(sample)] == [
            "import tomllib",
            "from typing import Self",
            "datetime.UTC",
        ]
    finally:
        sample.unlink()


def test_declared_python_range():
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10,<3.13"' in text
    assert '"torch>=2.11,<=2.13.0"' in text  # Axolotl 0.19.0's range: Colab's CUDA torch is kept when inside it


def test_dependencies_resolve_for_python_312():
    """Every extra resolves for CPython 3.12 on Linux against the real index (metadata only, wheels only)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_resolution.py")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["python"] == "3.12" and summary["axolotl"] == "0.19.0" and summary["packages"] > 200
    major, minor = map(int, summary["torch"].split(".")[:2])
    assert (2, 11) <= (major, minor) <= (2, 13)
    assert {"deepspeed", "llama-cpp-python"} <= set(summary["source_only_stood_in"])


def test_a_pin_without_a_312_release_fails_the_check(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "0"\ndependencies = ["numba==0.56.4"]\n')  # Python < 3.11
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_resolution.py"), "--pyproject", str(pyproject)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "do not resolve for Python 3.12" in proc.stderr and "numba" in proc.stderr


# -- scripts/setup.sh: which Python, which torch ----------------------------------------------------------------
def _setup_tree(tmp_path: Path) -> Path:
    """A copy of the files setup.sh reads, without a .venv (the repository's own must not be touched)."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", tree / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _bin(tmp_path: Path, links: dict[str, str], scripts: dict[str, str] | None = None) -> Path:
    """A PATH directory holding only the named interpreters and scripts (plus what bash itself needs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target in links.items():
        (bin_dir / name).symlink_to(target)
    for name, text in (scripts or {}).items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for tool in ("grep", "head", "sha256sum", "cut", "dirname", "cat", "env"):
        if shutil.which(tool) and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return bin_dir


def _setup_dry_run(tree: Path, bin_dir: Path, **env) -> subprocess.CompletedProcess:
    full = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(
        ["/bin/bash", str(tree / "scripts" / "setup.sh"), "--dry-run"],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


NVIDIA_SMI = "#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-0000)'\n"
UNSUPPORTED = "#!/bin/sh\nexit 1\n"  # a pyenv shim for a version that is not enabled


def test_setup_picks_a_supported_python(tmp_path):
    tree = _setup_tree(tmp_path)
    real = sys.executable
    version = "{}.{}".format(*sys.version_info[:2])
    bin_dir = _bin(
        tmp_path,
        {f"python{version}": real},
        {"python3.11" if version != "3.11" else "python3.12": UNSUPPORTED, "python3": UNSUPPORTED},
    )
    proc = _setup_dry_run(tree, bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"Python {sys.version.split()[0]} ({bin_dir}/python{version}): supported 3.10-3.12" in proc.stdout
    assert "GPU: none" in proc.stdout and "torch: install torch==2.13.0 (CPU)" in proc.stdout
    assert not (tree / ".venv").exists()


def test_setup_refuses_without_a_supported_python(tmp_path):
    tree = _setup_tree(tmp_path)
    bin_dir = _bin(tmp_path, {}, {"python3.11": UNSUPPORTED, "python3": "#!/bin/sh\nexit 1\n"})
    proc = _setup_dry_run(tree, bin_dir)
    assert proc.returncode == 2 and "needs Python 3.10-3.12" in proc.stderr
    proc = _setup_dry_run(tree, bin_dir, PYTHON=str(bin_dir / "python3.11"))
    assert proc.returncode == 2 and "PYTHON=" in proc.stderr


def _fake_torch(tmp_path: Path, version: str) -> Path:
    site = tmp_path / f"site-{version}"
    info = site / f"torch-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    return site


@pytest.mark.parametrize(
    "installed, plan",
    [
        ("2.12.0+cu128", "torch: keep torch 2.12.0+cu128 (already installed, in Axolotl's range >=2.11,<=2.13.0)"),
        (
            "2.9.0+cu126",
            "torch: install torch>=2.11,<=2.13.0 with CUDA (the newest in range from PyPI); "
            "the installed 2.9.0+cu126 is outside that range",
        ),
    ],
)
def test_setup_on_a_cuda_machine_keeps_a_torch_in_range(tmp_path, installed, plan):
    """Colab ships a CUDA torch: kept when Axolotl accepts it, never downgraded; replaced only when outside."""
    tree = _setup_tree(tmp_path)
    version = "{}.{}".format(*sys.version_info[:2])
    bin_dir = _bin(
        tmp_path, {f"python{version}": sys.executable, "python3": sys.executable}, {"nvidia-smi": NVIDIA_SMI}
    )
    proc = _setup_dry_run(tree, bin_dir, PYTHONPATH=str(_fake_torch(tmp_path, installed)))
    assert proc.returncode == 0, proc.stderr
    assert "GPU: GPU 0: Tesla T4" in proc.stdout
    assert plan in proc.stdout


def test_setup_sees_every_gpu_of_a_large_machine(tmp_path):
    """nvidia-smi lists GPUs one line at a time: reading only the first would end it with SIGPIPE, and under
    `set -o pipefail` setup would then plan a CPU install on an 8-GPU machine."""
    tree = _setup_tree(tmp_path)
    version = "{}.{}".format(*sys.version_info[:2])
    sleep = shutil.which("sleep")  # the test's PATH holds only the tools it names
    eight = (
        f'#!/bin/bash\nfor i in 0 1 2 3 4 5 6 7; do echo "GPU $i: NVIDIA H100 (UUID: GPU-000$i)"; {sleep} 0.05; done\n'
    )
    bin_dir = _bin(tmp_path, {f"python{version}": sys.executable, "python3": sys.executable}, {"nvidia-smi": eight})
    proc = _setup_dry_run(tree, bin_dir, PYTHONPATH=str(_fake_torch(tmp_path, "2.12.0+cu128")))
    assert proc.returncode == 0, proc.stderr
    assert "GPU: GPU 0: NVIDIA H100 (UUID: GPU-0000) ..." in proc.stdout
    assert "torch: keep torch 2.12.0+cu128" in proc.stdout
