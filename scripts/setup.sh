#!/usr/bin/env bash
# Set up iris-recipes on a fresh machine: .venv with every extra, llama.cpp's converter.
# Idempotent: a second run with nothing changed takes a few seconds.
#   scripts/setup.sh                 # train + export + space + dev extras
#   scripts/setup.sh --with-browser  # also Debian's chromium (the Space's browser test) and espeak-ng (speech for
#                                    # its voice-input tests); needs root/apt
#   scripts/setup.sh --dry-run       # say which Python and which torch it would use; change nothing
# Python: 3.10-3.12 (PYTHON=... to choose one). On a machine with an NVIDIA GPU (nvidia-smi lists one) the venv
# sees the system's packages, so a CUDA torch already installed in Axolotl's range (Colab, cloud images) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_BROWSER=0
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    --dry-run) DRY_RUN=1 ;;
    *) echo "usage: scripts/setup.sh [--with-browser] [--dry-run]" >&2; exit 2 ;;
  esac
done

# Axolotl 0.19.0 declares Python >= 3.10 and torch >= 2.11, <= 2.13.0.
PY_MIN=3.10 PY_MAX=3.12
TORCH_RANGE=">=2.11,<=2.13.0"
TORCH_CPU=2.13.0  # the CPU build: pinned, so nothing pulls a multi-GB CUDA build onto a machine without a GPU

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The Python version of "$1", or nothing when it does not run or is outside PY_MIN..PY_MAX (a pyenv shim for a
# version that is not enabled does not run).
supported() {
  "$1" -c "import sys; v = sys.version_info[:2]; lo, hi = [tuple(map(int, s.split('.'))) for s in ('$PY_MIN', '$PY_MAX')]
sys.exit(0 if lo <= v <= hi else 1)" >/dev/null 2>&1 && "$1" -c 'import platform; print(platform.python_version())'
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    supported "$PYTHON" >/dev/null || { echo "error: PYTHON=$PYTHON is not a working Python $PY_MIN-$PY_MAX" >&2; return 2; }
    echo "$PYTHON"; return 0
  fi
  # 3.11 first: the CPU torch wheel this project's CI caches is built for it; then the other supported ones.
  for candidate in python3.11 python3.12 python3.10 python3; do
    command -v "$candidate" >/dev/null && supported "$candidate" >/dev/null && { echo "$candidate"; return 0; }
  done
  echo "error: iris-recipes needs Python $PY_MIN-$PY_MAX (Axolotl 0.19.0); none of python3.11, python3.12, python3.10," \
       "python3 on PATH is one. Install one, or set PYTHON=/path/to/python3.X." >&2
  return 2
}

# grep -c reads the whole list: with grep -q, nvidia-smi could die of SIGPIPE and pipefail would say "no GPU".
has_cuda_gpu() { command -v nvidia-smi >/dev/null && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')" -gt 0 ]; }

# torch's version as the given Python sees it, or nothing.
torch_version() {
  "$1" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true
}

# Is torch version "$1" inside Axolotl's range (2.11 .. 2.13.x; a local tag like +cu128 does not matter)?
torch_in_range() {
  local v=${1%%+*}; local major=${v%%.*}; local rest=${v#*.}; local minor=${rest%%.*}
  [ -n "$1" ] && [ "$major" = 2 ] && [ "$minor" -ge 11 ] 2>/dev/null && [ "$minor" -le 13 ]
}

if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
  PY_VERSION=$(supported "$PY") || { echo "error: .venv has $($PY --version 2>&1); iris-recipes needs Python" \
    "$PY_MIN-$PY_MAX. Remove .venv and run again." >&2; exit 2; }
  echo "Python $PY_VERSION (existing .venv)"
else
  PY=$(pick_python) || exit 2
  PY_VERSION=$(supported "$PY")
  echo "Python $PY_VERSION ($(command -v "$PY")): supported $PY_MIN-$PY_MAX"
fi

GPU=0
has_cuda_gpu && GPU=1
# With a GPU the venv sees the system's packages, so its torch counts; a new CPU venv starts empty.
TORCH_SEEN=""
if [ -x .venv/bin/python ] || [ "$GPU" = 1 ]; then TORCH_SEEN=$(torch_version "$PY"); fi
if torch_in_range "$TORCH_SEEN"; then
  TORCH_PLAN="keep torch $TORCH_SEEN (already installed, in Axolotl's range $TORCH_RANGE)"
  TORCH_SPEC=""
elif [ "$GPU" = 1 ]; then
  TORCH_PLAN="install torch$TORCH_RANGE with CUDA (the newest in range from PyPI)"
  [ -z "$TORCH_SEEN" ] || TORCH_PLAN="$TORCH_PLAN; the installed $TORCH_SEEN is outside that range"
  TORCH_SPEC="torch$TORCH_RANGE"
else
  TORCH_PLAN="install torch==$TORCH_CPU (CPU)"
  TORCH_SPEC="torch==$TORCH_CPU"
fi
if [ "$GPU" = 1 ]; then
  GPUS=$(nvidia-smi -L | grep '^GPU ')
  FIRST=${GPUS%%$'\n'*}
  echo "GPU: $FIRST$([ "$FIRST" != "$GPUS" ] && echo ' ...')"
else echo "GPU: none (CPU training)"; fi
echo "torch: $TORCH_PLAN"
[ "$DRY_RUN" = 1 ] && exit 0

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with Python $PY_VERSION"
  if [ "$GPU" = 1 ]; then "$PY" -m venv --system-site-packages .venv; else "$PY" -m venv .venv; fi
fi
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

# torch first: anything that pulls an unpinned torch would otherwise fetch a build nobody chose.
[ -z "$TORCH_SPEC" ] || { step "$TORCH_PLAN"; "${PIP[@]}" install "$TORCH_SPEC"; }

# llama-cpp-python has no wheel on PyPI: build it portably (no -march=native, no llava); pip caches the wheel.
installed llama_cpp_python 0.3.36 || {
  step "llama-cpp-python 0.3.36 (builds llama.cpp: ~7 min the first time)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${PIP[@]}" install llama-cpp-python==0.3.36
}

# The project with every extra; skipped when pyproject.toml has not changed since the last install.
stamp=.venv/.iris-installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  step "iris-recipes with extras train, export, space, track, dev (axolotl: ~4 min the first time)"
  DS_BUILD_OPS=0 "${PIP[@]}" install -e ".[train,export,space,track,dev]"
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
