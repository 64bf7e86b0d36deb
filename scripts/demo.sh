#!/usr/bin/env bash
# Sets up a virtualenv and runs the built-in demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/dosewise demo "$@"
