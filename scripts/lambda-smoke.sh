#!/usr/bin/env bash
# The functions as Lambda runs them, through `cargo lambda watch` (its Runtime API and function
# URLs), with what template.yaml gives them, made on the local AWS emulator (moto, MOTO_PORT,
# started here when nothing answers there and stopped after): Step Functions, a DynamoDB table,
# the task and callback queues (target/debug/emulated-deployment); mock providers.
#   runs:  GET /health, POST /v1/runs, GET /v1/runs/{id}, GET /v1/runs without the key (401)
#   chat:  a Brendan turn that starts a run, which `runs` then lists (one store, two functions)
#   worker, callbacks: `cargo lambda invoke --data-file tests/fixtures/events/…`
#   every function: the CloudWatch EMF lines of the metrics its invocations changed, on stdout
# Usage: scripts/lambda-smoke.sh        (port: LAMBDA_SMOKE_PORT, default a free one)
# cargo-lambda comes from scripts/tools.sh. The first request compiles the functions (debug).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/tools.sh env)"
export MOTO_PORT="${MOTO_PORT:-5123}"
started_moto=""
port="${LAMBDA_SMOKE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
base="http://127.0.0.1:$port"
home="$(mktemp -d)"
log="$home/watch.log"
api_key="lambda-smoke-api-key-0123456789abcdef"
watch_pid=""

cleanup() {
  if [ -n "$watch_pid" ]; then
    # setsid made cargo-lambda the leader of its own process group: end that group, which holds
    # cargo-lambda, the cargo builds it starts and the function processes.
    kill -TERM -- "-$watch_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
  [ -z "$started_moto" ] || scripts/moto.sh stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT

fail() {
  echo "lambda smoke: FAILED: $*" >&2
  echo "--- cargo lambda watch log (last 40 lines) ---" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

if ! curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then
  scripts/moto.sh start
  started_moto=1
fi
# Built as scripts/test builds it (the whole workspace's features): `cargo run -p` alone would
# build the library again with fewer features.
cargo build -q --workspace --bins
target_dir="${CARGO_TARGET_DIR:-target}"

# The functions inherit this environment from `cargo lambda watch`.
unset DATABASE_URL STATE_MACHINE_PREFIX MYLOWARE_HOME
deployment=$("$target_dir/debug/emulated-deployment" --name lambda-smoke) ||
  fail "no deployment on the AWS emulator at port $MOTO_PORT"
eval "$deployment"
export PUBLIC_BASE_URL="$base" API_KEY="$api_key" RUST_LOG="${RUST_LOG:-warn}" PROVIDERS_MODE=mock
echo "lambda smoke: the functions' AWS: table $DYNAMODB_TABLE, queues and state machines on $AWS_ENDPOINT_URL"

echo "lambda smoke: cargo lambda watch on $base (log $log)"
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$port" >"$log" 2>&1 &
watch_pid=$!
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$watch_pid" 2>/dev/null || fail "cargo lambda watch exited"
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "cargo lambda watch is not listening on $port"

# call METHOD PATH [BODY] [KEY]: prints the body, then the status on its own last line.
call() {
  local args=(-sS --max-time 600 -X "$1" -w '\n%{http_code}' -H 'content-type: application/json')
  [ -n "${4:-}" ] && args+=(-H "x-api-key: $4")
  [ -n "${3:-}" ] && args+=(--data "$3")
  curl "${args[@]}" "$base$2"
}
expect() { # expect NAME WANT_STATUS OUTPUT PYTHON_CHECK: the check gets the JSON body as `b`
  local name="$1" want="$2" out="$3" check="$4"
  local status="${out##*$'\n'}" body="${out%$'\n'*}"
  [ "$status" = "$want" ] || fail "$name: status $status, expected $want: $body"
  python3 -c "import json,sys; b=json.loads(sys.argv[1]); sys.exit(0 if ($check) else 1)" "$body" ||
    fail "$name: unexpected body: $body"
  echo "lambda smoke: ok  $name"
}

started=$(date +%s)
out=$(call GET /lambda-url/runs/health)
echo "lambda smoke: first request answered after $(( $(date +%s) - started )) s (includes compiling)"
expect "runs GET /health" 200 "$out" 'b.get("status") == "ok"'

out=$(call GET /lambda-url/runs/v1/runs)
expect "runs GET /v1/runs without x-api-key" 401 "$out" '"error" in b'

out=$(call POST /lambda-url/runs/v1/runs '{"project":"test-video-gen","message":"a smoke test"}' "$api_key")
status="${out##*$'\n'}"
[ "$status" = 200 ] || [ "$status" = 201 ] || fail "runs POST /v1/runs: status $status: ${out%$'\n'*}"
run_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["run_id"])' "${out%$'\n'*}") ||
  fail "runs POST /v1/runs: no run_id in ${out%$'\n'*}"
echo "lambda smoke: ok  runs POST /v1/runs -> $run_id"

out=$(call GET "/lambda-url/runs/v1/runs/$run_id" "" "$api_key")
expect "runs GET /v1/runs/{id}" 200 "$out" "b['run_id'] == '$run_id' and b['project'] == 'test-video-gen'"

out=$(call POST /lambda-url/chat/v1/chat/brendan '{"user_id":"smoke","message":"Start a test video gen run"}' "$api_key")
expect "chat POST /v1/chat/brendan" 200 "$out" 'isinstance(b.get("response"), str) and len(b.get("run_ids", [])) == 1'
chat_run=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["run_ids"][0])' "${out%$'\n'*}")

