#!/usr/bin/env bash
# One command from a fresh clone to every check: installs what the tests need (pip, and the
# Debian prometheus packages), then ruff, mypy, the import contracts and the whole pytest
# suite (CONTRIBUTING.md: `-m "not slow"` for the fast part).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --system --test
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check .
ruff format --check .
echo "== mypy --strict" >&2
mypy
echo "== lint-imports (the layers, pyproject.toml [tool.importlinter])" >&2
lint-imports --no-cache
echo "== pytest" >&2
python -m pytest "$@"
