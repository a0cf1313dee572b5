#!/usr/bin/env bash
# Set up the environment (only what is missing; reuses the demo's .venv) and
# run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
exec "${VENV:-$repo/.venv}/bin/python" -m pytest -q -p no:cacheprovider \
    -W ignore tests "$@"