out=$(call GET "/lambda-url/runs/v1/runs/$chat_run" "" "$api_key")
expect "runs shows the run Brendan started ($chat_run)" 200 "$out" "b['run_id'] == '$chat_run' and b['user_id'] == 'smoke'"

out=$(call POST /lambda-url/chat/v1/chat/brendan '{"user_id":"smoke","message":"hi"}')
expect "chat without x-api-key" 401 "$out" '"error" in b'

# The queue consumers, with the SQS events under tests/fixtures/events, their records sent by
# the deployment's queues (eventSourceARN). Each fixture's first record names a run / webhook
# event this fresh store does not have and its second is not a message at all. The callbacks
# function reports both as batch item failures, by message id; the worker fails the unknown
# run's task (its token unknown to Step Functions: done) and reports only the second.
for fn in worker callbacks; do
  fixture="$home/$fn-sqs.json"
  queue_url=$([ "$fn" = worker ] && echo "$TASK_QUEUE_URL" || echo "$CALLBACK_QUEUE_URL")
  python3 - "tests/fixtures/events/$fn-sqs.json" "$queue_url" >"$fixture" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
for record in event["Records"]:
    record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:" + sys.argv[2].rsplit("/", 1)[1]
json.dump(event, sys.stdout)
PY
  out=$(cargo lambda invoke "$fn" -A 127.0.0.1 -P "$port" --data-file "$fixture" -o json 2>>"$log") ||
    fail "cargo lambda invoke $fn: $out"
  python3 - "$out" "$fixture" "$fn" <<'PY' || fail "$fn: unexpected answer: $out"
import json, sys
answer, fixture = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
ids = [r["messageId"] for r in fixture["Records"]]
if sys.argv[3] == "worker":
    ids = ids[1:]
failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
sys.exit(0 if failed == ids else 1)
PY
  echo "lambda smoke: ok  cargo lambda invoke $fn --data-file tests/fixtures/events/$fn-sqs.json"
done

# Each invocation printed the metrics it changed as CloudWatch embedded-metric-format lines on
# the function's stdout (the watch log here, the log stream on Lambda): the runs function's run
# start and the callbacks function's failed records must be there, with the function dimension.
python3 - "$log" <<'PY' || fail "no CloudWatch EMF lines for the runs and callbacks functions in the log"
import json, sys
seen = set()
for line in open(sys.argv[1], errors="replace"):
    line = line.strip()
    if not line.startswith("{") or '"_aws"' not in line:
        continue
    m = json.loads(line)
    directive = m["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "MyloWare", directive
    assert isinstance(m["_aws"]["Timestamp"], int), m
    for metric in directive["Metrics"]:
        assert metric["Name"] in m, (metric, m)
    for dims in directive["Dimensions"]:
        assert all(d in m for d in dims), (dims, m)
    seen.add((m.get("function"), tuple(x["Name"] for x in directive["Metrics"])))
print("lambda smoke: EMF lines:", sorted(seen), file=sys.stderr)
functions = {f for f, _ in seen}
sys.exit(0 if {"runs", "callbacks"} <= functions else 1)
PY
echo "lambda smoke: ok  CloudWatch EMF lines from the functions"

echo "lambda smoke: passed"
