#!/usr/bin/env bash
# Release builds of the six functions for Lambda (arm64, as template.yaml says), with each
# bootstrap's size checked against LAMBDA_MAX_MB (default 10, in MiB), then each arm64
# bootstrap started under qemu-user against the cold-start benchmark's Lambda Runtime API
# emulator, which must see it answer an invocation (the size flags in .cargo/config.toml
# apply to these builds only, so this is where they are proven). The bootstraps talk to the
# local AWS emulator (moto, MOTO_PORT: started here when nothing answers there, stopped after).
#   scripts/lambda-build.sh [--x86-64]     (--x86-64: bootstraps this machine can run, for
#                                           the cold-start benchmark)
# cargo-lambda and ziglang (the cross linker) come from scripts/tools.sh; qemu-aarch64 and the
# arm64 C library from Debian (qemu-user, libc6-arm64-cross; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/tools.sh env)"
arch=--arm64
if [ "${1:-}" = --x86-64 ]; then arch=--x86-64; fi
if [ "$arch" = --arm64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
functions=(chat webhook hitl runs worker callbacks)
# Each function takes only the myloware features it serves (functions/*/Cargo.toml): the
# DynamoDB store, and `runs` the dashboard's files; no SQLite, Postgres or mock provider. One
# cargo invocation unifies the features of the packages it builds, so `runs` is built on its own.
others=()
for f in "${functions[@]}"; do [ "$f" = runs ] || others+=(-p "$f"); done

started=$(date +%s)
cargo lambda build --release "$arch" "${others[@]}"
cargo lambda build --release "$arch" -p runs
echo "lambda build: $arch in $(( $(date +%s) - started )) s"

# cargo lambda writes under the cargo target folder: CARGO_TARGET_DIR when set.
target_dir="${CARGO_TARGET_DIR:-target}"
max_mb="${LAMBDA_MAX_MB:-10}"
too_big=0
for f in "${functions[@]}"; do
  file="$target_dir/lambda/$f/bootstrap"
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
# What each bootstrap carries: no SQLite (its file header's text is in every build of it), no mock
# provider, and the dashboard's files in `runs` only.
for f in "${functions[@]}"; do
  file="$target_dir/lambda/$f/bootstrap"
  if grep -q "SQLite format 3" "$file"; then
    echo "lambda build: $f carries SQLite" >&2
    exit 1
  fi
  if grep -q "mock-cdn.myloware.local" "$file"; then
    echo "lambda build: $f carries the mock providers" >&2
    exit 1
  fi
  dashboard=no
  grep -q "MyloWare · runs" "$file" && dashboard=yes
  if [ "$dashboard" != "$([ "$f" = runs ] && echo yes || echo no)" ]; then
    echo "lambda build: $f carries the dashboard: $dashboard (only runs should)" >&2
    exit 1
  fi
done
echo "lambda build: no function carries SQLite or the mock providers; only runs has the dashboard"

# The target is the arm64 bootstraps' (what template.yaml deploys); x86-64 builds, for the
# cold-start benchmark, do not get the size flags and are only reported.
if [ "$too_big" = 1 ] && [ "$arch" = --arm64 ]; then exit 1; fi

if [ "$arch" = --arm64 ]; then
  sysroot=/usr/aarch64-linux-gnu
  if [ "${MW_SKIP_MOTO:-}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "lambda build: not started under qemu: the bootstraps run on moto; MW_SKIP_MOTO=1" >&2
  elif command -v qemu-aarch64 >/dev/null 2>&1 && [ -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
    # Built as scripts/test builds it (the whole workspace's features): `cargo run -p` alone would
    # build the library again with fewer features.
    cargo build -q --workspace --bins
    export MOTO_PORT="${MOTO_PORT:-5123}"
    if ! curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then
      scripts/moto.sh start
      trap 'scripts/moto.sh stop >/dev/null 2>&1 || true' EXIT
    fi
    "$target_dir/debug/lambda-cold-start" --runs 1 --dir "$target_dir/lambda" \
      --runner "qemu-aarch64 -L $sysroot"
    echo "lambda build: every arm64 bootstrap answered its first invocation (under qemu-aarch64)"
  elif [ "${CI:-}" = true ]; then
    echo "lambda build: CI needs qemu-aarch64 and $sysroot (qemu-user, libc6-arm64-cross)" >&2
    exit 1
  else
    echo "lambda build: not started: no qemu-aarch64 or $sysroot (apt-get install qemu-user libc6-arm64-cross)" >&2
  fi
fi
