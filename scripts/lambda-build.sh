#!/usr/bin/env bash
# Release builds of the six functions for Lambda (arm64, as template.yaml says), with each
# bootstrap's size reported against LAMBDA_MAX_MB (default 10).
#   scripts/lambda-build.sh [--x86-64]     (--x86-64: bootstraps this machine can run, for
#                                           the cold-start benchmark)
# cargo-lambda and ziglang (the cross linker) come from scripts/tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/tools.sh env)"
arch=--arm64
if [ "${1:-}" = --x86-64 ]; then arch=--x86-64; fi
if [ "$arch" = --arm64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
functions=(chat webhook hitl runs worker callbacks)
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done

started=$(date +%s)
cargo lambda build --release "$arch" "${packages[@]}"
echo "lambda build: $arch in $(( $(date +%s) - started )) s"

max_mb="${LAMBDA_MAX_MB:-10}"
too_big=0
for f in "${functions[@]}"; do
  file="target/lambda/$f/bootstrap"
  [ -f "$file" ] || { echo "lambda build: $file is missing" >&2; exit 1; }
  bytes=$(stat -c %s "$file")
  # e_machine (ELF offset 18): 183 aarch64, 62 x86-64.
  machine=$(python3 -c 'import sys; m=int.from_bytes(open(sys.argv[1],"rb").read(20)[18:20],"little"); print({183:"aarch64",62:"x86-64"}.get(m,m))' "$file")
  awk -v f="$f" -v b="$bytes" -v m="$machine" 'BEGIN { printf "lambda build: %-10s %6.2f MB  %s\n", f, b / 1048576, m }'
  if [ "$bytes" -gt $(( max_mb * 1048576 )) ]; then
    echo "lambda build: $file is over the $max_mb MB target" >&2
    too_big=1
  fi
done
# The size target is reported, not enforced, unless LAMBDA_SIZE_STRICT=1: the bootstraps are
# over it today (see the README), and a build that works must not fail CI for it.
if [ "$too_big" = 1 ] && [ "${LAMBDA_SIZE_STRICT:-}" = 1 ]; then exit 1; fi
exit 0
