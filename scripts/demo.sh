#!/usr/bin/env bash
# Sets up a virtualenv and runs the built-in demo. When the WHO weekly file is beside the
# repository (../shared/data) or in the cache (`dosewise data pull who`), the demo ranks the
# reallocation of declined doses by need score.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
who=../shared/data/surveillance/WHO-COVID-19-global-data.csv
if [ -f "$who" ]; then
  .venv/bin/dosewise demo --who "$who" "$@"
else
  .venv/bin/dosewise demo "$@"
fi
