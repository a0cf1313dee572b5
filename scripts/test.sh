#!/usr/bin/env bash
# Set up the environment (only what is missing; reuses the demo's .venv), with
# the optional serving requirements, and run the whole test suite. Extra
# arguments go to pytest. The browser test needs the system's Chromium (Debian:
# apt-get install chromium; .ci/run installs it) and is skipped without it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
WITH_SERVE=1 bash scripts/setup_env.sh
exec "${VENV:-$repo/.venv}/bin/python" -m pytest -q -p no:cacheprovider \
    -W ignore tests "$@"
