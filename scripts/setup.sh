#!/usr/bin/env bash
# Create .venv with the CPU build of torch (installed first, so nothing pulls CUDA wheels), the core
# `verticals` distribution with its optional extras, and every domain pack under plugins/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -e ".[test,serve,report,export,ray,ray-serve,tracking,workshop,postgres]"
for pack in plugins/*/; do
  if [ -f "$pack/pyproject.toml" ]; then
    "${PIP[@]}" install -e "$pack"
  fi
done
echo "verticals installed in $VENV ($("$VENV/bin/verticals" --version))"
