#!/usr/bin/env bash
# Set up iris-recipes on a fresh machine (Python 3.11, CPU): .venv with every extra, llama.cpp's converter.
# Idempotent: a second run with nothing changed takes a few seconds.
#   scripts/setup.sh                 # train + export + space + dev extras
#   scripts/setup.sh --with-browser  # also Debian's chromium (the Space's browser test) and espeak-ng (speech for
#                                    # its voice-input tests); needs root/apt
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    *) echo "usage: scripts/setup.sh [--with-browser]" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
  || { echo "error: iris-recipes needs Python 3.11 (axolotl 0.19.0 is the newest on 3.11); found $($PY --version 2>&1)" >&2; exit 2; }

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ -x .venv/bin/python ] || { step "creating .venv"; "$PY" -m venv .venv; }
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
export PIP_PROGRESS_BAR=off

installed() { .venv/bin/python - "$1" "$2" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

# torch first and pinned: anything that pulls an unpinned torch would otherwise fetch a multi-GB CUDA build.
installed torch 2.13.0 || { step "torch 2.13.0 (CPU)"; "${PIP[@]}" install torch==2.13.0; }

# llama-cpp-python has no wheel on PyPI: build it portably (no -march=native, no llava); pip caches the wheel.
installed llama_cpp_python 0.3.36 || {
  step "llama-cpp-python 0.3.36 (builds llama.cpp: ~7 min the first time)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${PIP[@]}" install llama-cpp-python==0.3.36
}

# The project with every extra; skipped when pyproject.toml has not changed since the last install.
stamp=.venv/.iris-installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  step "iris-recipes with extras train, export, space, dev (axolotl: ~4 min the first time)"
  DS_BUILD_OPS=0 "${PIP[@]}" install -e ".[train,export,space,dev]"
  rm -f .venv/.iris-installed-*; touch "$stamp"
fi

step "llama.cpp's GGUF converter (from the llama-cpp-python 0.3.36 sdist, cached outside the repo)"
.venv/bin/python -m iris_recipes.export.converter fetch

if [ "$WITH_BROWSER" = 1 ] && ! { command -v chromium && command -v espeak-ng; } >/dev/null; then
  step "Debian chromium and espeak-ng (headless browser and synthetic speech for the Space tests)"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium espeak-ng >/dev/null
fi
step "ready: .venv/bin/iris-recipes --help"
