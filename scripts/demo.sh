#!/usr/bin/env bash
# One command from a fresh clone to a filled embedded store: install, migrate, demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/meterhouse migrate
.venv/bin/meterhouse demo "$@"
