#!/usr/bin/env bash
# Everything a fresh machine needs: system packages, the venv, the package and its extras,
# and the converted default embedding model. Safe to run again.
#
# On a fresh Debian 12 with only python3, run as root (or with the packages below already
# installed): apt gives python3-venv (ensurepip), redis-server (the bridge tests) and
# make; everything else comes from PyPI as wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup: $PY not found; install Python 3.11 or newer (Debian: apt-get install python3)" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $("$PY" --version 2>&1) is too old; neuralcore needs Python 3.11 or newer" >&2
  exit 1
fi

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# Debian's python3 has no ensurepip until python3-venv is installed
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=("python3-venv")
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these packages first (as root): apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
fi

# a venv left half-made by an interrupted run has no pip: make it again
if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e '.[all,dev]'
touch .venv/.installed  # make's stamp: `make` after this script does not install again
bash scripts/post_install.sh
