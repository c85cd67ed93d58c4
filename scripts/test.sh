#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: the unit tier, then the integration tier (real Axolotl training,
# llama.cpp export, the Space in Chromium).
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
set +e
.venv/bin/python -m pytest tests/unit tests/integration "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
[ "$rc" = 5 ] && { echo "error: no tests were collected" >&2; exit 1; }
exit "$rc"
