#!/usr/bin/env bash
# The API under a fuzzer: `mw serve` on a fresh home (the embedded stack, mock providers), then
# schemathesis (PyPI, in .venv-tools, see scripts/tools.sh) over its own /openapi.json: every
# operation, with data generated from the document's schemas, must answer without a 5xx, with a
# status, content type and body the document allows.
#   scripts/fuzz-api.sh            uses target/debug/mw (cargo build -p mw first)
#   FUZZ_SEED=N                    another seed (default 1: the same cases every run)
#   FUZZ_EXAMPLES=N                cases per operation and phase (default 25)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
tools=$(scripts/tools.sh)
mw="${MW_BINARY:-target/debug/mw}"
[ -x "$mw" ] || { echo "fuzz-api: $mw is missing: cargo build -p mw" >&2; exit 1; }
home=$(mktemp -d)
port=$("$tools/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="fuzz-api-key-0123456789abcdef"
API_KEY="$key" MYLOWARE_HOME="$home/.myloware" MOCK_LATENCY_MS=20 DATABASE_URL= \
  "$mw" serve --port "$port" >"$home/serve.log" 2>&1 &
serve=$!
cleanup() {
  kill "$serve" 2>/dev/null || true
  wait "$serve" 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || {
  echo "fuzz-api: mw serve did not come up" >&2
  cat "$home/serve.log" >&2
  exit 1
}
status=0
# One worker: on CPython 3.11 before 3.11.8, two of schemathesis's threads parsing source at once
# (hypothesis describing a lambda) can crash the fuzzer itself with "AST constructor recursion
# depth mismatch", which it reports as an error of the operation it was generating for.
"$tools/st" run "http://127.0.0.1:$port/openapi.json" \
  --header "x-api-key: $key" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${FUZZ_EXAMPLES:-25}" --seed "${FUZZ_SEED:-1}" --workers 1 \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "fuzz-api: failed; the server's log:" >&2
  tail -50 "$home/serve.log" >&2
fi
exit "$status"
