#!/usr/bin/env bash
# The deployment tools, from PyPI, in one venv (.venv-tools, reused when present):
#   cfn-lint      checks template.yaml
#   aws-sam-cli   `sam validate --lint`, `sam build`, `sam deploy`
#   cargo-lambda  `cargo lambda build|watch|invoke`
#   ziglang       the linker cargo-lambda uses to cross-compile for arm64
#   schemathesis  fuzzes the API against its own OpenAPI document (scripts/fuzz-api.sh)
# Usage: scripts/tools.sh            install (or check) and print the venv's bin folder
#        eval "$(scripts/tools.sh env)"   put the venv's bin folder on PATH
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-tools"
# Pinned so CI gets the versions these checks were written against.
PACKAGES=(
  'cfn-lint>=1.20,<2'
  'aws-sam-cli>=1.130,<2'
  'cargo-lambda>=1.8,<2'
  'ziglang>=0.13,<0.16'
  'schemathesis>=4.3,<5'
)

installed() {
  [[ -x "$VENV/bin/cfn-lint" && -x "$VENV/bin/sam" && -x "$VENV/bin/cargo-lambda" && -x "$VENV/bin/st" ]] &&
    "$VENV/bin/python" -c 'import ziglang' 2>/dev/null
}

install() {
  if installed; then return 0; fi
  local py="${PYTHON:-python3.11}"
  command -v "$py" >/dev/null 2>&1 || py=python3
  [[ -x "$VENV/bin/python" ]] || "$py" -m venv "$VENV"
  echo "tools: installing ${PACKAGES[*]} into $VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
  installed || { echo "tools: installation incomplete in $VENV" >&2; exit 1; }
}

case "${1:-install}" in
  install) install; echo "$VENV/bin" ;;
  # cargo-lambda finds zig through the `python3` on PATH: the venv's.
  env) install; echo "export PATH=\"$VENV/bin:\$PATH\"" ;;
  *) echo "usage: $0 [install|env]" >&2; exit 2 ;;
esac
