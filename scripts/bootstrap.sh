#!/usr/bin/env bash
# Installs what meterhouse needs into .venv (and, with --system, the Debian packages the
# tests start). Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
want_system=0
extras=""
for arg in "$@"; do
  case "$arg" in
    --system) want_system=1 ;;
    --test) extras="[test]" ;;
    *) echo "bootstrap: unknown option $arg (use --system, --test)" >&2; exit 2 ;;
  esac
done

if [ "$want_system" = 1 ]; then
  missing=()
  for bin in prometheus promtool prometheus-alertmanager amtool prometheus-pushgateway; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  # Headless Chromium renders the HTML statement to PDF in the statement tests.
  command -v chromium >/dev/null 2>&1 || missing+=("chromium")
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages for: ${missing[*]}" >&2
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq prometheus prometheus-alertmanager prometheus-pushgateway \
      chromium >/dev/null
    # The packages start their services; the tests start their own on free ports.
    for svc in prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter; do
      $sudo_cmd systemctl stop "$svc" >/dev/null 2>&1 || $sudo_cmd service "$svc" stop >/dev/null 2>&1 || true
    done
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "bootstrap: installing meterhouse${extras} into .venv" >&2
# pip and the build backend print warnings (setuptools' editable-install banner, index
# notices) that are not the reader's business; keep them in a log shown only on failure.
log=$(mktemp)
if ! .venv/bin/python -m pip install -q -e ".${extras}" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "bootstrap: pip install failed (output above)" >&2
  exit 1
fi
rm -f "$log"
.venv/bin/python -c "import meterhouse" || { echo "bootstrap: install failed" >&2; exit 1; }
