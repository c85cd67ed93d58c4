#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: the unit tier, then the integration tier (real Axolotl training,
# llama.cpp export, the Space in Chromium).
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
set +e
# One pytest-xdist worker per CPU (at most 4; IRIS_TEST_WORKERS=N to choose, 0 for none), a test module at a time
# (tests/conftest.py pins each to its CPUs): much of the integration tier is single-threaded work (imports, tiny
# models), so on 2 cores two workers take 27 min where one process took 51.
workers=${IRIS_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
xdist=(); [ "$workers" -gt 1 ] && xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
.venv/bin/python -m pytest tests/unit tests/integration "${xdist[@]}" "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
[ "$rc" = 5 ] && { echo "error: no tests were collected" >&2; exit 1; }
exit "$rc"
