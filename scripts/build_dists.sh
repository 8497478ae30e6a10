#!/usr/bin/env bash
# Build the wheel and sdist of the core and of every pack under plugins/ into dist/ (or the directory
# given as $1), then check every file's metadata with `twine check --strict`.
# python -m build makes the wheel from the sdist, so a file the sdist forgot fails the build here.
# --no-isolation builds with this environment's setuptools (>=77, from `pip install -e '.[test]'`)
# instead of downloading one per project; BUILD_ISOLATION=1 builds in isolated environments instead.
set -euo pipefail
# Relative paths are taken from where the script was run; -s keeps a venv's python a venv's python.
OUT="$(realpath -ms "${1:-$(dirname "$0")/../dist}")"
PYTHON="$(realpath -ms "${PYTHON:-$(dirname "$0")/../.venv/bin/python}")"
cd "$(dirname "$0")/.."
ISOLATION=(--no-isolation)
if [ "${BUILD_ISOLATION:-0}" = "1" ]; then ISOLATION=(); fi
mkdir -p "$OUT"
for project in . plugins/*/; do
  [ -f "$project/pyproject.toml" ] || continue
  "$PYTHON" -m build "${ISOLATION[@]}" --outdir "$OUT" "$project" >/dev/null
  echo "built $(basename "$(realpath "$project")")"
done
"$PYTHON" -m twine check --strict "$OUT"/*
